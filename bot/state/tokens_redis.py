"""The shared WeChat access token in Redis: SET NX PX locks it, compare-and-delete frees it."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.errors import StoreUnavailable
from bot.wechat.api.token import CachedToken

T = TypeVar("T")
PREFIX = "bot:wechat:"
KEEP_AFTER_EXPIRY = 86400  # the record (and its forced-refresh history) outlives the token a day
# Deletes the lock only while it is still this owner's (it may have lapsed and been retaken).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisTokenCache:
    """A TokenCache in the state store's Redis, shared by every worker and instance."""

    @classmethod
    def from_url(
        cls, url: str, name: str, *, wall: Callable[[], float] = time.time
    ) -> RedisTokenCache:
        """The cache in the Redis of a ``redis://`` state URL."""
        return cls(url, name, wall=wall)

    def __init__(
        self, url_or_client: str | Redis, name: str, *, wall: Callable[[], float] = time.time
    ) -> None:
        if isinstance(url_or_client, str):
            url_or_client = Redis.from_url(url_or_client, decode_responses=True)
        self._redis, self.name, self._wall = url_or_client, name, wall
        self._key, self._lock = f"{PREFIX}token:{name}", f"{PREFIX}token-lock:{name}"

    def __repr__(self) -> str:
        return f"RedisTokenCache({self.name!r})"

    async def _run(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except RedisError as exc:
            raise StoreUnavailable(f"redis: token cache: {exc}") from None

    async def get(self) -> CachedToken | None:
        raw: Any = await self._run(self._redis.get(self._key))
        if raw is None:
            return None
        data = json.loads(raw)
        return CachedToken(data["token"], float(data["expires_at"]), tuple(data["forced"]))

    async def set(self, token: CachedToken) -> None:
        raw = json.dumps(
            {"token": token.token, "expires_at": token.expires_at, "forced": list(token.forced)}
        )
        keep = max(1, int(token.expires_at - self._wall()) + KEEP_AFTER_EXPIRY)
        await self._run(self._redis.set(self._key, raw, ex=keep))

    async def acquire(self, owner: str, seconds: float) -> bool:
        taken = await self._run(
            self._redis.set(self._lock, owner, nx=True, px=max(1, int(seconds * 1000)))
        )
        return bool(taken)

    async def release(self, owner: str) -> None:
        await self._run(self._redis.eval(_RELEASE, 1, self._lock, owner))

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()
