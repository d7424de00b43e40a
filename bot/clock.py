"""Where time comes from: the wall and monotonic clocks, Beijing's zone, a request's deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta, timezone

Clock = Callable[[], float]
CHINA = timezone(timedelta(hours=8))


@dataclass(frozen=True, slots=True)
class Clocks:
    """The two clocks every timed thing reads: wall time for records, monotonic for budgets."""

    wall: Clock = time.time
    mono: Clock = time.monotonic

    def deadline(self, seconds: float) -> Deadline:
        """A budget of ``seconds`` starting now on the monotonic clock."""
        return Deadline(self.mono() + seconds, self.mono)


@dataclass(frozen=True, slots=True)
class Deadline:
    """One request's time budget: started when it arrived, handed to every step after."""

    at: float
    mono: Clock = field(default=time.monotonic, repr=False)

    def left(self) -> float:
        """Seconds until the deadline (negative once passed)."""
        return self.at - self.mono()

    def expired(self, margin: float = 0.0) -> bool:
        """Whether less than ``margin`` seconds remain."""
        return self.left() <= margin
