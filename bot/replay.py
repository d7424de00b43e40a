"""Replays of a seen callback signature: the same triple may only ever carry the same body."""

from __future__ import annotations

import hashlib
import time

from loguru import logger

from bot.clock import Clock, Deadline
from bot.errors import PushReplayed, StoreUnavailable
from bot.state import STORE_TIMEOUT, Pushes, PushSeen, bounded

MARGIN = 0.5  # left of a push's deadline for the answer itself, at the least
REPLAYED = "replay: a seen signature/timestamp/nonce with a different body"


def push_key(signature: str, timestamp: str, nonce: str, msg_signature: str = "") -> str:
    """The remembered name of a signed triple (with msg_signature, which signs the body)."""
    text = f"{signature}\n{timestamp}\n{nonce}\n{msg_signature}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class ReplayGuard:
    """PushReplayed when a signed triple seen before comes back with a different body.

    WeChat's signature covers token, timestamp and nonce but not the body (plaintext mode), so a
    logged query string would otherwise sign any body until the timestamp goes stale. The same
    body again is WeChat's own retry and passes (dedup answers it).
    """

    def __init__(
        self,
        memory: Pushes,
        *,
        max_clock_skew: int,
        clock: Clock = time.time,
        mono: Clock = time.monotonic,
    ):
        self._memory, self._skew, self._clock, self._mono = memory, max_clock_skew, clock, mono
        self._local: dict[str, tuple[float, str]] = {}  # when the store does not answer

    def seen(
        self, body: bytes, *, signature: str, timestamp: str, nonce: str, msg_signature: str = ""
    ) -> PushSeen:
        """The record of an accepted callback (the store keeps it with the answer: one trip)."""
        key = push_key(signature, timestamp, nonce, msg_signature)
        digest = hashlib.sha256(body).hexdigest()[:32]
        # Kept until the timestamp goes stale (then freshness refuses the triple anyway).
        ttl = max(1.0, float(timestamp) + self._skew + 1 - self._clock())
        return PushSeen(key, digest, ttl)

    async def check(
        self,
        body: bytes,
        *,
        signature: str,
        timestamp: str,
        nonce: str,
        msg_signature: str = "",
        deadline: Deadline | None = None,
    ) -> None:
        """Remember this accepted callback; PushReplayed if its triple carried another body."""
        seen = self.seen(
            body, signature=signature, timestamp=timestamp, nonce=nonce, msg_signature=msg_signature
        )
        try:
            seconds = STORE_TIMEOUT if deadline is None else deadline.left() - MARGIN
            known = await bounded(
                self._memory.remember_push(seen.key, seen.digest, seen.ttl),
                min(STORE_TIMEOUT, seconds),
            )
        except StoreUnavailable as exc:
            self.here(seen, exc)
            return
        self.settle(seen, known)

    @staticmethod
    def settle(seen: PushSeen, known: str | None) -> None:
        """PushReplayed when the digest the store knew for the triple is not this body's."""
        if known is not None and known != seen.digest:
            raise PushReplayed(REPLAYED)

    def here(self, seen: PushSeen, exc: StoreUnavailable) -> None:
        """The store did not answer: check and remember the triple in this process instead."""
        logger.error("replay check of a callback falls back to this process: {}", exc)
        self.settle(seen, self._remember_here(seen.key, seen.digest, seen.ttl))

    def _remember_here(self, key: str, digest: str, ttl: float) -> str | None:
        now = self._mono()
        if len(self._local) > 10_000:
            self._local = {k: v for k, v in self._local.items() if v[0] > now}
        entry = self._local.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        self._local[key] = (now + ttl, digest)
        return None
