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
from bot.state.sqlite_thread import StoreThread, write

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
