"""One access token for every worker and instance: ``stable_token`` behind a shared cache."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from loguru import logger

from bot.wechat.api.errors import TokenRejected, WeChatUnreachable

REFRESH_MARGIN = 300.0  # refreshed when under 5 minutes remain (WeChat's own overlap)
FORCE_PER_DAY = 20  # force_refresh: at most 20 a day...
FORCE_SPACING = 30.0  # ...and 30 s apart
DAY = 86400.0
LOCK_SECONDS = 15.0  # the refresher's lock lapses by itself if its process dies
WAIT_SECONDS = 10.0  # how long the others wait for the refresher before giving up
POLL_SECONDS = 0.05

Fetch = Callable[[bool], Awaitable[tuple[str, int]]]  # force_refresh -> (token, expires_in)


@dataclass(frozen=True)
class CachedToken:
    """The shared token, its expiry (wall clock) and when forced refreshes were spent."""

    token: str = field(repr=False)
    expires_at: float
    forced: tuple[float, ...] = ()

    def fresh(self, now: float) -> bool:
        """More than five minutes left."""
        return self.expires_at - now >= REFRESH_MARGIN

    def valid(self, now: float) -> bool:
        """Not yet expired (WeChat still accepts it)."""
        return self.expires_at > now


class TokenCache(Protocol):
    """Where the token is shared: the state store (SQLite or Redis), or memory in tests."""

    async def get(self) -> CachedToken | None:
        """The cached token, if any."""

    async def set(self, token: CachedToken) -> None:
        """Replace the cached token."""

    async def acquire(self, owner: str, seconds: float) -> bool:
        """Take the refresh lock for ``seconds`` unless someone else holds it."""

    async def release(self, owner: str) -> None:
        """Drop the refresh lock if ``owner`` still holds it."""


class MemoryTokenCache:
    """A TokenCache in this process only (tests, one-shot CLI commands)."""

    def __init__(self, monotonic: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self._token: CachedToken | None = None
        self._lock: tuple[str, float] | None = None

    async def get(self) -> CachedToken | None:
        return self._token

    async def set(self, token: CachedToken) -> None:
        self._token = token

    async def acquire(self, owner: str, seconds: float) -> bool:
        now = self._monotonic()
        if self._lock is not None and self._lock[1] > now and self._lock[0] != owner:
            return False
        self._lock = (owner, now + seconds)
        return True

    async def release(self, owner: str) -> None:
        if self._lock is not None and self._lock[0] == owner:
            self._lock = None


class TokenSource:
    """Hands out the shared token; one caller at a time refreshes it (the others wait)."""

    def __init__(
        self,
        fetch: Fetch,
        cache: TokenCache,
        *,
        wall: Callable[[], float],
        monotonic: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        wait: float = WAIT_SECONDS,
    ) -> None:
        self._fetch, self._cache = fetch, cache
        self._wall, self._monotonic, self._sleep, self._wait = wall, monotonic, sleep, wait
        self.owner = secrets.token_hex(8)

    def __repr__(self) -> str:
        return f"TokenSource(owner={self.owner!r})"

    async def token(self) -> str:
        """A token with over five minutes left, refreshed by one caller when needed."""
        return await self._obtain(stale=None)

    async def replace(self, stale: str) -> str:
        """A token other than ``stale``, which WeChat refused (40001, 40014, 42001)."""
        return await self._obtain(stale=stale)

    def _usable(self, cached: CachedToken | None, stale: str | None) -> bool:
        if cached is None or cached.token == stale:
            return False
        return cached.fresh(self._wall()) if stale is None else cached.valid(self._wall())

    async def _obtain(self, stale: str | None) -> str:
        cached = await self._cache.get()
        if cached is not None and self._usable(cached, stale):
            return cached.token
        deadline = self._monotonic() + self._wait
        owner = f"{self.owner}-{secrets.token_hex(4)}"  # each caller its own, even in one process
        while True:
            if await self._cache.acquire(owner, LOCK_SECONDS):
                try:
                    return await self._refresh(stale)
                finally:
                    await self._cache.release(owner)
            # Someone else refreshes: a still valid token will do meanwhile, else wait for theirs.
            if stale is None and cached is not None and cached.valid(self._wall()):
                return cached.token
            if self._monotonic() > deadline:
                why = f"another process held the access-token lock over {self._wait:g}s"
                raise WeChatUnreachable("cgi-bin/stable_token", why)
            await self._sleep(POLL_SECONDS)
            cached = await self._cache.get()
            if self._usable(cached, stale):
                assert cached is not None  # noqa: S101 (narrowing for mypy)
                return cached.token

    async def _refresh(self, stale: str | None) -> str:
        cached = await self._cache.get()
        if self._usable(cached, stale):  # refreshed while we waited for the lock
            assert cached is not None  # noqa: S101
            return cached.token
        forced = cached.forced if cached is not None else ()
        token, expires_in = await self._fetch(False)
        if stale is not None and token == stale:
            forced = self._may_force(forced)
            # Recorded before the call: WeChat counts a forced refresh even when it fails.
            await self._cache.set(CachedToken(token, self._wall() + expires_in, forced))
            logger.warning("wechat api: the access token was refused; forcing a refresh")
            token, expires_in = await self._fetch(True)
        now = self._wall()
        await self._cache.set(CachedToken(token, now + expires_in, forced))
        logger.info("wechat api: access token refreshed, {}s left", expires_in)
        return token

    def _may_force(self, forced: tuple[float, ...]) -> tuple[float, ...]:
        now = self._wall()
        recent = tuple(at for at in forced if now - at < DAY)
        if len(recent) >= FORCE_PER_DAY or (recent and now - recent[-1] < FORCE_SPACING):
            why = f"{len(recent)} forced refreshes in 24 h" if recent else ""
            fix = (
                f"WeChat allows {FORCE_PER_DAY} forced refreshes a day, {FORCE_SPACING:g} s"
                f" apart ({why}); try again later, and check nothing else resets the AppSecret"
            )
            raise TokenRejected("cgi-bin/stable_token", 40001, "force_refresh not allowed now", fix)
        return (*recent, now)
