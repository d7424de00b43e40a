"""Issue #10 seen 7: one client cannot grow the audit trail or the log without bound."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from bot.app import create_app
from bot.config import Settings, load_settings
from bot.delivery.auditcap import EVERYONE, SUMMARY_AGENT, RefusalCap
from bot.delivery.auditwriter import DROPPED_AGENT, AuditWriter
from bot.metrics import Metrics
from bot.state import Attempt, Store, store_from_url
from tests.conftest import (
    Clock,
    LogCapture,
    RedisServer,
    RunningServer,
    Start,
    start_server,
    write_config,
)
from tests.helpers.messages import metric_samples as _samples
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


# --- issue #19 item 8: floods from many addresses --------------------------------------------

PROXIED = {"trusted_proxies": ["127.0.0.1/32"]}


def counted(settings: Settings, clock: Clock) -> list[Attempt]:
    return with_store(settings, lambda store: store.attempts_since(0), clock)


def wait_counted(settings: Settings, clock: Clock, total: int) -> list[Attempt]:
    """The audit trail once its rows count ``total`` refusals (rows land after the answers)."""
    deadline = time.monotonic() + 20
    while (seen := sum(a.count for a in counted(settings, clock))) < total:
        assert time.monotonic() < deadline, seen
        time.sleep(0.1)
    return counted(settings, clock)


def forged(server: RunningServer, addresses: list[str], per_address: int) -> set[int]:
    """``per_address`` bad tokens from each address (through the trusted proxy), 16 at once."""
    asks = [(n, ip) for n in range(per_address) for ip in addresses]
    with (
        server.client(limits=httpx.Limits(max_connections=16)) as client,
        ThreadPoolExecutor(16) as pool,
    ):
        return set(
            pool.map(
                lambda ask: (
                    client.get(
                        f"/d/forged{ask[0]}.{ask[1]}", headers={"X-Forwarded-For": ask[1]}
                    ).status_code
                ),
                asks,
            )
        )


@pytest.fixture
def one_second(
    tmp_path: Path, files_dir: Path, state_url: str, clock: Clock
) -> Iterator[RunningServer]:
    """A bot on this test's store whose monotonic clock stays in one second until advanced."""
    limits = {"bad_tokens_per_ip_per_minute": 0}
    config = write_config(tmp_path, server=PROXIED, limits=limits, state={"url": state_url})
    settings = load_settings(config)
    app = create_app(settings, clock=clock, mono=clock)
    server, thread, url = start_server(app)
    yield RunningServer(url, settings, clock, app)
    server.should_exit = True
    thread.join(10)


def test_seen_8_many_addresses_are_bounded_server_wide(
    one_second: RunningServer, clock: Clock, logs: LogCapture
) -> None:
    """Issue #19 seen 8: the audit cap was per address, so 200 addresses made one worker write
    167 log lines a second. Defaults: 20 refusal lines a second, 600 rows a minute."""
    server = one_second
    addresses = [f"198.51.100.{i}" for i in range(1, 201)]
    assert forged(server, addresses, 4) == {403}  # 800 refusals within one second (frozen clock)
    assert len(logs.find("bad token (", level="WARNING")) == 20
    assert logs.find("audit cap: over 600 refusal rows this minute from all addresses")
    clock.advance(61)  # the minute and the second are over: summaries and the left-out count
    assert forged(server, ["203.0.113.9"], 1) == {403}
    assert logs.wait_for("log cap: 580 refusal line(s) left out over 20 a second")
    rows = wait_counted(server.settings, clock, 801)
    one_by_one = [a for a in rows if a.user_agent != SUMMARY_AGENT]
    assert len(one_by_one) == 601 and sum(a.count for a in rows) == 801
    (summary,) = [a for a in rows if a.user_agent == SUMMARY_AGENT]
    assert (summary.ip, summary.outcome, summary.count) == (EVERYONE, "bad_token", 200)


def test_seen_8_a_flood_on_an_exhausted_pool_loses_no_audit_row_silently(
    tmp_path: Path,
    files_dir: Path,
    serve: Callable[[Settings], RunningServer],
    own_redis: RedisServer,
    clock: Clock,
    logs: LogCapture,
) -> None:
    """Issue #19 seen 8: 600 concurrent bad tokens from 744 addresses exhausted redis-py's pool
    (100 per process) and 7,891 audit writes were lost. Redis paused, the writes pile up."""
    config = write_config(tmp_path, server=PROXIED, state={"url": own_redis.url()})
    server = serve(load_settings(config))
    addresses = [f"10.{i // 250}.{i % 250}.1" for i in range(600)]
    own_redis.process.send_signal(signal.SIGSTOP)
    try:
        assert forged(server, addresses, 1) == {403}  # answered without waiting for the store
    finally:
        own_redis.process.send_signal(signal.SIGCONT)
    rows = wait_counted(server.settings, clock, 600)
    assert len(rows) == 600 and {a.ip for a in rows} == set(addresses)  # each one, once
    assert not logs.find("state write lost") and not logs.find("dropped")


def test_rows_the_store_cannot_take_are_counted_in_a_metric_and_a_summary_row(
    own_redis: RedisServer, clock: Clock, logs: LogCapture
) -> None:
    """Item 8: a full queue drops rows, counted (metric, summary row), never silently."""
    metrics = Metrics()

    async def main() -> list[Attempt]:
        store = store_from_url(own_redis.url(), clock=clock)
        await store.open()
        writer = AuditWriter(store, clock=clock, metrics=metrics, max_queued=10)
        own_redis.process.send_signal(signal.SIGSTOP)
        try:
            for i in range(25):
                writer.put(Attempt(clock(), "bad_token", ip=f"198.51.100.{i}", status=403))
            await asyncio.sleep(0)  # the writer takes its first batch (it waits on Redis)
        finally:
            own_redis.process.send_signal(signal.SIGCONT)
        await writer.drain(30)
        rows = await store.attempts_since(0)
        await store.close()
        return rows

    rows = asyncio.run(main())
    (summary,) = [a for a in rows if a.user_agent == DROPPED_AGENT]
    assert (summary.outcome, summary.status, summary.count) == ("bad_token", 403, 15)
    assert sum(a.count for a in rows) == 25
    samples = _samples(metrics.exposition().decode())
    assert samples[("bot_audit_rows_dropped_total", (("outcome", "bad_token"),))] == 15
    assert logs.find("audit rows dropped (10 rows already wait for the store)", level="ERROR")


def test_refusal_cap_bounds_rows_and_lines_for_all_addresses() -> None:
    clock = Clock()
    cap = RefusalCap(2, clock=clock, rows_per_minute=3, lines_per_second=2)
    admitted = [cap.admit(f"198.51.100.{i}") for i in range(5)]
    assert admitted == [True, True, True, False, False]
    for i in (3, 4):
        cap.count(f"198.51.100.{i}", "bad_token", 403)
    assert [cap.line() for _ in range(3)] == [True, True, False]  # the warning is its own
    clock.advance(60)
    (summary,) = cap.due()
    assert (summary.ip, summary.count) == (EVERYONE, 2)
