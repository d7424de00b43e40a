"""The settings the API needs, and the client built from them with the shared token cache."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr, field_validator

from bot.errors import ConfigError
from bot.wechat.api.client import DEFAULT_BASE_URL, WeChatAPI
from bot.wechat.api.token import TokenCache

PLACEHOLDERS = {"", "change-me", "changeme", "change_me", "placeholder", "secret", "xxx"}


class WeChatAPISettings(BaseModel):
    """``[wechat] app_secret`` and ``api_base_url`` (to be merged into ``[wechat]``)."""

    model_config = ConfigDict(extra="ignore")

    app_id: str = ""
    app_secret: SecretStr = SecretStr("")
    api_base_url: str = DEFAULT_BASE_URL

    @field_validator("api_base_url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL, e.g. https://api.weixin.qq.com")
        return value.rstrip("/")

    @field_validator("app_secret")
    @classmethod
    def _not_placeholder(cls, value: SecretStr) -> SecretStr:
        if value.get_secret_value() and value.get_secret_value().lower() in PLACEHOLDERS:
            raise ValueError("is a placeholder: copy the AppSecret (开发者密码) from 基本配置")
        return value


def token_cache(
    state_url: str, app_id: str, *, wall: Callable[[], float] = time.time
) -> TokenCache:
    """The shared token cache in the state store named by ``[state] url``."""
    from bot.state import tokens_from_url

    return tokens_from_url(state_url, app_id, wall=wall)


def build_api(settings: WeChatAPISettings, cache: TokenCache, **options: Any) -> WeChatAPI:
    """The client (``options``: clocks, sleep), or ConfigError naming the missing key."""
    if not settings.app_id:
        raise ConfigError("wechat.app_id", "is empty", "copy the AppID (wx…) from 基本配置")
    if not settings.app_secret.get_secret_value():
        raise ConfigError(
            "wechat.app_secret",
            "is empty: menus, QR codes, the import and 客服消息 need it",
            "copy the AppSecret (开发者密码) from 基本配置, or set BOT_WECHAT__APP_SECRET",
        )
    return WeChatAPI(settings.app_id, settings.app_secret, cache, base_url=settings.api_base_url)
