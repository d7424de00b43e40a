"""Reading the config: a TOML file plus ``BOT_<SECTION>__<KEY>`` environment overrides."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot.config.checks import check_catalogue, check_images, check_secrets, check_templates
from bot.config.sections import DEFAULT_CONFIG, Settings
from bot.errors import ConfigError
from bot.keywords.patterns import shown
from bot.keywords.triggers import INDEXES
from bot.state import anchored


def config_path(explicit: Path | None = None) -> Path:
    """``--config PATH``, else ``$BOT_CONFIG``, else ``./config.toml``."""
    if explicit is not None:
        return explicit
    return Path(os.environ.get("BOT_CONFIG") or DEFAULT_CONFIG)


def config_text(path: Path | None = None) -> str | None:
    """The config file's text (None: no file, the environment alone configures)."""
    path = config_path(path)
    if path.exists():
        try:
            return path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(str(path), f"is not valid TOML ({exc})", "fix the syntax") from None
    if not any(k.upper().startswith("BOT_") for k in os.environ):
        raise ConfigError(str(path), "file not found", "run `bot init` to write one")
    return None


def load_settings(
    path: Path | None = None, *, check_files: bool = True, text: str | None = None
) -> Settings:
    """Read, validate and resolve the configuration; ConfigError names the key and the fix.

    ``text``: the file's content as read before (``config_text``); relative paths in it are
    still taken from ``path``'s folder.
    """
    path = config_path(path)
    text = config_text(path) if text is None else text
    data: dict[str, Any] = {}
    if text is not None:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(path), f"is not valid TOML ({exc})", "fix the syntax") from None
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
    settings.state.url = anchored(settings.state.url, base)
    check_secrets(settings)
    check_templates(settings)
    check_images(settings, check_files=check_files)
    if check_files:
        check_catalogue(settings)
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
    name = next((rule[i.field] for i in INDEXES.values() if rule.get(i.field)), "")
    name = name[0] if isinstance(name, list) and name else name
    return f" ({shown(str(name))})" if name else ""


def _kind(value: object) -> str:
    """What a refused value is, without its content: ``a str``, ``a table``."""
    kinds = {str: "a str", bool: "a bool", int: "an int", float: "a float", dict: "a table"}
    return kinds.get(type(value), "a list" if isinstance(value, list) else type(value).__name__)
