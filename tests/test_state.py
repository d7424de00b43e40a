"""The state store against a real SQLite file and a real redis-server: every test runs on both."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from bot.clock import CHINA
from bot.config import Settings, load_settings
from bot.state import (
    Attempt,
    Claim,
    Fresh,
    Grant,
    Known,
    LinkRecord,
    OverQuota,
    Remembered,
    Store,
    store_from_url,
)
from bot.state.base import QUOTA_WINDOW
from bot.state.redis import POOL_SIZE
from bot.wechat import Simulator
from tests.conftest import (
    AES_KEY,
    APP_ID,
    BIG_NAME,
    DEMO_NAME,
    TOKEN,
    Clock,
    LogCapture,
    RedisServer,
    RunningServer,
    Start,
    write_config,
)
from tests.helpers.processes import bot_on
from tests.helpers.stores import LIMITED, link_id, parallel, with_store
from tests.helpers.webhook import link_of, post, text_of

ROOT = Path(__file__).resolve().parent.parent
CODEC = Simulator(TOKEN, APP_ID, AES_KEY)


# --- the store itself -------------------------------------------------------------------------


def whole(lease_id: str, limit: int = 3, size: int = 100) -> Claim:
    """A claim on the whole of a ``size``-byte file (lease 30 s, counts kept 600 s)."""
    return Claim("L1", lease_id, 0, size, size, limit, 30, 600)


def test_claims_are_atomic_and_counted(start: Start, clock: Clock) -> None:
    settings = start().settings

    async def work(store: Store) -> tuple[list[Grant], Any, Any, Grant, Grant]:
        grants = await asyncio.gather(*(store.claim(whole(f"r{i}")) for i in range(20)))
        granted = [f"r{i}" for i, grant in enumerate(grants) if grant is Grant.GRANTED]
        assert await store.release("L1", granted[0], 100) is True  # a whole copy: counted
        assert await store.release("L1", granted[1], 0) is False  # nothing sent: freed
        after = await store.usage("L1")
        third = await store.claim(whole("again"))
        await store.revoke(["L1"])
        return grants, after, await store.usage("L1"), third, await store.claim(whole("x", 9))

    grants, after, revoked, third, refused = with_store(settings, work, clock)
    assert sorted(grants).count(Grant.GRANTED) == 3
    assert grants.count(Grant.HELD) == 17  # held by the three in flight (503), not used up
    assert (after.active, after.completed, after.revoked) == (1, 1, False)
    assert third is Grant.GRANTED
    assert revoked.revoked and refused is Grant.REVOKED


def test_prune_keeps_recent_rows(start: Start, clock: Clock) -> None:
    settings = start().settings
    now = clock()

    async def work(store: Store) -> tuple[int, list[LinkRecord], list[Attempt]]:
        for age, name in [(100 * 86400, "old"), (60, "new")]:
            await store.record_link(LinkRecord(name, "o", "k", "f", now - age, now - age + 600), 0)
            await store.record_attempt(Attempt(now - age, "served", name, "f"))
        removed = await store.prune(now - 90 * 86400)
        return removed, await store.links_since(0), await store.attempts_since(0)

    removed, links, attempts = with_store(settings, work, clock)
    assert removed >= 2
    assert [link.link_id for link in links] == ["new"]
    assert [a.link_id for a in attempts] == ["new"]


def test_claim_and_record_answers_quota_and_retries_in_one_step(start: Start, clock: Clock) -> None:
    settings = start().settings
    now = clock()

    def link(name: str, at: float) -> LinkRecord:
        return LinkRecord(name, "o_q", "k", "f", at, at + 600)

    async def work(store: Store) -> list[Any]:
        return [
            await store.claim_and_record("m1", 60, "one", link("L1", now), 1),
            await store.claim_and_record("m1", 60, "again", link("L2", now + 1), 1),  # a retry
            await store.claim_and_record("m2", 60, "two", link("L3", now + 2), 1),  # over quota
            await store.read_reply("m2"),
            await store.claim_and_record("m3", 60, None, None, 1),  # no link: success
            await store.read_reply("m3"),
            [record.link_id for record in await store.links_since(0)],
        ]

    first, retry, over, pending, silent, success, links = with_store(settings, work, clock)
    assert first == Fresh() and retry == Known(Remembered(done=True, text="one"))
    assert isinstance(over, OverQuota) and over.retry_at == pytest.approx(now + QUOTA_WINDOW)
    assert pending == Remembered(done=False)
    assert silent == Fresh() and success == Remembered(done=True, text=None)
    assert links == ["L1"]


# --- WeChat retries ---------------------------------------------------------------------------


@pytest.mark.parametrize("encrypt", [pytest.param(False, id="plain"), pytest.param(True, id="aes")])
def test_same_message_three_times_at_once_gets_one_link(
    start: Start, clock: Clock, encrypt: bool
) -> None:
    server = start()
    now = clock()
    responses = parallel(
        [lambda: post(server.url, msg_id="42", timestamp=now, encrypt=encrypt)] * 3
    )
    texts = {text_of(r) for r in responses}
    assert len(texts) == 1 and "/d/" in next(iter(texts))
    if encrypt:  # each retry sealed afresh, all holding the same link
        assert all(b"<Encrypt>" in r.content for r in responses)
    later = text_of(post(server.url, msg_id="42", timestamp=now, encrypt=encrypt))
    assert {later} == texts
    other = text_of(post(server.url, msg_id="43", timestamp=now, encrypt=encrypt))
    assert link_of(other) != link_of(later)
    links = with_store(server.settings, lambda s: s.links_since(0), clock)
    assert len(links) == 2 and {link.openid for link in links} == {"o_follower_1"}


def test_retry_waits_for_the_first_attempts_answer(start: Start, clock: Clock) -> None:
    server = start()
    # Another worker has claimed msg 77 and is still answering it.
    assert (
        with_store(
            server.settings, lambda s: s.claim_message("msg:gh_account:o_follower_1:77", 60), clock
        )
        is None
    )

    def answer_later() -> None:
        time.sleep(0.5)
        with_store(
            server.settings,
            lambda s: s.save_reply("msg:gh_account:o_follower_1:77", "第一次的回答", 60),
            clock,
        )

    helper = threading.Thread(target=answer_later)
    helper.start()
    reply = text_of(post(server.url, msg_id="77", timestamp=clock(), encrypt=True))
    helper.join()
    assert reply == "第一次的回答"


@pytest.mark.slow
def test_retry_still_pending_at_the_deadline_gets_success(
    start: Start, clock: Clock, logs: LogCapture
) -> None:
    server = start()
    assert (
        with_store(
            server.settings, lambda s: s.claim_message("msg:gh_account:o_follower_1:78", 60), clock
        )
        is None
    )
    began = time.monotonic()
    response = post(server.url, msg_id="78", timestamp=clock())
    elapsed = time.monotonic() - began
    assert response.text == "success"
    assert 4.0 < elapsed < 5.0  # WeChat's 5-second limit
    assert logs.wait_for("at the deadline", level="WARNING")
    assert with_store(server.settings, lambda s: s.links_since(0), clock) == []


# --- quota ------------------------------------------------------------------------------------


def test_quota_tenth_link_ok_eleventh_told_when(
    start: Start, clock: Clock, logs: LogCapture
) -> None:
    server = start()
    first = clock()
    for i in range(10):
        assert "/d/" in text_of(post(server.url, msg_id=f"q{i}", timestamp=clock()))
        clock.advance(60)
    clock.now = first + 1800
    refused = text_of(post(server.url, msg_id="q10", timestamp=clock()))
    again_at = datetime.fromtimestamp(first + 3600, CHINA).strftime("%H:%M")
    assert "/d/" not in refused
    assert "10 个" in refused and again_at in refused and "30 分钟" in refused
    assert logs.find("quota: openid=o_follower_1", level="WARNING")
    other = text_of(post(server.url, msg_id="q-other", timestamp=clock(), user="o_other"))
    assert "/d/" in other
    clock.now = first + 3600  # the first link leaves the hour
    assert "/d/" in text_of(post(server.url, msg_id="q11", timestamp=clock()))
    assert "/d/" not in text_of(post(server.url, msg_id="q12", timestamp=clock()))


# --- use-limited links ------------------------------------------------------------------------


@pytest.fixture
def one_use(start: Start, clock: Clock) -> tuple[RunningServer, str]:
    """A bot with ``max_downloads = 1`` and the path of a fresh link to the big file."""
    server = start(links={"max_downloads": 1})
    return server, link_of(
        text_of(post(server.url, msg_id="1use", timestamp=clock(), content="big"))
    )


def test_one_use_link_with_five_parallel_downloads(
    one_use: tuple[RunningServer, str], files_dir: Path
) -> None:
    server, path = one_use
    original = (files_dir / BIG_NAME).read_bytes()

    def fetch() -> httpx.Response:
        with server.client(headers={"Accept": "application/json"}) as client:
            return client.get(path)

    results = parallel([fetch] * 5)
    statuses = sorted(r.status_code for r in results)  # 503 while the first one's lease runs
    assert statuses[0] == 200 and set(statuses[1:]) <= {410, 503}, statuses
    assert [r.content for r in results if r.status_code == 200] == [original]
    assert {r.json()["error"] for r in results if r.status_code == 410} <= {"link_exhausted"}
    assert {r.json()["error"] for r in results if r.status_code == 503} <= {"link_in_use"}
    with server.client() as client:
        page = client.get(path)
    assert page.status_code == 410 and "已用完" in page.text
    assert page.headers["cache-control"] == "no-store"


WECHAT_UA = "Mozilla/5.0 (iPhone) AppleWebKit/605.1.15 Mobile/15E148 MicroMessenger/8.0.47"


def test_wechat_landing_page_neither_counts_nor_hides_a_used_up_link(
    one_use: tuple[RunningServer, str],
) -> None:
    server, path = one_use
    with server.client(headers={"User-Agent": WECHAT_UA}) as wechat, server.client() as browser:
        before = [wechat.get(path), wechat.get(path)]  # landing pages: never counted
        download = browser.get(path)
        after = wechat.get(path)
    assert [r.status_code for r in before] == [200, 200]
    assert "在浏览器打开" in before[0].text
    assert download.status_code == 200
    assert after.status_code == 410 and "已用完" in after.text


def test_counted_link_refuses_every_range_and_head_never_counts(
    one_use: tuple[RunningServer, str], files_dir: Path
) -> None:
    """Issue #9 seen 3: once a download has counted, ``bytes=1-`` (and every range) is 410."""
    server, path = one_use
    original = (files_dir / BIG_NAME).read_bytes()
    with server.client() as client:
        heads = [client.head(path).status_code for _ in range(3)]
        full = client.get(path)
        resumes = [client.get(path, headers={"Range": "bytes=1-"}).status_code for _ in range(20)]
        tail = client.get(path, headers={"Range": "bytes=-10"})
        restart = client.get(path, headers={"Range": "bytes=0-"})
        head_after = client.head(path)
    assert heads == [200, 200, 200]
    assert full.status_code == 200 and full.content == original
    assert resumes == [410] * 20
    assert tail.status_code == 410 and restart.status_code == 410
    assert head_after.status_code == 410


