"""A cap on refusal rows and lines per address per minute; the rest become counted summaries."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from loguru import logger

from bot.clock import Clock
from bot.state import Attempt

WINDOW = 60.0
SUMMARY_AGENT = "(summary of refusals over the cap)"


@dataclass(slots=True)
class _Window:
    start: float
    written: int = 0
    over: Counter[tuple[str, int]] = field(default_factory=Counter)  # (outcome, status) → n


class RefusalCap:
    """Per address: the first ``limit`` refusals a minute are written one by one (row and log
    line); later ones are only counted, and leave as one summary row per outcome, with its
    ``count``, when the minute is over. ``limit`` 0: no cap. Pure apart from one warning.
    """

    def __init__(self, limit: int, *, clock: Clock, max_addresses: int = 10_000) -> None:
        self.limit, self._clock, self._max = limit, clock, max_addresses
        self._windows: dict[str, _Window] = {}
        self._ended: list[tuple[str, _Window]] = []
        self._next_sweep = 0.0

    def admit(self, ip: str) -> bool:
        """True: record this refusal one by one. False: count it with ``count`` instead."""
        if not self.limit:
            return True
        now = self._clock()
        window = self._windows.get(ip)
        if window is None or now - window.start >= WINDOW:
            if window is not None:
                self._ended.append((ip, window))
            window = self._windows[ip] = _Window(now)
        if window.written < self.limit:
            window.written += 1
            return True
        return False

    def count(self, ip: str, outcome: str, status: int) -> None:
        """Count a refusal ``admit`` turned away (warns once per address and minute)."""
        window = self._windows[ip]
        if not window.over:
            logger.warning(
                "audit cap: ip={} over {} refusals this minute; the rest are summarized",
                ip,
                self.limit,
            )
        window.over[(outcome, status)] += 1

    def due(self, *, everything: bool = False) -> list[Attempt]:
        """Summary rows of minutes that are over (all of them with ``everything``, at shutdown)."""
        now = self._clock()
        if everything or now >= self._next_sweep or len(self._windows) > self._max:
            self._next_sweep = now + 1.0
            for ip, window in list(self._windows.items()):
                if everything or now - window.start >= WINDOW:
                    del self._windows[ip]
                    self._ended.append((ip, window))
        ended, self._ended = self._ended, []
        return [
            Attempt(w.start, outcome, ip=ip, user_agent=SUMMARY_AGENT, status=status, count=n)
            for ip, w in ended
            for (outcome, status), n in w.over.items()
        ]
