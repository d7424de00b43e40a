"""The settings' sections and ``Settings``, each field with its own validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from bot.config.networks import parse_networks
from bot.delivery.modes import MODES, S3Settings
from bot.keywords.settings import KeywordSettings
from bot.state import known_url, url_forms
from bot.wechat.api.client import DEFAULT_BASE_URL
from bot.wechat.api.menu import Menu

DEFAULT_CONFIG = Path("config.toml")
DEFAULT_WELCOME = "感谢关注！发送下面的关键词获取文件：\n{keywords}"
DEFAULT_HELP = "没有找到这个关键词。可以发送：\n{keywords}"
PLACEHOLDERS = {"", "change-me", "changeme", "change_me", "placeholder", "secret", "token", "xxx"}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    public_url: str = "http://127.0.0.1:8000"
    metrics: bool = False
    account_name: str = Field(default="", max_length=64)
    trusted_proxies: list[str] = Field(default_factory=list)
    max_header_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    header_timeout: float = Field(default=10.0, gt=0, le=300)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        parse_networks(value)
        return value

    @field_validator("public_url")
    @classmethod
    def _absolute_http(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute http(s) URL such as https://files.example.com")
        return value.rstrip("/")


class WeChatSettings(_Section):
    token: str = ""
    app_id: str = ""
    encoding_aes_key: str = ""
    # WeChat's server API (menus, QR codes, 客服消息, media): a secret, never printed or logged.
    app_secret: SecretStr = SecretStr("")
    api_base_url: str = DEFAULT_BASE_URL
    path: str = "/wechat"
    max_clock_skew: int = Field(default=300, ge=1)
    require_encryption: bool = False
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    body_timeout: float = Field(default=5.0, gt=0, le=60)

    @field_validator("app_secret")
    @classmethod
    def _not_placeholder(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value()
        if secret and (secret.lower() in PLACEHOLDERS or "change" in secret.lower()):
            raise ValueError(
                "is a placeholder: copy the AppSecret (开发者密码) from 基本配置, "
                "or set BOT_WECHAT__APP_SECRET"
            )
        return value

    @field_validator("api_base_url")
    @classmethod
    def _http_base(cls, value: str) -> str:
        if urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).netloc:
            raise ValueError("must be an http(s) URL, e.g. https://api.weixin.qq.com")
        return value.rstrip("/")

    @field_validator("path")
    @classmethod
    def _slash(cls, value: str) -> str:
        if not value.startswith("/") or value.startswith("/d/"):
            raise ValueError("must start with '/' and not with '/d/', e.g. /wechat")
        return value


class LinksSettings(_Section):
    secret_keys: list[str] = Field(default_factory=list)
    ttl_seconds: int = Field(default=600, ge=1, le=7 * 24 * 3600)
    max_downloads: int = Field(default=0, ge=0)
    claim_lease_seconds: float = Field(default=30.0, ge=1, le=3600)
    landing: Literal["wechat", "always"] = "wechat"
    pickup_codes: bool = True


class FilesSettings(_Section):
    @field_validator("delivery")
    @classmethod
    def _known_mode(cls, value: str) -> str:
        if value not in MODES:
            raise ValueError(f"must be one of {', '.join(MODES)}")
        return value

    dir: Path = Path("files")
    delivery: str = "direct"  # a key of bot.delivery.modes.MODES
    x_accel_prefix: str = "/_protected/"


class RepliesSettings(_Section):
    welcome: str = DEFAULT_WELCOME
    help: str = DEFAULT_HELP
    other: str = ""  # images, video, location, links, voice without recognition ("" = success)
    tappable: bool = False  # {keywords} as weixin://bizmsgmenu links the follower taps


class LimitsSettings(_Section):
    links_per_user_per_hour: int = Field(default=10, ge=0)
    bad_tokens_per_ip_per_minute: int = Field(default=30, ge=0)
    audit_rows_per_ip_per_minute: int = Field(default=60, ge=0)
    audit_rows_per_minute: int = Field(default=600, ge=0)  # all addresses, per process
    log_lines_per_second: int = Field(default=20, ge=0)  # refusal lines, per process
    max_concurrent_downloads: int = Field(default=64, ge=0)
    max_concurrent_per_link: int = Field(default=4, ge=0)
    rate_bytes_per_second: int = Field(default=0, ge=0)
    send_timeout: float = Field(default=60.0, gt=0, le=3600)
    wrong_codes_per_ip_per_minute: int = Field(default=10, ge=0)
    wrong_codes_per_minute: int = Field(default=60, ge=0)
    # The owner's page (/admin): wrong passwords per sliding hour, from one address and in all.
    wrong_passwords_per_ip_per_hour: int = Field(default=5, ge=1, le=1000)
    wrong_passwords_per_hour: int = Field(default=20, ge=1, le=10000)


class StateSettings(_Section):
    url: str = "sqlite:///state/bot.db"
    keep_days: int = Field(default=90, ge=1)

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not known_url(value):
            raise ValueError(f"must be {url_forms()}")
        return value


class LogSettings(_Section):
    level: Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR"] = "INFO"
    file: Path | None = None
    json_lines: bool = Field(default=False, alias="json")
    file_max_bytes: int = Field(default=20 * 1024 * 1024, ge=64 * 1024)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class Settings(BaseSettings):
    """Everything the bot needs, built once by the CLI and passed down."""

    model_config = SettingsConfigDict(
        env_prefix="BOT_", env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    server: ServerSettings = Field(default_factory=ServerSettings)
    wechat: WeChatSettings = Field(default_factory=WeChatSettings)
    links: LinksSettings = Field(default_factory=LinksSettings)
    files: FilesSettings = Field(default_factory=FilesSettings)
    keywords: list[KeywordSettings] = Field(default_factory=list)
    replies: RepliesSettings = Field(default_factory=RepliesSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    s3: S3Settings = Field(default_factory=S3Settings)
    menu: Menu | None = None  # [menu]: WeChat's custom menu, mirroring its JSON (`bot menu push`)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file arrives as init kwargs; environment variables override it.
        return env_settings, init_settings