def test_pieces_add_up_to_one_download(one_use: tuple[RunningServer, str], files_dir: Path) -> None:
    server, path = one_use
    original = (files_dir / BIG_NAME).read_bytes()
    with server.client() as client:
        piece = client.get(path, headers={"Range": "bytes=1000-"})
        whole = client.get(path)  # within the spare copy: the file is now sent once in all
        third = client.get(path, headers={"Range": "bytes=0-999"})
        bad_range = client.get(path, headers={"Range": "bytes=999999999-"})
    assert piece.status_code == 206 and piece.content == original[1000:]
    assert whole.status_code == 200 and whole.content == original
    assert third.status_code == 410
    assert bad_range.status_code == 416


def test_interrupted_download_frees_its_claim(
    one_use: tuple[RunningServer, str], files_dir: Path
) -> None:
    os.truncate(files_dir / BIG_NAME, 64 * 1024 * 1024)  # more than socket buffers hold
    server, path = one_use
    with server.client() as client:
        with client.stream("GET", path) as partial:
            assert partial.status_code == 200
            next(partial.iter_bytes())
        deadline = time.monotonic() + 10
        # The server notices the disconnect, then frees the claim: 503 (held) until then.
        while (again := client.get(path)).status_code == 503 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert again.status_code == 200 and len(again.content) == 64 * 1024 * 1024


