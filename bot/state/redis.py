"""Redis state for several instances: Lua scripts make every check-then-write atomic."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any, TypeVar

from loguru import logger
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import WatchError

from bot.errors import StoreUnavailable
from bot.state import coverage
from bot.state.base import (
    QUOTA_WINDOW,
    REVOKED_KEEP,
    SENT_KEEP,
    Attempt,
    Claim,
    Claimed,
    FirstAnswer,
    Fresh,
    Grant,
    Known,
    LinkRecord,
    OverQuota,
    PushClaimed,
    Remembered,
    SendClaim,
    SendQuota,
    Usage,
)
from bot.state.redis_codes import CODE_KEPT_AFTER_EXPIRY, RedisCodes
from bot.state.redis_scripts import (
    ANSWER_PUSH,
    CLAIM_AND_RECORD,
    CLAIM_MESSAGE,
    CLAIM_SEND,
    PREFIX,
    QUOTA,
    RECORD_LINK,
    REMEMBER_PUSH,
    answer_keys_args,
    encode_answer,
    guarded,
    link_keys_args,
    push_claimed,
    remembered,
)

T = TypeVar("T")
WATCH_TRIES = 100  # optimistic updates of one link's counts retried this often under contention
SORTED_SETS = ("attempts", "links")  # the audit trail's keys, checked by the health probe

MEDIA_KEPT_AFTER_EXPIRY = 60.0  # likewise a media id: media_id() checks expires_at

OWNER_PASSWORD = f"{PREFIX}owner:password"  # never expires: losing it only turns /admin off


POOL_SIZE = 32  # Redis calls (and connections) a process has in flight at most


class RedisStore(RedisCodes):
    """``redis://HOST:PORT/DB``: one store shared by every instance."""

    def __init__(self, url: str, *, clock: Callable[[], float] = time.time) -> None:
        self.url = url
        self._clock = clock
        self._redis = Redis.from_url(
            url,
            decode_responses=True,
            # Generous: each call on a request's path is bounded by STORE_TIMEOUT anyway, and a
            # `bot` command in a container resolves the host name first (podman's DNS).
            socket_timeout=2,
            socket_connect_timeout=5,
            retry=Retry(ExponentialBackoff(cap=0.1, base=0.01), 1),
        )
        # At most POOL_SIZE calls at once, so as many connections; the others wait their turn
        # (each caller bounds its wait). Unbounded (#20), a burst of pushes failed past
        # redis-py's default pool of 100 ("Too many connections": the push fell back to this
        # process's memory), and its connects at once overran redis-server's accept backlog
        # (511): the slowest push of 512 waited for TCP's retry, 4 s.
        self.calls = asyncio.Semaphore(POOL_SIZE)
        self._claim_message = self._redis.register_script(CLAIM_MESSAGE)
        self._record_link = self._redis.register_script(RECORD_LINK)
        self._claim_and_record = self._redis.register_script(CLAIM_AND_RECORD)
        self._answer_push = self._redis.register_script(ANSWER_PUSH)
        self._remember_push = self._redis.register_script(REMEMBER_PUSH)
        self._register_code_scripts()
        self._claim_send = self._redis.register_script(CLAIM_SEND)

    @classmethod
    def from_url(cls, url: str, *, clock: Callable[[], float] = time.time) -> RedisStore:
        """The store of a ``redis://`` or ``rediss://`` URL."""
        return cls(url, clock=clock)

    async def open(self) -> None:
        """Check the server answers (a failure is logged; every call reconnects)."""
        try:
            await guarded(self._redis.ping)()
        except StoreUnavailable as exc:
            logger.error("{} ({})", exc, self.url.split("@")[-1])

    @guarded
    async def ping(self) -> bool:
        """True when a write reads back and the audit keys have their types; else raises.

        A read-only replica, a full memory or a failed save (MISCONF) refuses the write; the
        client reconnects by itself after a restart.
        """
        nonce = secrets.token_hex(8)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(f"{PREFIX}health", nonce, px=60_000)
            pipe.get(f"{PREFIX}health")
            for key in SORTED_SETS:
                pipe.type(PREFIX + key)
            _, got, *types = await pipe.execute()
        if got != nonce:
            raise StoreUnavailable("redis: a write did not read back")
        for key, kind in zip(SORTED_SETS, types, strict=True):
            if kind not in ("zset", "none"):
                raise StoreUnavailable(f"redis: {PREFIX}{key} is a {kind}, not a sorted set")
        return True

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()

    @guarded
    async def claim_message(self, key: str, ttl: float) -> Remembered | None:
        """None when first; else the remembered (maybe pending) reply."""
        value = await self._claim_message(keys=[PREFIX + "reply:" + key], args=[int(ttl * 1000)])
        return remembered(value)

    @guarded
    async def save_reply(self, key: str, text: str | None, ttl: float) -> None:
        """Remember the answer."""
        await self._redis.set(PREFIX + "reply:" + key, encode_answer(text), px=int(ttl * 1000))

    @guarded
    async def read_reply(self, key: str) -> Remembered | None:
        """The remembered reply, if any."""
        return remembered(await self._redis.get(PREFIX + "reply:" + key))

    @guarded
    async def record_link(self, link: LinkRecord, per_hour: int) -> float | None:
        """Record the link unless the follower's hourly quota is used up."""
        keys, args = link_keys_args(link, per_hour)
        oldest = await self._record_link(keys=keys, args=args)
        return None if oldest is None else float(oldest) + QUOTA_WINDOW

    @guarded
    async def claim_and_record(
        self, key: str, ttl: float, text: str | None, link: LinkRecord | None, per_hour: int
    ) -> Claimed:
        """Claim, check the quota, record the link and remember the answer: one script."""
        keys, args = link_keys_args(link, per_hour) if link else ([], [])
        value = await self._claim_and_record(
            keys=[PREFIX + "reply:" + key, *keys],
            args=[int(ttl * 1000), encode_answer(text), int(link is not None), *args],
        )
        if isinstance(value, str) and value.startswith(QUOTA):
            return OverQuota(float(value[1:]) + QUOTA_WINDOW)
        known = remembered(value)
        return Fresh() if known is None else Known(known)

    @guarded
    async def answer_push(self, first: FirstAnswer) -> PushClaimed:
        """The replay record, claim, quota, links, codes and answer: one script, one trip."""
        keys, args = answer_keys_args(first, self._clock(), CODE_KEPT_AFTER_EXPIRY)
        return push_claimed(await self._answer_push(keys=keys, args=args), first)

    @guarded
    async def remember_push(self, key: str, digest: str, ttl: float) -> str | None:
        """Remember a callback's body digest under its signed triple; the known one if any."""
        value = await self._remember_push(
            keys=[PREFIX + "push:" + key], args=[digest, max(1, int(ttl * 1000))]
        )
        return value if isinstance(value, str) else None

    @guarded
    async def link(self, link_id: str) -> LinkRecord | None:
        """One recorded link."""
        fields = await self._redis.hgetall(f"{PREFIX}link:{link_id}")
        return _link_of(link_id, fields) if fields else None

    @guarded
    async def revoke(self, link_ids: list[str]) -> int:
        """Revoke links; returns how many were new."""
        async with self._redis.pipeline(transaction=True) as pipe:
            for link_id in link_ids:
                pipe.set(f"{PREFIX}revoked:{link_id}", "1", ex=int(REVOKED_KEEP), nx=True)
            results = await pipe.execute()
        return sum(1 for r in results if r)

    @guarded
    async def links_of(self, *, openid: str | None = None, file: str | None = None) -> list[str]:
        """Ids of links for a follower or a file."""
        key = f"{PREFIX}user:{openid}" if openid is not None else f"{PREFIX}file:{file}"
        return [str(i) for i in await self._redis.zrange(key, 0, -1)]

    @guarded
    async def usage(self, link_id: str) -> Usage:
        """Revocation and counts of one link."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.exists(f"{PREFIX}revoked:{link_id}")
            pipe.get(f"{PREFIX}counts:{link_id}")
            revoked, state = await pipe.execute()
        counts = coverage.LinkCounts.from_json(state)
        coverage.lapse(counts, self._clock())
        return Usage(bool(revoked), len(counts.leases), counts.copies(), counts.sent)

    async def _update(
        self, link_id: str, change: Callable[[coverage.LinkCounts, bool], T], keep: float
    ) -> T:
        """Read, change and write one link's counts atomically (optimistic: WATCH, retried)."""
        key, revoked_key = f"{PREFIX}counts:{link_id}", f"{PREFIX}revoked:{link_id}"
        async with self._redis.pipeline(transaction=True) as pipe:
            for _ in range(WATCH_TRIES):
                try:
                    await pipe.watch(key, revoked_key)
                    counts = coverage.LinkCounts.from_json(str(await pipe.get(key) or ""))
                    result = change(counts, bool(await pipe.exists(revoked_key)))
                    ttl = max(1, int(keep), int(await pipe.ttl(key)))
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(key, counts.to_json(), ex=ttl)
                    await pipe.execute()
                    return result
                except WatchError:
                    continue
        raise StoreUnavailable(f"redis: counts of {link_id} changed {WATCH_TRIES} times in a row")

    @guarded
    async def claim(self, claim: Claim) -> Grant:
        """Take a lease if the link's bounds allow it."""
        c, now = claim, self._clock()

        def change(counts: coverage.LinkCounts, revoked: bool) -> Grant:
            if revoked:
                return Grant.REVOKED
            until = now + c.lease_seconds
            return coverage.admit(
                counts, c.lease_id, c.start, c.end, c.size, c.limit, until, now, c.handed, c.noted
            )

        return await self._update(c.link_id, change, max(c.keep, c.lease_seconds))

    @guarded
    async def renew(self, link_id: str, lease_id: str, sent: int, lease_seconds: float) -> bool:
        """Extend a lease."""
        now = self._clock()
        return await self._update(
            link_id,
            lambda counts, _: coverage.renew(counts, lease_id, sent, now + lease_seconds, now),
            lease_seconds,
        )

    @guarded
    async def release(self, link_id: str, lease_id: str, sent: int) -> bool:
        """End a lease; True when it completed a copy."""
        now = self._clock()
        return await self._update(
            link_id, lambda counts, _: coverage.release(counts, lease_id, sent, now), 1
        )

    async def record_attempt(self, attempt: Attempt) -> None:
        """Append an attempt."""
        await self.record_attempts([attempt])

    @guarded
    async def record_attempts(self, attempts: Sequence[Attempt]) -> None:
        """Append attempts in one ZADD (an id keeps identical attempts apart; a row's own
        ``uid`` makes writing it again a no-op)."""
        if not attempts:
            return
        members = {
            json.dumps(
                {**asdict(a), "_id": a.uid or secrets.token_hex(6)}, ensure_ascii=False
            ): a.at
            for a in attempts
        }
        await self._redis.zadd(f"{PREFIX}attempts", members)

    @guarded
    async def links_since(self, since: float) -> list[LinkRecord]:
        """Links issued since a time (one pipelined trip for all their records)."""
        ids = [str(i) for i in await self._redis.zrangebyscore(f"{PREFIX}links", since, "+inf")]
        async with self._redis.pipeline(transaction=False) as pipe:
            for link_id in ids:
                pipe.hgetall(f"{PREFIX}link:{link_id}")
            records = await pipe.execute() if ids else []
        return [_link_of(i, fields) for i, fields in zip(ids, records, strict=True) if fields]

    @guarded
    async def attempts_since(self, since: float, link_id: str | None = None) -> list[Attempt]:
        """Attempts since a time, oldest first."""
        members = await self._redis.zrangebyscore(f"{PREFIX}attempts", since, "+inf")
        attempts = []
        for member in members:
            fields = json.loads(str(member))
            fields.pop("_id", None)
            if link_id is None or fields["link_id"] == link_id:
                attempts.append(Attempt(**fields))
        return attempts

    @guarded
    async def prune(self, before: float) -> int:
        """Drop links and attempts older than ``before`` (replies, counts, revocations expire)."""
        old = await self._redis.zrangebyscore(f"{PREFIX}links", "-inf", f"({before}")
        removed = 0
        for link_id in map(str, old):
            openid, file = map(
                str, await self._redis.hmget(f"{PREFIX}link:{link_id}", ["openid", "file"])
            )
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zrem(f"{PREFIX}user:{openid}", link_id)
                pipe.zrem(f"{PREFIX}file:{file}", link_id)
                pipe.zrem(f"{PREFIX}links", link_id)
                pipe.delete(f"{PREFIX}link:{link_id}")
                await pipe.execute()
            removed += 1
        removed += await self._redis.zremrangebyscore(f"{PREFIX}attempts", "-inf", f"({before}")
        return removed

    # --- 客服 sends and media ids (bot.wechat.api.late, bot.wechat.api.media) ----------------

    @guarded
    async def claim_send(self, key: str, ttl: float, openid: str, quota: SendQuota) -> SendClaim:
        """Claim the one 客服 send of a message's reply, within the follower's quota."""
        keys = [
            f"{PREFIX}sent:{key}",
            f"{PREFIX}sends:{quota.name}:{openid}",
            f"{PREFIX}reply:{key}",
        ]
        keep_ms = int(max(quota.window, SENT_KEEP) * 1000)
        args: list[str | int | float] = [
            repr(self._clock()),
            quota.window,
            quota.limit,
            keep_ms,
            max(1, int(ttl * 1000)),
            key,
        ]
        return SendClaim(await self._claim_send(keys=keys, args=args))

    @guarded
    async def media_id(self, name: str) -> str | None:
        """The kept media_id of an image, unless expired."""
        media_id, expires_at = await self._redis.hmget(
            f"{PREFIX}media:{name}", ["media_id", "expires_at"]
        )
        if media_id is None or expires_at is None or float(expires_at) <= self._clock():
            return None
        return str(media_id)

    @guarded
    async def keep_media_id(self, name: str, media_id: str, expires_at: float) -> None:
        """Keep an image's media_id until it expires."""
        keep_ms = int((max(expires_at - self._clock(), 0) + MEDIA_KEPT_AFTER_EXPIRY) * 1000)
        async with self._redis.pipeline(transaction=True) as pipe:
            key = f"{PREFIX}media:{name}"
            pipe.hset(key, mapping={"media_id": media_id, "expires_at": repr(expires_at)})
            pipe.pexpire(key, keep_ms)
            await pipe.execute()

    # --- the owner's page password (bot.owner.password) ----------------------------------------

    @guarded
    async def owner_password(self) -> str | None:
        """The stored hash, if set."""
        value = await self._redis.get(OWNER_PASSWORD)
        return None if value is None else str(value)

    @guarded
    async def set_owner_password(self, hashed: str | None) -> None:
        """Store (with no expiry) or forget the hash."""
        if hashed is None:
            await self._redis.delete(OWNER_PASSWORD)
        else:
            await self._redis.set(OWNER_PASSWORD, hashed)


def _link_of(link_id: str, fields: dict[Any, Any]) -> LinkRecord:
    return LinkRecord(
        link_id,
        str(fields["openid"]),
        str(fields["keyword"]),
        str(fields["file"]),
        float(fields["issued_at"]),
        float(fields["expires_at"]),
    )
