"""Typed settings: a TOML file plus ``BOT_<SECTION>__<KEY>`` environment overrides."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from bot.delivery.modes import MODES, S3Settings
from bot.errors import ConfigError
from bot.keywords.book import fold
from bot.keywords.patterns import shown
from bot.keywords.settings import KeywordSettings
from bot.keywords.triggers import INDEXES, MATCH_MODES, TEXT
from bot.state import known_url, sqlite_path, url_forms
from bot.web.clientaddr import parse_networks
from bot.wechat.api.client import DEFAULT_BASE_URL
from bot.wechat.api.media import image_problem
from bot.wechat.api.menu import Menu

DEFAULT_CONFIG = Path("config.toml")
DEFAULT_WELCOME = "感谢关注！发送下面的关键词获取文件：\n{keywords}"
DEFAULT_HELP = "没有找到这个关键词。可以发送：\n{keywords}"
PLACEHOLDERS = {"", "change-me", "changeme", "change_me", "placeholder", "secret", "token", "xxx"}
_TOKEN_RE = re.compile(r"^[A-Za-z0-9]{3,32}$")
# config.example.toml's AppID and the like: refused when real pushes would have to match it.
_PLACEHOLDER_APP_ID = re.compile(r"^(wx0+|wx_?x+|wx_?app_?id|appid|change[-_]?me)$", re.I)


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


def config_path(explicit: Path | None = None) -> Path:
    """``--config PATH``, else ``$BOT_CONFIG``, else ``./config.toml``."""
    if explicit is not None:
        return explicit
    return Path(os.environ.get("BOT_CONFIG") or DEFAULT_CONFIG)


def load_settings(path: Path | None = None, *, check_files: bool = True) -> Settings:
    """Read, validate and resolve the configuration; ConfigError names the key and the fix."""
    path = config_path(path)
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(str(path), f"is not valid TOML ({exc})", "fix the syntax") from None
    elif not any(k.upper().startswith("BOT_") for k in os.environ):
        raise ConfigError(str(path), "file not found", "run `bot init` to write one")
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key, problem = _error_key(err["loc"], data), err["msg"].removeprefix("Value error, ")
        if err["type"] == "value_error":  # our own check: its message says what is wrong
            raise ConfigError(key, problem[:300]) from None
        # Never the value itself: an unknown or mistyped key may well hold a secret.
        raise ConfigError(key, f"{problem} (got {_kind(err.get('input'))})"[:300]) from None
    base = path.resolve().parent
    if not settings.files.dir.is_absolute():
        settings.files.dir = base / settings.files.dir
    if settings.log.file is not None and not settings.log.file.is_absolute():
        settings.log.file = base / settings.log.file
    state_file = sqlite_path(settings.state.url)
    if state_file is not None and not state_file.is_absolute():
        settings.state.url = f"sqlite:///{base / state_file}"
    _check_secrets(settings)
    _check_templates(settings)
    _check_images(settings, check_files=check_files)
    if check_files:
        _check_files(settings)
    return settings


def _error_key(loc: tuple[int | str, ...], data: dict[str, Any]) -> str:
    """``keywords[2] ('芝麻开门').mode``: indexes in brackets, a rule named by its trigger."""
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
        if key == f"keywords[{part}]":
            key += _rule_name(data.get("keywords"), int(part))
    return key or "(top level)"


def _rule_name(rules: object, index: int) -> str:
    rule = rules[index] if isinstance(rules, list) and len(rules) > index else None
    if not isinstance(rule, dict):
        return ""
    name = rule.get("match") or rule.get("click") or rule.get("scene") or ""
    name = name[0] if isinstance(name, list) and name else name
    return f" ({shown(str(name))})" if name else ""


def _kind(value: object) -> str:
    """What a refused value is, without its content: ``a str``, ``a table``."""
    kinds = {str: "a str", bool: "a bool", int: "an int", float: "a float", dict: "a table"}
    return kinds.get(type(value), "a list" if isinstance(value, list) else type(value).__name__)


def _check_secrets(settings: Settings) -> None:
    token = settings.wechat.token
    if token.lower() in PLACEHOLDERS or not _TOKEN_RE.match(token):
        raise ConfigError(
            "wechat.token",
            "is empty, a placeholder, or not 3-32 letters/digits",
            "run `bot init`, or copy the Token from the 公众号 admin page (基本配置 → 服务器配置)",
        )
    if not settings.wechat.app_id:
        raise ConfigError(
            "wechat.app_id", "is empty", "copy the AppID (wx…) from the 公众号 admin page"
        )
    aes = settings.wechat.encoding_aes_key
    if aes and _PLACEHOLDER_APP_ID.match(settings.wechat.app_id):
        raise ConfigError(
            "wechat.app_id",
            f"is the placeholder {settings.wechat.app_id!r} while an EncodingAESKey is set: "
            "every encrypted push would fail with -40005 (appid mismatch)",
            "copy the AppID (wx…) from the 公众号 admin page (基本配置)",
        )
    if aes and not re.fullmatch(r"[A-Za-z0-9]{43}", aes):
        raise ConfigError(
            "wechat.encoding_aes_key",
            "must be exactly 43 letters/digits",
            "copy the EncodingAESKey from the admin page, or leave it empty for plaintext mode",
        )
    keys = settings.links.secret_keys
    if not keys:
        raise ConfigError("links.secret_keys", "is empty", "run `bot init` to generate a key")
    for key in keys:
        if key.lower() in PLACEHOLDERS or "change" in key.lower() or len(key) < 16:
            raise ConfigError(
                "links.secret_keys",
                "holds an empty, short (<16 chars) or placeholder key",
                'generate one with `python -c "import secrets; print(secrets.token_urlsafe(32))"`',
            )


def _check_templates(settings: Settings) -> None:
    link: dict[str, object] = {"url": "u", "filename": "f", "minutes": 10, "keyword": "k"}
    link.update(window="w", code="C", pickup_url="p")
    checks = [
        (f"keywords[{i}].{key}", template, {n: link[n] for n in names})
        for i, rule in enumerate(settings.keywords)
        for key, template, names in rule.templates()
    ]
    checks += [("replies.other", settings.replies.other, {})]
    checks += [
        ("replies.welcome", settings.replies.welcome, {"keywords": "k"}),
        ("replies.help", settings.replies.help, {"keywords": "k"}),
    ]
    for key, template, names in checks:
        try:
            template.format(**names)
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                key,
                f"template has an unknown or broken placeholder ({exc})",
                f"use only {', '.join('{' + n + '}' for n in names)}; "
                "write {{ and }} for literal braces",
            ) from None


def _check_images(settings: Settings, *, check_files: bool) -> None:
    """Image rules need WeChat's API (the picture is uploaded) and a PNG or JPEG in files.dir."""
    for i, rule in enumerate(settings.keywords):
        if not rule.image:
            continue
        if not settings.wechat.app_secret.get_secret_value():
            raise ConfigError(
                f"keywords[{i}].image",
                "needs [wechat] app_secret: the picture is uploaded to WeChat as temporary media",
                "set wechat.app_secret (or BOT_WECHAT__APP_SECRET), or answer with text or news",
            )
        problem = image_problem(settings.files.dir, rule.image) if check_files else None
        if problem:
            raise ConfigError(
                f"keywords[{i}].image", problem, "put a PNG or JPEG (at most 10 MB) in files.dir"
            )