# --- revocation, stats, audit ----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "revoked"),
    [
        pytest.param(["ID_A"], {"a"}, id="link"),
        pytest.param(["--user", "o_b"], {"b", "c"}, id="user"),
        pytest.param(["--file", BIG_NAME], {"c"}, id="file"),
    ],
)
def test_revoke(
    start: Start, clock: Clock, tmp_path: Path, args: list[str], revoked: set[str]
) -> None:
    server = start()
    paths = {
        name: link_of(text_of(post(server.url, msg_id=name, timestamp=clock(), **kw)))
        for name, kw in {
            "a": {"user": "o_a"},
            "b": {"user": "o_b"},
            "c": {"user": "o_b", "content": "big"},
        }.items()
    }
    args = [link_id(paths["a"], clock) if a == "ID_A" else a for a in args]
    result = bot_on(tmp_path / "config.toml", "revoke", *args)
    assert result.returncode == 0, result.stderr
    assert f"revoked {len(revoked)} link(s)" in result.stdout
    with server.client(headers={"Accept": "application/json"}) as client:
        statuses = {name: client.get(path) for name, path in paths.items()}
        page = client.get(paths[min(revoked)], headers={"Accept": "text/html"})
    for name, response in statuses.items():
        if name in revoked:
            assert (response.status_code, response.json()["error"]) == (410, "link_revoked")
        else:
            assert response.status_code == 200
    assert "已被公众号管理员停用" in page.text and page.status_code == 410


