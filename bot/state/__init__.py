"""Where the bot remembers things: ``store_from_url`` picks a store from ``[state] url``.

A new store is one module (a class with ``from_url``) plus one line in ``STORES``.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.errors import ConfigError
from bot.state.base import (
    STORE_TIMEOUT,
    Answers,
    Attempt,
    Audit,
    Claim,
    Claimed,
    CodeTaken,
    Counts,
    FirstAnswer,
    Fresh,
    Grant,
    Known,
    LateSends,
    LinkRecord,
    MediaIds,
    Outcome,
    OverQuota,
    OwnerPassword,
    PickupCode,
    PickupCodes,
    PushClaimed,
    Pushes,
    PushSeen,
    Remembered,
    Replayed,
    SendClaim,
    SendQuota,
    Store,
    Usage,
    bounded,
)
from bot.state.guesses import CodeFound, CodeWrong, GuessLimits, GuessRefused, Tried

if TYPE_CHECKING:
    from bot.wechat.api.token import TokenCache

__all__ = [
    "STORES",
    "STORE_TIMEOUT",
    "Answers",
    "Attempt",
    "Audit",
    "Backend",
    "Claim",
    "Claimed",
    "CodeFound",
    "CodeTaken",
    "CodeWrong",
    "Counts",
    "FirstAnswer",
    "Fresh",
    "Grant",
    "GuessLimits",
    "GuessRefused",
    "Known",
    "LateSends",
    "LinkRecord",
    "MediaIds",
    "Outcome",
    "OverQuota",
    "OwnerPassword",
    "PickupCode",
    "PickupCodes",
    "PushClaimed",
    "PushSeen",
    "Pushes",
    "Remembered",
    "Replayed",
    "SendClaim",
    "SendQuota",
    "Store",
    "Tried",
    "Usage",
    "anchored",
    "bounded",
    "known_url",
    "sqlite_path",
    "store_from_url",
    "tokens_from_url",
    "url_forms",
]


@dataclass(frozen=True, slots=True)
class Backend:
    """A store in ``STORES``: where its class is and how its URL is written (for errors)."""

    target: str  # "module:Class", imported only when chosen; ``Class.from_url(url, clock=)``
    form: str
    # "module:Class" of its WeChat access-token cache, ``from_url(url, name, wall=)`` ("": none)
    tokens: str = ""


# Every store, by the URL prefixes it answers to: a new store is its module plus one line here.
STORES: dict[tuple[str, ...], Backend] = {
    ("sqlite:///",): Backend(
        "bot.state.sqlite:SqliteStore",
        "sqlite:///PATH (e.g. sqlite:///state/bot.db)",
        "bot.state.tokens_sqlite:SqliteTokenCache",
    ),
    ("redis://", "rediss://"): Backend(
        "bot.state.redis:RedisStore",
        "redis://HOST:PORT/DB",
        "bot.state.tokens_redis:RedisTokenCache",
    ),
}
SQLITE = "sqlite:///"


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///PATH`` URL (``sqlite:////abs/path`` is absolute), else None."""
    return Path(url[len(SQLITE) :]) if url.startswith(SQLITE) and url != SQLITE else None


def anchored(url: str, base: Path) -> str:
    """The URL with a relative file in it taken from ``base`` (the config's folder)."""
    path = sqlite_path(url)
    return f"{SQLITE}{base / path}" if path is not None and not path.is_absolute() else url


def _backend(url: str) -> Backend | None:
    """The store for a URL: its prefix, then something after it."""
    for prefixes, backend in STORES.items():
        if any(url.startswith(p) and url != p for p in prefixes):
            return backend
    return None


def _load(target: str) -> Any:
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def known_url(url: str) -> bool:
    """True when some store answers to this URL (``[state] url`` is checked with it)."""
    return _backend(url) is not None


def url_forms() -> str:
    """How each store's URL is written, for error messages."""
    return " or ".join(backend.form for backend in STORES.values())


def store_from_url(url: str, *, clock: Callable[[], float] = time.time) -> Store:
    """The store for a URL, not connected yet (``open()`` does that, in the app's lifespan)."""
    backend = _backend(url)
    if backend is None:
        # Not the URL itself: a redis:// URL may carry a password.
        raise ConfigError("state.url", f"is none of {url_forms()}")
    store: Store = _load(backend.target).from_url(url, clock=clock)
    return store


def tokens_from_url(url: str, name: str, *, wall: Callable[[], float] = time.time) -> TokenCache:
    """The WeChat access-token cache kept in the store at ``url`` (one token for every worker)."""
    backend = _backend(url)
    if backend is None or not backend.tokens:
        keeping = " or ".join(b.form for b in STORES.values() if b.tokens)
        raise ConfigError("state.url", f"keeps no WeChat access token: use {keeping}")
    cache: TokenCache = _load(backend.tokens).from_url(url, name, wall=wall)
    return cache
