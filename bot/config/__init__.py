"""Typed settings: a TOML file plus ``BOT_<SECTION>__<KEY>`` environment overrides.

``sections`` holds each section and ``Settings``; ``load`` reads the file and the environment;
``checks`` runs the checks that span sections. One ``Settings`` is built once and passed in.
"""

from bot.config.load import config_path, config_text, load_settings
from bot.config.sections import (
    DEFAULT_CONFIG,
    DEFAULT_HELP,
    DEFAULT_WELCOME,
    PLACEHOLDERS,
    FilesSettings,
    LimitsSettings,
    LinksSettings,
    LogSettings,
    RepliesSettings,
    ServerSettings,
    Settings,
    StateSettings,
    WeChatSettings,
)
from bot.keywords.settings import KeywordSettings

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_HELP",
    "DEFAULT_WELCOME",
    "PLACEHOLDERS",
    "FilesSettings",
    "KeywordSettings",
    "LimitsSettings",
    "LinksSettings",
    "LogSettings",
    "RepliesSettings",
    "ServerSettings",
    "Settings",
    "StateSettings",
    "WeChatSettings",
    "config_path",
    "config_text",
    "load_settings",
]
