"""The client built from ``[wechat]`` (app_id, app_secret, api_base_url) and the token cache."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loguru import logger

from bot.errors import ConfigError
from bot.wechat.api.client import WeChatAPI
from bot.wechat.api.token import TokenCache

if TYPE_CHECKING:
    from bot.config import WeChatSettings


def token_cache(
    state_url: str, app_id: str, *, wall: Callable[[], float] = time.time
) -> TokenCache:
    """The shared token cache in the state store named by ``[state] url``."""
    from bot.state import tokens_from_url

    return tokens_from_url(state_url, app_id, wall=wall)


def build_api(settings: WeChatSettings, cache: TokenCache, **options: Any) -> WeChatAPI:
    """The client (``options``: clocks, sleep), or ConfigError naming the missing key."""
    if not settings.app_id:
        raise ConfigError("wechat.app_id", "is empty", "copy the AppID (wx…) from 基本配置")
    if not settings.app_secret.get_secret_value():
        raise ConfigError(
            "wechat.app_secret",
            "is empty: menus, QR codes, the import and 客服消息 need it",
            "copy the AppSecret (开发者密码) from 基本配置, or set BOT_WECHAT__APP_SECRET",
        )
    return WeChatAPI(
        settings.app_id, settings.app_secret, cache, base_url=settings.api_base_url, **options
    )


@dataclass(frozen=True, slots=True)
class ServerAPI:
    """WeChat's API as ``bot serve`` uses it (客服消息, media): the client and its token cache."""

    api: WeChatAPI
    cache: TokenCache

    async def aclose(self) -> None:
        """Close the client's connections and the cache's."""
        await self.api.aclose()
        close = getattr(self.cache, "close", None)
        if close is not None:
            await close()


def server_api(
    settings: WeChatSettings,
    state_url: str,
    *,
    wall: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
) -> ServerAPI | None:
    """The client for a serving bot, or None (and a log line) where app_secret is empty."""
    if not settings.app_secret.get_secret_value():
        logger.info(
            "no [wechat] app_secret: a reply that misses WeChat's 5 s is not sent as a 客服消息"
            " (answered as before); image replies need it too"
        )
        return None
    cache = token_cache(state_url, settings.app_id, wall=wall)
    return ServerAPI(build_api(settings, cache, wall=wall, monotonic=monotonic), cache)
