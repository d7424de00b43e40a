"""Log lines written in batches: one write (and flush) for many lines, off the request's path.

A loguru stream sink writes and flushes every line: a system call per push that cost as much
as formatting the line. ``BatchedSink`` writes a line at once when the last write is
``interval`` seconds old (an idle server logs as before); lines that come faster are kept and
written together, from the sink's own thread, every ``interval`` seconds. A WARNING or worse, a
full batch, ``stop`` (loguru calls it when the sink is removed) and the interpreter's exit
write what waits at once.
"""

from __future__ import annotations

import atexit
import threading
import time
from collections.abc import Callable
from typing import Any

INTERVAL = 0.05  # seconds a line may wait: a reader tailing the log sees no delay
LIMIT = 64 * 1024  # characters that make a batch written at once
URGENT = 30  # WARNING and worse are written at once


class BatchedSink:
    """A loguru sink that hands ``write`` many formatted lines at a time (then calls ``flush``;
    ``close`` when the sink is removed)."""

    def __init__(
        self,
        write: Callable[[str], object],
        flush: Callable[[], object] | None = None,
        close: Callable[[], object] | None = None,
        *,
        interval: float = INTERVAL,
        limit: int = LIMIT,
    ) -> None:
        self._out, self._flush, self._close = write, flush, close
        self._interval, self._limit = interval, limit
        self._lines: list[str] = []
        self._size = 0
        self._lock = threading.Lock()  # the waiting lines
        self._writing = threading.Lock()  # one batch at a time, in order
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._last = 0.0  # monotonic time of the last write
        atexit.register(self.stop)

    def write(self, message: Any) -> None:
        """Keep one formatted line (loguru's message); write now if it is urgent."""
        text = str(message)
        record = getattr(message, "record", None)
        with self._lock:
            self._lines.append(text)
            self._size += len(text)
            urgent = self._size >= self._limit or self._stopped
        if (
            urgent
            or time.monotonic() - self._last >= self._interval
            or (record is not None and record["level"].no >= URGENT)
        ):
            self.write_out()
        elif self._thread is None:
            self._start()

    def write_out(self) -> None:
        """Write every waiting line now, as one batch."""
        with self._writing:
            with self._lock:
                lines, self._lines, self._size = self._lines, [], 0
            self._last = time.monotonic()
            if lines:
                self._out("".join(lines))
                if self._flush is not None:
                    self._flush()

    def stop(self) -> None:
        """Write what waits and end the thread (loguru calls this when the sink is removed)."""
        self._stopped = True
        self._wake.set()
        self.write_out()
        atexit.unregister(self.stop)
        if self._close is not None:
            self._close()

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="log-batches", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._wake.wait(self._interval):
            self.write_out()