def _check_files(settings: Settings) -> None:
    _check_unique_triggers(settings)
    mode = MODES[settings.files.delivery]
    if mode.check is not None:
        mode.check(settings)
    if not mode.local_files:
        return  # the mode checks its files itself, at start-up and in `bot check`
    root = settings.files.dir
    if not root.is_dir():
        raise ConfigError("files.dir", f"{root} is not a directory", "create it or fix the path")
    for i, rule in enumerate(settings.keywords):
        for j, name in enumerate(rule.file_list):
            target = (root / name).resolve()
            if target.is_relative_to(root.resolve()) and target.is_file():
                continue
            key = f"keywords[{i}].file" + (f"s[{j}]" if rule.files else "")
            link = _symlink_on_the_way(root, name)
            if link is not None and not target.is_relative_to(root.resolve()):
                raise ConfigError(
                    key,
                    f"{name!r} is a symlink ({link} → {link.readlink()}) leading out of {root}: "
                    "links are only followed inside files.dir",
                    "copy the file into files.dir, or set files.dir to the folder it is in",
                )
            fix = "put the file in files.dir or fix the name"
            raise ConfigError(key, f"{name!r} is not a file inside {root}", fix)


def _symlink_on_the_way(root: Path, name: str) -> Path | None:
    """The first symlink among ``root/name`` and its folders below ``root``, if any."""
    path = root / name
    for step in reversed([path, *path.parents]):
        if step.is_relative_to(root) and step != root and step.is_symlink():
            return step
    return None


def _check_unique_triggers(settings: Settings) -> None:
    seen: dict[tuple[str, str], str] = {}
    for i, rule in enumerate(settings.keywords):
        triggers = [
            (index.field, getattr(rule, index.field))
            for name, index in INDEXES.items()
            if name != TEXT
        ]
        if MATCH_MODES[rule.mode] is None:  # exact: one rule per folded text
            triggers += [("match", fold(alias)) for alias in rule.aliases]
        for kind, value in triggers:
            if value and (kind, value) in seen:
                raise ConfigError(
                    f"keywords[{i}].{kind}", f"{value!r} is listed twice (also {seen[kind, value]})"
                )
            seen[kind, value] = f"keywords[{i}]"
