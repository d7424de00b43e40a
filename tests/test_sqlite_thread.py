"""The SQLite store's thread against a real file: queued calls share a transaction, fail alone."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.errors import StoreUnavailable
from bot.state.sqlite_thread import LINGER, StoreThread, write

Work = Callable[[sqlite3.Connection], Any]


def in_transaction(db: sqlite3.Connection) -> bool:
    return db.in_transaction


def insert(name: str) -> Work:
    return lambda db: db.execute("INSERT INTO t VALUES (?)", (name,)).rowcount


def broken(db: sqlite3.Connection) -> None:
    with write(db):  # as every store call that writes twice
        db.execute("INSERT INTO t VALUES ('broken')")
        db.execute("INSERT INTO nowhere VALUES (1)")


def queued_together(path: Path, works: list[Work]) -> tuple[list[Any], list[str]]:
    """Run ``works`` queued while the thread is busy (one batch); results and the rows after."""

    def connect() -> sqlite3.Connection:
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("CREATE TABLE IF NOT EXISTS t (name TEXT)")
        return db

    async def main() -> tuple[list[Any], list[str]]:
        thread = StoreThread(connect, path)
        started, release = threading.Event(), threading.Event()
        busy = asyncio.ensure_future(thread.run(lambda db: started.set() or release.wait(5)))
        await asyncio.to_thread(started.wait, 5)
        calls = [asyncio.ensure_future(thread.run(work)) for work in works]
        await asyncio.sleep(0)  # every call is queued behind the busy one
        release.set()
        await busy
        results = await asyncio.gather(*calls, return_exceptions=True)
        rows = await thread.run(lambda db: [r[0] for r in db.execute("SELECT name FROM t")])
        await thread.close()
        return results, rows

    return asyncio.run(main())


def test_queued_calls_share_one_transaction(tmp_path: Path) -> None:
    results, rows = queued_together(tmp_path / "s.db", [in_transaction, insert("a")] * 2)
    assert results == [True, 1, True, 1]  # a plain call runs inside the batch's transaction
    assert rows == ["a", "a"]


@pytest.mark.parametrize(
    "works",
    [
        pytest.param([insert("a"), broken, insert("b")], id="middle"),
        pytest.param([broken, insert("a"), insert("b")], id="first"),
    ],
)
def test_a_failing_call_fails_alone_and_its_writes_are_undone(
    tmp_path: Path, works: list[Work]
) -> None:
    results, rows = queued_together(tmp_path / "s.db", works)
    failed = works.index(broken)
    assert isinstance(results[failed], StoreUnavailable)
    assert "no such table: nowhere" in str(results[failed])
    assert [r for i, r in enumerate(results) if i != failed] == [1, 1]
    assert sorted(rows) == ["a", "b"]


def lingers(path: Path, rounds: list[int]) -> list[float]:
    """The group commit's waits over ``rounds`` of calls: each round's calls queue together."""

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(path, isolation_level=None)

    waits: list[float] = []

    async def main() -> None:
        # One instant throughout: every batch starts within BUSY of the last.
        thread = StoreThread(connect, path, monotonic=lambda: 100.0, sleep=waits.append)
        for size in rounds:
            started, release = threading.Event(), threading.Event()
            hold = lambda db, s=started, r=release: s.set() or r.wait(5)  # noqa: E731
            first = asyncio.ensure_future(thread.run(hold))
            await asyncio.to_thread(started.wait, 5)
            others = [asyncio.ensure_future(thread.run(in_transaction)) for _ in range(size - 1)]
            await asyncio.sleep(0)
            release.set()
            await asyncio.gather(first, *others)
        await thread.close()

    asyncio.run(main())
    return waits


def test_one_caller_at_a_time_never_waits_for_company(tmp_path: Path) -> None:
    # A follower's download (its claim, then its finish) or a lone push: before, each call
    # after the first waited LINGER (1 ms) for calls that never came: 2.3 ms a 1 KB download.
    assert lingers(tmp_path / "s.db", [1] * 10) == []


def test_calls_arriving_together_wait_for_the_rest_of_their_moment(tmp_path: Path) -> None:
    # Each round's first call runs alone; the calls queued behind it make a shared batch, so
    # the batch after that (the next round's first) lingers for company; a lone one does not.
    assert lingers(tmp_path / "s.db", [3, 3, 1, 1]) == [LINGER] * 2
