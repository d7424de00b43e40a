"""Per-address sliding-window limit on bad download tokens (pure, process-local; clock injected)."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from bot.clock import Clock
from bot.errors import LinkInvalid, TooManyBadTokens


class BadTokenLimit:
    """Throttles an address that presented ``limit`` bad tokens within the last ``window`` seconds.

    Counts live in this process only: each worker counts on its own, and a restart forgets.
    """

    def __init__(
        self, limit: int, *, clock: Clock, window: float = 60.0, max_addresses: int = 10_000
    ) -> None:
        self.limit, self.window, self._clock = limit, window, clock
        self._max_addresses = max_addresses
        self._hits: dict[str, deque[float]] = {}

    def retry_after(self, ip: str) -> float:
        """Seconds until ``ip`` may present a token again (0: it may now)."""
        hits = self._hits.get(ip)
        if not self.limit or hits is None or len(hits) < self.limit:
            return 0.0
        return max(0.0, hits[0] + self.window - self._clock())

    def record(self, ip: str) -> None:
        """Count one bad token from ``ip``."""
        if not self.limit:
            return
        hits = self._hits.pop(ip, None) or deque(maxlen=self.limit)
        hits.append(self._clock())
        self._hits[ip] = hits  # re-inserted: the dict stays ordered by last bad token
        if len(self._hits) > self._max_addresses:
            self._forget_old()

    def refuse_if_over(self, ip: str) -> None:
        """TooManyBadTokens when ``ip`` is past the limit (before a lookup a guess could win)."""
        wait = self.retry_after(ip)
        if wait > 0:
            raise TooManyBadTokens(ip, math.ceil(wait))

    @contextmanager
    def guard(self, ip: str) -> Iterator[None]:
        """Count a LinkInvalid inside against ``ip``; past the limit it becomes TooManyBadTokens.

        Only bad tokens are refused: a valid link from the same address (carrier NAT) never is.
        """
        try:
            yield
        except LinkInvalid:
            self.refuse_if_over(ip)  # the bad token's 403 becomes a 429
            self.record(ip)
            raise

    def _forget_old(self) -> None:
        cutoff = self._clock() - self.window
        for ip in [ip for ip, hits in self._hits.items() if hits[-1] < cutoff]:
            del self._hits[ip]
        while len(self._hits) > self._max_addresses:  # all recent: drop the least recent
            del self._hits[next(iter(self._hits))]
