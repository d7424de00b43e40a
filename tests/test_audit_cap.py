"""Issue #10 seen 7: one client cannot grow the audit trail or the log without bound."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.config import Settings, load_settings
from bot.delivery.auditcap import SUMMARY_AGENT, RefusalCap
from bot.state import Attempt, Store
from tests.conftest import Clock, LogCapture, RunningServer, Start, write_config
from tests.helpers.processes import bot
from tests.helpers.stores import with_store


def rows(db: Path) -> list[tuple[str, int, str]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute("SELECT outcome, count, user_agent FROM attempts ORDER BY id"))


def wait_rows(db: Path, n: int) -> list[tuple[str, int, str]]:
    deadline = time.monotonic() + 10  # audit rows land just after the answers
    while len(found := rows(db)) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


@pytest.mark.slow
def test_seen7_refusal_rows_capped_per_address_and_minute(
    serve: Callable[[Settings], RunningServer], tmp_path: Path, files_dir: Path, logs: LogCapture
) -> None:
    """Issue #10 seen 7: one client wrote ~1,200 audit rows a second (bad tokens), kept 90 days."""
    config = write_config(
        tmp_path,
        limits={"bad_tokens_per_ip_per_minute": 0, "audit_rows_per_ip_per_minute": 10},
    )
    server = serve(load_settings(config))
    db = tmp_path / "state" / "bot.db"
    with server.client() as client:
        codes = {client.get(f"/d/forged{i}").status_code for i in range(200)}
        assert codes == {403}
        assert len(wait_rows(db, 10)) == 10
        server.clock.advance(61)  # the minute is over: its summary is written with the next row
        assert client.get("/d/one-more").status_code == 403
    found = wait_rows(db, 12)
    assert [(outcome, n) for outcome, n, _ in found[:10]] == [("bad_token", 1)] * 10
    assert ("bad_token", 190, SUMMARY_AGENT) in found and len(found) == 12
    assert len(logs.find("bad token (", level="WARNING")) == 11
    assert len(logs.find("audit cap: ip=127.0.0.1 over 10", level="WARNING")) == 1
    stats = bot("stats", "--config", str(config))
    assert stats.returncode == 0, stats.stderr
    assert stats.stdout.splitlines()[-1].split()[-1] == "201"  # every refusal counted


def test_refusal_cap_summarizes_each_kind_and_everything_at_shutdown() -> None:
    clock = Clock()
    cap = RefusalCap(2, clock=clock)
    admitted = [cap.admit("198.51.100.1") for _ in range(5)]
    assert admitted == [True, True, False, False, False]
    cap.count("198.51.100.1", "bad_token", 403)
    cap.count("198.51.100.1", "bad_token", 403)
    cap.count("198.51.100.1", "expired", 410)
    assert cap.admit("203.0.113.5") and cap.due() == []  # the minute is not over
    summaries = cap.due(everything=True)
    assert sorted((s.outcome, s.count, s.ip) for s in summaries) == [
        ("bad_token", 2, "198.51.100.1"),
        ("expired", 1, "198.51.100.1"),
    ]
    assert RefusalCap(0, clock=clock).admit("x")  # 0: no cap


def test_both_stores_keep_summary_counts_and_pushed_triples(start: Start, clock: Clock) -> None:
    """The counted summary row and the replay memory, on SQLite and on Redis."""
    settings = start().settings

    async def work(store: Store) -> tuple[list[int], list[str | None]]:
        await store.record_attempt(Attempt(clock(), "bad_token", ip="198.51.100.1", count=57))
        await store.record_attempt(Attempt(clock(), "bad_token", ip="198.51.100.1"))
        counts = [a.count for a in await store.attempts_since(0)]
        pushes = [
            await store.remember_push("k1", "body-a", 300),
            await store.remember_push("k1", "body-b", 300),
            await store.remember_push("k2", "body-b", 300),
        ]
        return counts, pushes

    counts, pushes = with_store(settings, work, clock)
    assert sorted(counts) == [1, 57]  # same time: Redis orders them by member
    assert pushes == [None, "body-a", None]
