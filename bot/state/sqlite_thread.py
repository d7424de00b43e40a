"""The SQLite store's thread: calls queued while it is busy share one transaction and commit."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

from bot.errors import StoreUnavailable

T = TypeVar("T")
Work = Callable[[sqlite3.Connection], Any]
Outcome = tuple[bool, Any]  # (True, result) or (False, exception)
CLOSE_SECONDS = 5.0
# Group commit: a batch that starts within BUSY seconds of the last one, when that one was
# shared (calls arrive together), first waits LINGER seconds for the calls of that moment to
# join it. A commit costs about a transaction's work again (WAL pages written, the file's
# turn): batches of ~4 pushes became ~14 (#20). An idle store, and one caller at a time (a
# follower's download: its claim, then its finish), answer at once.
LINGER = 0.001
BUSY = 0.01
# Errors after which this connection cannot be trusted again: it is closed and reopened.
BROKEN = ("SQLITE_READONLY", "SQLITE_IOERR", "SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_CANTOPEN")


@contextmanager
def write(db: sqlite3.Connection) -> Iterator[None]:
    """A transaction holding the write lock from the start, so read-then-write is atomic."""
    if db.in_transaction:  # a batch's: it holds the lock, and a failure undoes the whole batch
        yield
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if db.in_transaction:
            db.rollback()
        raise
    db.commit()


class _CallFailed(Exception):
    """A call in a batch raised: the batch is undone and each call runs on its own."""


class StoreThread:
    """Runs calls on one connection in one thread, in order; a queue of them is one transaction."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        path: Path,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._connect = connect
        self._monotonic, self._sleep = monotonic, sleep
        self._label = str(path)
        self._lock_path = path.with_name(path.name + ".lock")  # created next to the database
        self._lock_fd: int | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bot-sqlite")
        self._lock = threading.Lock()
        self._queue: list[tuple[Work, asyncio.Future[Any]]] = []
        self._path = path
        self._db: sqlite3.Connection | None = None
        self._identity: tuple[int, int] | None = None  # the file the connection opened
        self._broken = False
        self._closed = False
        self._last = 0.0  # monotonic time the last batch ended
        self._shared = False  # the last batch ran more than one call

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` on the thread; sqlite and OS errors become StoreUnavailable."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        with self._lock:
            self._queue.append((work, future))
            first = len(self._queue) == 1
        if first:
            self._executor.submit(self._drain)
        return await future

    async def close(self) -> None:
        """Close the connection once the queued calls have run (TimeoutError after 5 s)."""

        if self._closed:
            return
        self._closed = True
        try:
            async with asyncio.timeout(CLOSE_SECONDS):  # a stalled worker may hold its turn
                await asyncio.wrap_future(self._executor.submit(self._drop))
        finally:
            self._executor.shutdown(wait=False)

    def _connection(self) -> sqlite3.Connection:
        """The open connection, reopened when broken or when the file was deleted or replaced."""
        if self._db is not None and (self._broken or _identity(self._path) != self._identity):
            self._drop()
        if self._db is None:
            self._broken = False
            self._db = self._connect()
            self._identity = _identity(self._path)
        return self._db

    def _drop(self) -> None:
        db, self._db = self._db, None
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)
        if db is not None:
            with suppress(sqlite3.Error):
                db.close()

    def _drain(self) -> None:
        if self._shared and self._monotonic() - self._last < BUSY:
            self._sleep(LINGER)
        with self._lock:
            batch, self._queue = self._queue, []
        self._shared = len(batch) > 1
        try:
            db = self._connection()
            with self._turn():
                outcomes = self._batch(db, [work for work, _ in batch])
        except Exception as exc:
            outcomes = [(False, self._failure(exc))] * len(batch)
        self._last = self._monotonic()
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Outcome]]] = {}
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            by_loop.setdefault(future.get_loop(), []).append((future, outcome))
        for loop, settled in by_loop.items():
            with suppress(RuntimeError):  # a closed loop: nobody is waiting any more
                loop.call_soon_threadsafe(_settle, settled)

    @contextmanager
    def _turn(self) -> Iterator[None]:
        """This process's turn at the file: other workers wait in the kernel, woken on release.

        SQLite's own busy handler sleeps up to 100 ms between tries, and a busy worker takes
        the write lock back within microseconds: without turns another worker starves.
        """
        if self._lock_fd is None:
            self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _batch(self, db: sqlite3.Connection, works: list[Work]) -> list[Outcome]:
        if len(works) > 1:
            try:
                with write(db):
                    return [(True, _marked(work, db)) for work in works]
            except _CallFailed:
                pass  # rolled back; a failure to begin or commit fails the batch instead
        return [self._one(db, work) for work in works]

    def _one(self, db: sqlite3.Connection, work: Work) -> Outcome:
        try:
            return True, work(db)
        except Exception as exc:
            return False, self._failure(exc)

    def _failure(self, exc: Exception) -> Exception:
        if isinstance(exc, OSError) or (
            isinstance(exc, sqlite3.Error) and (exc.sqlite_errorname or "").startswith(BROKEN)
        ):
            self._broken = True
        if isinstance(exc, sqlite3.Error | OSError):
            return StoreUnavailable(f"sqlite {self._label}: {exc}")
        if isinstance(exc, StoreUnavailable):
            self._broken = True
        return exc


def _identity(path: Path) -> tuple[int, int] | None:
    """Device and inode of the file at ``path``: they change when it is deleted or replaced."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _marked(work: Work, db: sqlite3.Connection) -> Any:
    try:
        return work(db)
    except Exception as exc:
        raise _CallFailed from exc


def _settle(settled: list[tuple[asyncio.Future[Any], Outcome]]) -> None:
    for future, (ok, value) in settled:
        if future.done():  # the caller gave up (a timeout)
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