def wait_for_attempts(settings: Settings, clock: Clock, count: int) -> list[Attempt]:
    """Attempts are written after the response ends: wait until ``count`` are in."""
    deadline = time.monotonic() + 10
    while len(found := with_store(settings, lambda s: s.attempts_since(0), clock)) < count:
        assert time.monotonic() < deadline, found
        time.sleep(0.05)
    return found


@pytest.mark.slow
def test_stats_and_audit(start: Start, clock: Clock, tmp_path: Path, files_dir: Path) -> None:
    server = start()
    one = link_of(text_of(post(server.url, msg_id="s1", timestamp=clock(), user="o_a")))
    two = link_of(text_of(post(server.url, msg_id="s2", timestamp=clock(), user="o_b")))
    big = link_of(text_of(post(server.url, msg_id="s3", timestamp=clock(), content="big")))
    big_size = (files_dir / BIG_NAME).stat().st_size
    demo_size = (files_dir / DEMO_NAME).stat().st_size
    with server.client(headers={"User-Agent": "test-agent/1"}) as client:
        assert client.get(one).status_code == 200
        assert client.head(two).status_code == 200
        assert client.get(big, headers={"Range": "bytes=100-"}).status_code == 206
        assert client.get("/d/garbage").status_code == 403
        clock.advance(601)
        assert client.get(two).status_code == 410
    wait_for_attempts(server.settings, clock, 5)
    config = tmp_path / "config.toml"
    result = bot_on(config, "stats", "--since", "7d")
    assert result.returncode == 0, result.stderr
    rows = {
        line.split("  ")[0]: re.split(r"\s{2,}", line)[1:] for line in result.stdout.splitlines()
    }
    assert rows[DEMO_NAME] == ["2", "2", "1", f"{demo_size:,}", "1", "-"]
    assert rows[BIG_NAME] == ["1", "1", "0", f"{big_size - 100:,}", "0", "-"]
    assert rows["total"] == ["3", "3", "1", f"{demo_size + big_size - 100:,}", "1", "1"]
    audit = bot_on(config, "audit", link_id(one, lambda: clock() - 601))
    assert audit.returncode == 0, audit.stderr
    assert "o_a" in audit.stdout and "complete downloads 1" in audit.stdout
    assert re.search(r"served\s+200\s+" + f"{demo_size:,}" + r"\s+yes\s+yes", audit.stdout)
    assert "test-agent/1" in audit.stdout
    expired = bot_on(config, "audit", link_id(two, lambda: clock() - 601)).stdout
    assert "expired" in expired and "410" in expired and "served" in expired  # HEAD, then 410


