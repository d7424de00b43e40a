"""Where the bot remembers things: ``store_from_url`` picks SQLite or Redis from ``[state] url``."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from bot.errors import ConfigError
from bot.state.base import (
    Answers,
    Attempt,
    Audit,
    Claim,
    Claimed,
    Counts,
    Fresh,
    Grant,
    Known,
    LinkRecord,
    Outcome,
    OverQuota,
    PickupCodes,
    Pushes,
    Remembered,
    Store,
    Usage,
    bounded,
)

__all__ = [
    "Answers",
    "Attempt",
    "Audit",
    "Claim",
    "Claimed",
    "Counts",
    "Fresh",
    "Grant",
    "Known",
    "LinkRecord",
    "Outcome",
    "OverQuota",
    "PickupCodes",
    "Pushes",
    "Remembered",
    "Store",
    "Usage",
    "bounded",
    "sqlite_path",
    "store_from_url",
]
SQLITE = "sqlite:///"
REDIS = ("redis://", "rediss://")


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///PATH`` URL (``sqlite:////abs/path`` is absolute), else None."""
    return Path(url[len(SQLITE) :]) if url.startswith(SQLITE) and url != SQLITE else None


def store_from_url(url: str, *, clock: Callable[[], float] = time.time) -> Store:
    """The store for a URL, not connected yet (``open()`` does that, in the app's lifespan)."""
    path = sqlite_path(url)
    if path is not None:
        from bot.state.sqlite import SqliteStore

        return SqliteStore(path, clock=clock)
    if url.startswith(REDIS):
        from bot.state.redis import RedisStore

        return RedisStore(url, clock=clock)
    raise ConfigError("state.url", f"{url!r} is neither sqlite:///PATH nor redis://HOST:PORT/DB")
