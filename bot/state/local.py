"""This process's memory of replies: where a retry finds the first answer when the store
does not answer (``bot.answers`` falls back to it)."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Protocol

from bot.clock import Clock
from bot.state.base import Remembered


class Recall(Protocol):
    """Where a retry reads the first attempt's answer: the store, or ``LocalReplies``."""

    async def read_reply(self, key: str) -> Remembered | None: ...


class LocalReplies:
    """This process's memory of replies: the fallback when the store does not answer."""

    def __init__(self, mono: Clock = time.monotonic) -> None:
        self._mono = mono
        # One ttl for all, so insertion order is expiry order: expired entries leave from the front.
        self._entries: OrderedDict[str, tuple[float, Remembered]] = OrderedDict()

    async def claim_message(self, key: str, ttl: float) -> Remembered | None:
        """None when first; else the remembered reply."""
        known = await self.read_reply(key)
        if known is None:
            self.put(key, Remembered(done=False), ttl)
        return known

    async def read_reply(self, key: str) -> Remembered | None:
        """The remembered reply, if it has not expired."""
        entry = self._entries.get(key)
        return entry[1] if entry and entry[0] > self._mono() else None

    def put(self, key: str, reply: Remembered, ttl: float) -> None:
        """Remember a reply for ``ttl`` seconds, forgetting the expired ones."""
        now = self._mono()
        entries = self._entries
        while entries and next(iter(entries.values()))[0] <= now:
            entries.popitem(last=False)
        entries[key] = (now + ttl, reply)
        entries.move_to_end(key)