# --- faults -----------------------------------------------------------------------------------


FAULTS = [
    pytest.param("redis-killed", id="redis-killed"),
    pytest.param("redis-paused", id="redis-paused"),
    pytest.param("sqlite-locked", id="sqlite-locked"),
]


@pytest.mark.slow
@pytest.mark.parametrize("fault", FAULTS)
def test_store_down_webhook_answers_unlimited_downloads_limited_503(
    tmp_path: Path,
    files_dir: Path,
    serve: Callable[[Settings], RunningServer],
    clock: Clock,
    logs: LogCapture,
    fault: str,
    request: pytest.FixtureRequest,
) -> None:
    redis = request.getfixturevalue("own_redis") if fault.startswith("redis") else None
    url = redis.url() if redis else "sqlite:///state/bot.db"
    server = serve(load_settings(write_config(tmp_path, keywords=LIMITED, state={"url": url})))
    demo = link_of(text_of(post(server.url, msg_id="f1", timestamp=clock())))
    big = link_of(text_of(post(server.url, msg_id="f2", timestamp=clock(), content="big")))
    with server.client() as client:
        assert client.get("/healthz").status_code == 200
    lock = None
    if redis and fault == "redis-killed":
        redis.stop()
    elif redis:
        redis.process.send_signal(signal.SIGSTOP)  # the server hangs, connections stay open
    else:
        lock = sqlite3.connect(tmp_path / "state" / "bot.db", isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
    try:
        began = time.monotonic()
        reply = text_of(post(server.url, msg_id="f3", timestamp=clock(), encrypt=True))
        elapsed = time.monotonic() - began
        retry = text_of(post(server.url, msg_id="f3", timestamp=clock(), encrypt=True))
        with server.client(headers={"Accept": "application/json"}) as client:
            unlimited = client.get(demo)
            limited = client.get(big)
            health = client.get("/healthz")
    finally:
        if lock is not None:
            lock.rollback()
            lock.close()
    assert "/d/" in reply and elapsed < 4.5
    assert retry == reply  # deduplicated in the process meanwhile
    assert unlimited.status_code == 200
    assert unlimited.content == (files_dir / DEMO_NAME).read_bytes()
    assert limited.status_code == 503 and limited.headers["retry-after"] == "30"
    assert limited.json()["error"] == "unavailable"
    assert logs.find("falls back to this process", level="ERROR")
    assert (health.status_code, health.json()) == (503, {"status": "unavailable"})


def test_a_burst_opens_at_most_pool_size_connections_to_redis(own_redis: RedisServer) -> None:
    """#20: a burst of pushes on Redis took a connection each. Past redis-py's default pool of
    100 a call failed at once ("Too many connections"): the push fell back to this process's
    memory (no shared dedup, quota, link record or pick-up code), logged as errors; and the
    burst's connects at once overran redis-server's accept backlog (511), so the slowest push
    waited for TCP's retry (4 s at 512 connections). A process now has at most POOL_SIZE calls
    in flight, the others wait their turn: every call answers, on at most that many connections."""

    async def burst() -> int:
        store = store_from_url(own_redis.url())
        await store.open()
        try:
            await asyncio.gather(*(store.usage(f"link-{n}") for n in range(300)))
            watcher = Redis.from_url(own_redis.url())
            try:
                clients = int((await watcher.info("clients"))["connected_clients"])
            finally:
                await watcher.aclose()
            return clients - 1  # the watcher's own
        finally:
            await store.close()

    assert 1 <= asyncio.run(burst()) <= POOL_SIZE
