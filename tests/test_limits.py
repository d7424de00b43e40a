"""Bandwidth protection in direct mode: download slots (503/429 + Retry-After) and the speed cap."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import pytest

from bot.config import Settings, load_settings
from bot.delivery.slots import DownloadSlots, Pacer, ReadBudget, paced_chunk
from bot.errors import LinkBusy, ServerBusy
from tests.conftest import BIG_NAME, LogCapture, RunningServer, write_config
from tests.helpers.webhook import link_path, reply_text, send

SLOW = 100_000  # bytes/s: the 3 MB test file then takes 30 s, so a download stays open


@pytest.fixture
def limited(
    tmp_path: Path, files_dir: Path, serve: Callable[[Settings], RunningServer]
) -> Callable[..., RunningServer]:
    def _start(**limits: int) -> RunningServer:
        return serve(load_settings(write_config(tmp_path, limits=limits)))

    return _start


def big_link(server: RunningServer, user: str = "o_follower_1") -> str:
    return link_path(reply_text(send(server, content="big", user=user)))


def test_fifth_parallel_download_of_one_link_gets_429(
    limited: Callable[..., RunningServer], logs: LogCapture
) -> None:
    server = limited(max_concurrent_per_link=4, rate_bytes_per_second=SLOW)
    path, other = big_link(server), big_link(server, user="o_other")
    with server.client() as client, ExitStack() as running:
        for _ in range(4):
            assert running.enter_context(client.stream("GET", path)).status_code == 200
        refused = client.get(path)
        as_json = client.get(path, headers={"Accept": "application/json"})
        head = client.head(path)
        other_link = client.get(other, headers={"Range": "bytes=0-9"})
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "5"
    assert refused.headers["cache-control"] == "no-store"
    assert "下载人数较多" in refused.text
    assert as_json.json()["error"] == "too_many_downloads"
    assert head.status_code == 200, "HEAD sends no bytes and needs no slot"
    assert other_link.status_code == 206, "the limit is per link"
    assert logs.find("download refused 429", level="WARNING")


def test_server_wide_limit_gets_503(limited: Callable[..., RunningServer]) -> None:
    server = limited(max_concurrent_downloads=2, rate_bytes_per_second=SLOW)
    paths = [big_link(server, user=f"o_user_{i}") for i in range(3)]
    with server.client() as client, ExitStack() as running:
        for path in paths[:2]:
            assert running.enter_context(client.stream("GET", path)).status_code == 200
        refused = client.get(paths[2])
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "30"


def test_slots_come_back_when_downloads_end(limited: Callable[..., RunningServer]) -> None:
    server = limited(max_concurrent_per_link=1, max_concurrent_downloads=1)
    path = big_link(server)
    with server.client() as client:
        statuses = [client.get(path).status_code for _ in range(3)]
        with client.stream("GET", path):
            pass  # the client hangs up early: the slot must come back too
        deadline = time.monotonic() + 5
        while (status := client.get(path).status_code) != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert statuses == [200, 200, 200]
    assert status == 200


def test_big_file_in_many_reads_and_the_budget_comes_back(
    limited: Callable[..., RunningServer], files_dir: Path
) -> None:
    server = limited()
    slots: DownloadSlots = server.app.state.services.slots
    path = big_link(server)
    with server.client() as client:
        slots.reads.held = slots.reads.total  # spent: reads shrink to the floor, many chunks
        small_reads = client.get(path)
        settle(lambda: slots.reads.held == slots.reads.total)  # its reads given back
        slots.reads.held = 0
        big_reads = client.get(path)
        with client.stream("GET", path) as hung_up:
            next(hung_up.iter_bytes())
    original = (files_dir / BIG_NAME).read_bytes()
    assert small_reads.content == original and big_reads.content == original
    settle(lambda: (slots.reads.held, slots.running) == (0, 0))
    assert (slots.reads.held, slots.running) == (0, 0)


def settle(done: Callable[[], bool]) -> None:
    """Wait (at most 5 s) for the server to finish what it does after the last byte."""
    deadline = time.monotonic() + 5
    while not done() and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param({}, 200, id="whole-file"),
        pytest.param({"Range": "bytes=0-199999"}, 206, id="range"),
    ],
)
def test_speed_cap_paces_a_direct_download(
    limited: Callable[..., RunningServer], files_dir: Path, headers: dict[str, str], status: int
) -> None:
    (files_dir / BIG_NAME).write_bytes(bytes(range(250)) * 800)  # 200,000 bytes
    server = limited(rate_bytes_per_second=SLOW)
    path = big_link(server)
    started = time.monotonic()
    with server.client() as client:
        response = client.get(path, headers=headers)
    assert response.status_code == status
    assert response.content == (files_dir / BIG_NAME).read_bytes()
    assert time.monotonic() - started >= 1.5  # 200 kB at 100 kB/s: a lower bound, never an upper


@pytest.mark.parametrize(
    ("max_total", "max_per_link", "running", "error"),
    [
        pytest.param(0, 0, ["a"] * 50, None, id="unlimited"),
        pytest.param(3, 0, ["a", "b"], None, id="under-total"),
        pytest.param(2, 0, ["a", "b"], ServerBusy, id="total-full"),
        pytest.param(0, 2, ["a", "a"], LinkBusy, id="link-full"),
        pytest.param(0, 2, ["b", "b", "a"], None, id="other-link-full"),
        pytest.param(2, 2, ["a", "a"], ServerBusy, id="both-full-server-first"),
    ],
)
def test_slots(
    max_total: int, max_per_link: int, running: list[str], error: type[Exception] | None
) -> None:
    slots = DownloadSlots(max_total, max_per_link)
    held = [slots.acquire(link) for link in running]
    if error is None:
        slots.acquire("a").release()
    else:
        with pytest.raises(error) as caught:
            slots.acquire("a")
        assert caught.value.retry_after > 0  # type: ignore[attr-defined]
    for slot in held:
        slot.release()
        slot.release()  # idempotent
    assert slots.running == 0


@pytest.mark.parametrize(
    ("rate", "chunks", "expected"),
    [
        pytest.param(1000, [(100, 0.0)], [0.0], id="first-chunk-at-once"),
        pytest.param(1000, [(500, 0.0), (500, 0.0)], [0.0, 0.5], id="second-waits-for-first"),
        pytest.param(1000, [(500, 0.0), (500, 0.7)], [0.0, 0.0], id="slow-client-no-wait"),
        pytest.param(1000, [(500, 0.0), (500, 0.2), (10, 0.6)], [0.0, 0.3, 0.4], id="catch-up"),
    ],
)
def test_pacer(rate: int, chunks: list[tuple[int, float]], expected: list[float]) -> None:
    pacer = Pacer(rate, started=0.0)
    assert [pytest.approx(pacer.delay(size, now)) for size, now in chunks] == expected


@pytest.mark.parametrize(
    ("rate", "chunk", "expected"),
    [
        pytest.param(100_000, 262_144, 12_500, id="eighth-of-a-second"),
        pytest.param(1_000, 262_144, 4096, id="floor"),
        pytest.param(100_000_000, 262_144, 262_144, id="ceiling"),
    ],
)
def test_paced_chunk(rate: int, chunk: int, expected: int) -> None:
    assert paced_chunk(rate, chunk) == expected


@pytest.mark.parametrize(
    ("total", "held", "want", "floor", "expected"),
    [
        pytest.param(8, 0, 4, 1, 4, id="room"),
        pytest.param(8, 6, 4, 1, 2, id="what-is-left"),
        pytest.param(8, 8, 4, 1, 1, id="floor-when-spent"),
        pytest.param(8, 9, 4, 1, 1, id="floor-when-over"),
    ],
)
def test_read_budget(total: int, held: int, want: int, floor: int, expected: int) -> None:
    budget = ReadBudget(total, held)
    assert budget.take(want, floor) == expected
    budget.give(expected)
    assert budget.held == held
