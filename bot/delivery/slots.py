"""Download slots and pacing: how many downloads run at once, and how fast each may go (pure)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from bot.errors import LinkBusy, ServerBusy

RETRY_SERVER_BUSY = 30  # seconds; a full server frees slots as downloads finish
RETRY_LINK_BUSY = 5  # seconds; a browser's parallel ranges finish or fail quickly
MIN_PACED_CHUNK = 4 * 1024
# Read sizes of a streamed download. Each read is a hop to a worker thread, so big reads are fast
# (1 MiB: about 1.3x the single-stream speed of Starlette's 64 KiB). A slow client keeps a read in
# memory until it takes it; once a process's reads hold READ_BUDGET, further reads of big files
# shrink to READ_MIN: 200 slow clients then cost about 8 + 200 x 0.03 MiB, not 200 x 1 MiB.
READ_MIN = 32 * 1024
READ_MAX = 1024 * 1024
READ_BUDGET = 8 * 1024 * 1024
PACING_STEPS = 8  # chunks per second of a paced download: smooth, yet few wake-ups


@dataclass(slots=True)
class Slot:
    """One running download; ``release`` frees it (idempotent)."""

    _slots: DownloadSlots
    link_id: str
    _released: bool = False

    def release(self) -> None:
        """Give the slot back."""
        if not self._released:
            self._released = True
            self._slots._release(self.link_id)


@dataclass(slots=True)
class ReadBudget:
    """Bytes of file data read but not yet taken by clients, shared by a process's downloads."""

    total: int
    held: int = 0

    def take(self, want: int, floor: int) -> int:
        """How much the next read may be: ``want`` while the budget lasts, never below ``floor``."""
        size = max(floor, min(want, self.total - self.held))
        self.held += size
        return size

    def give(self, size: int) -> None:
        """Return what ``take`` granted, once the client has the bytes (or is gone)."""
        self.held -= size


@dataclass(slots=True)
class DownloadSlots:
    """Counts running downloads per process (0 means no limit) and the memory their reads hold."""

    max_total: int
    max_per_link: int
    reads: ReadBudget = field(default_factory=lambda: ReadBudget(READ_BUDGET))
    _per_link: Counter[str] = field(default_factory=Counter)
    _total: int = 0

    @property
    def running(self) -> int:
        """Downloads holding a slot now."""
        return self._total

    def acquire(self, link_id: str) -> Slot:
        """A slot for one more download of this link; ServerBusy or LinkBusy when full."""
        if self.max_total and self._total >= self.max_total:
            raise ServerBusy(f"{self._total} downloads running", RETRY_SERVER_BUSY, link_id)
        if self.max_per_link and self._per_link[link_id] >= self.max_per_link:
            raise LinkBusy(
                f"{self.max_per_link} downloads of this link running", RETRY_LINK_BUSY, link_id
            )
        self._total += 1
        self._per_link[link_id] += 1
        return Slot(self, link_id)

    def _release(self, link_id: str) -> None:
        self._total -= 1
        self._per_link[link_id] -= 1
        if self._per_link[link_id] <= 0:
            del self._per_link[link_id]


def paced_chunk(rate: int, chunk: int) -> int:
    """Read size for a download capped at ``rate`` bytes/s: about PACING_STEPS chunks a second."""
    return max(MIN_PACED_CHUNK, min(chunk, rate // PACING_STEPS))


@dataclass(slots=True)
class Pacer:
    """Seconds to wait before each chunk so a download keeps to ``rate`` bytes/s."""

    rate: int
    started: float
    sent: int = 0

    def delay(self, size: int, now: float) -> float:
        """Seconds to sleep before sending ``size`` more bytes at time ``now``."""
        due = self.started + self.sent / self.rate
        self.sent += size
        return max(0.0, due - now)
