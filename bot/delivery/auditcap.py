"""Caps on refusal rows and log lines, per address and server-wide; the rest become counted
summaries (rows) and one line saying how many lines were left out."""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field

from loguru import logger

from bot.clock import Clock
from bot.state import Attempt

WINDOW = 60.0
SUMMARY_AGENT = "(summary of refusals over the cap)"
EVERYONE = "*"  # the ip of a server-wide summary row: refusals from many addresses


@dataclass(slots=True)
class _Window:
    start: float
    written: int = 0
    over: Counter[tuple[str, int]] = field(default_factory=Counter)  # (outcome, status) → n


class RefusalCap:
    """Per address: the first ``limit`` refusals a minute are written one by one (row and log
    line); later ones are only counted, and leave as one summary row per outcome, with its
    ``count``, when the minute is over. Server-wide (this process): at most ``rows_per_minute``
    rows a minute from all addresses together (the rest: summary rows with ip ``*``), and at
    most ``lines_per_second`` refusal log lines a second of ``mono`` (the rest: one line with
    their number).
    0: no cap. Pure apart from the warnings.
    """

    def __init__(
        self,
        limit: int,
        *,
        clock: Clock,
        mono: Clock = time.monotonic,
        rows_per_minute: int = 0,
        lines_per_second: int = 0,
        max_addresses: int = 10_000,
    ) -> None:
        self.limit, self._clock, self._mono, self._max = limit, clock, mono, max_addresses
        self.rows_per_minute, self.lines_per_second = rows_per_minute, lines_per_second
        self._windows: dict[str, _Window] = {}
        self._everyone = _Window(-math.inf)
        self._ended: list[tuple[str, _Window]] = []
        self._next_sweep = 0.0
        self._second, self._lines, self._left_out = -math.inf, 0, 0

    def admit(self, ip: str) -> bool:
        """True: record this refusal one by one. False: count it with ``count`` instead."""
        now = self._clock()
        if self.rows_per_minute and now - self._everyone.start >= WINDOW:
            self._ended.append((EVERYONE, self._everyone))
            self._everyone = _Window(now)
        window = None
        if self.limit:
            window = self._windows.get(ip)
            if window is None or now - window.start >= WINDOW:
                if window is not None:
                    self._ended.append((ip, window))
                window = self._windows[ip] = _Window(now)
            if window.written >= self.limit:
                return False
        if self.rows_per_minute:
            if self._everyone.written >= self.rows_per_minute:
                return False
            self._everyone.written += 1
        if window is not None:
            window.written += 1
        return True

    def count(self, ip: str, outcome: str, status: int) -> None:
        """Count a refusal ``admit`` turned away (warns once per address, or for all, a minute)."""
        window = self._windows.get(ip)
        if window is not None and self.limit and window.written >= self.limit:
            what, may_log = f"ip={ip} over {self.limit} refusals this minute", self.line
        else:  # one line a minute at most: not held to lines_per_second
            window = self._everyone
            what = f"over {self.rows_per_minute} refusal rows this minute from all addresses"
            may_log = _always
        if not window.over and may_log():
            logger.warning("audit cap: {}; the rest are summarized", what)
        window.over[(outcome, status)] += 1

    def line(self) -> bool:
        """True: log this refusal's line. False past ``lines_per_second``: it is only counted,
        and the first line of a later second says how many were left out."""
        if not self.lines_per_second:
            return True
        second = math.floor(self._mono())
        if second != self._second:
            if self._left_out:
                logger.warning(
                    "log cap: {} refusal line(s) left out over {} a second",
                    self._left_out,
                    self.lines_per_second,
                )
            self._second, self._lines, self._left_out = second, 0, 0
        if self._lines < self.lines_per_second:
            self._lines += 1
            return True
        self._left_out += 1
        return False

    def due(self, *, everything: bool = False) -> list[Attempt]:
        """Summary rows of minutes that are over (all of them with ``everything``, at shutdown)."""
        now = self._clock()
        if everything or now >= self._next_sweep or len(self._windows) > self._max:
            self._next_sweep = now + 1.0
            for ip, window in list(self._windows.items()):
                if everything or now - window.start >= WINDOW:
                    del self._windows[ip]
                    self._ended.append((ip, window))
            if everything or now - self._everyone.start >= WINDOW:
                self._ended.append((EVERYONE, self._everyone))
                self._everyone = _Window(now)
        ended, self._ended = self._ended, []
        return [
            Attempt(w.start, outcome, ip=ip, user_agent=SUMMARY_AGENT, status=status, count=n)
            for ip, w in ended
            for (outcome, status), n in w.over.items()
        ]


def _always() -> bool:
    return True
