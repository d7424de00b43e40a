"""Redis's pick-up codes (``bot.state.base.PickupCodes``): ``bot:code:<CODE>`` hashes, and wrong
codes counted per guesser and server-wide in ``bot:guess:<guesser>:<bucket>`` counters; and the
owner's wrong passwords, a sorted set of times per address and one for the server
(``bot:login:<address>``, ``bot:login:*``)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from bot.state.guesses import (
    GUESS_BUCKETS,
    CodeFound,
    CodeWrong,
    GuessLimits,
    GuessRefused,
    Tried,
    guess_buckets,
)
from bot.state.redis_scripts import PREFIX, PUT_CODE, TRY_CODE, guarded

CODE_KEPT_AFTER_EXPIRY = 60.0  # the key outlives its code a little; resolve checks expires_at
EVERYONE = "*"  # the server-wide counters (no address is written so)


class RedisCodes:
    """The pick-up code methods of ``RedisStore``."""

    _redis: Redis
    _clock: Callable[[], float]

    def _register_code_scripts(self) -> None:
        self._put_code: Any = self._redis.register_script(PUT_CODE)
        self._try_code: Any = self._redis.register_script(TRY_CODE)

    @guarded
    async def put_code(self, code: str, token: str, link_id: str, expires_at: float) -> bool:
        """Store a code unless it is live already."""
        now = self._clock()
        keep_ms = int((max(expires_at - now, 0) + CODE_KEPT_AFTER_EXPIRY) * 1000)
        args: list[str | int] = [repr(now), token, link_id, repr(expires_at), keep_ms]
        return bool(await self._put_code(keys=[f"{PREFIX}code:{code}"], args=args))

    @guarded
    async def resolve_code(self, code: str) -> tuple[str, str] | None:
        """The live code's token and link id."""
        token, link_id, expires_at = await self._redis.hmget(
            f"{PREFIX}code:{code}", ["token", "link_id", "expires_at"]
        )
        if token is None or expires_at is None or float(expires_at) <= self._clock():
            return None
        return str(token), str(link_id)

    @guarded
    async def try_code(self, code: str, guesser: str, limits: GuessLimits) -> Tried:
        """Look a code up for a guesser, unless refused; a wrong one counted (one script)."""
        now = self._clock()
        buckets, width = guess_buckets(now, limits.window)
        keys = [f"{PREFIX}code:{code}"]
        keys += [f"{PREFIX}guess:{who}:{b}" for who in (guesser, EVERYONE) for b in buckets]
        keep_ms = int((limits.window + width) * 1000)  # the real clock's; the buckets say when
        args = [repr(now), limits.per_guesser, limits.server, keep_ms, GUESS_BUCKETS]
        answer = await self._try_code(keys=keys, args=[*args, int(bool(code))])
        if answer[0] == "R":
            return GuessRefused((buckets[int(answer[1])] + GUESS_BUCKETS) * width)
        if answer[0] == "F":
            return CodeFound(str(answer[1]), str(answer[2]))
        return CodeWrong()

    @guarded
    async def drop_code(self, code: str) -> None:
        """Forget a code."""
        await self._redis.delete(f"{PREFIX}code:{code}")

    @guarded
    async def wrong_login(self, address: str, at: float, keep: float) -> None:
        """Note a wrong password against ``address`` and the server; forget notes past ``keep``."""
        note = f"{at!r}:{secrets.token_hex(4)}"  # two wrong passwords at one instant are two
        async with self._redis.pipeline(transaction=True) as pipe:
            for who in (address, EVERYONE):
                key = f"{PREFIX}login:{who}"
                pipe.zadd(key, {note: at})
                pipe.zremrangebyscore(key, "-inf", f"({at - keep!r}")
                pipe.pexpire(key, int(keep * 1000) + 1000)
            await pipe.execute()

    @guarded
    async def wrong_logins(self, address: str, nth: int, nth_server: int) -> tuple[float, float]:
        """The ``nth`` newest wrong password's time from ``address``, and on the server."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for who, n in ((address, nth), (EVERYONE, nth_server)):
                pipe.zrevrange(
                    f"{PREFIX}login:{who}", max(n - 1, 0), max(n - 1, 0), withscores=True
                )
            mine, everyone = await pipe.execute()
        return (
            float(mine[0][1]) if mine and nth > 0 else 0.0,
            float(everyone[0][1]) if everyone and nth_server > 0 else 0.0,
        )
