"""Issue #9, the download half: every count true, with real clients and real stores (both).

Each test names the "What was seen" item it covers. Files are a few MB, not 300 MB: the
properties do not depend on size, and the machine is shared.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.app import create_app
from bot.config import Settings, load_settings
from bot.state import Attempt
from tests.conftest import (
    BIG_NAME,
    Clock,
    LogCapture,
    RunningServer,
    push,
    start_server,
    write_config,
)
from tests.helpers.breaks import (
    EIGHT,
    SMALL_WINDOW,
    THEN,
    MiB,
    broken_get,
    sent_once_ended,
    then_the_rest,
    unread,
)
from tests.helpers.processes import bot, config_for, running
from tests.helpers.stores import LIMITED, link_id, parallel, with_store
from tests.helpers.waiting import wait_for
from tests.helpers.webhook import link_of, link_path, post, text_of

SIZE = 12 * 1024 * 1024 + 5  # aria2c -x 8 -k 1M splits it into 8 segments
Start = Callable[..., RunningServer]


@pytest.fixture
def big_file(files_dir: Path) -> bytes:
    data = os.urandom(SIZE)
    (files_dir / BIG_NAME).write_bytes(data)
    return data


@pytest.fixture
def start(
    tmp_path: Path, files_dir: Path, state_url: str, serve: Callable[[Settings], RunningServer]
) -> Start:
    def _start(*, edge: bool = False, **sections: Any) -> RunningServer:
        sections["state"] = {"url": state_url, **sections.get("state", {})}
        settings = load_settings(write_config(tmp_path, keywords=LIMITED, **sections))
        return serve(settings, edge=edge)

    return _start


def one_use_link(server: RunningServer, clock: Clock, msg_id: str = "c1") -> str:
    return server.url + link_of(
        text_of(post(server.url, msg_id=msg_id, timestamp=clock(), content="big"))
    )


def attempts_of(server: RunningServer, clock: Clock, url: str, count: int) -> list[Attempt]:
    """The link's audit rows, once ``count`` of them have landed (they follow the response)."""
    lid = link_id(url.split(server.url, 1)[1], clock)
    deadline = time.monotonic() + 15
    while True:
        rows = with_store(server.settings, lambda s: s.attempts_since(0, lid), clock)
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def served(rows: list[Attempt]) -> list[Attempt]:
    return [a for a in rows if a.outcome not in REFUSALS]


REFUSALS = {"exhausted", "revoked", "unavailable", "busy", "held"}


def run(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.slow
def test_aria2c_gets_the_file_once_then_410(
    start: Start, clock: Clock, big_file: bytes, tmp_path: Path
) -> None:
    """Issue #9 seen 1 (and done-when 1): aria2c -x 8 -s 8 -k 1M, then curl gets 410."""
    server = start(links={"max_downloads": 1}, limits={"max_concurrent_per_link": 8})
    url = one_use_link(server, clock)
    out = tmp_path / "aria"
    out.mkdir()
    got = run(
        [
            "aria2c",
            "-x",
            "8",
            "-s",
            "8",
            "-k",
            "1M",
            "--file-allocation=none",
            "-q",
            "--allow-overwrite=true",
            "-o",
            "got.bin",
            url,
        ],
        out,
    )
    assert got.returncode == 0, got.stdout + got.stderr
    assert (out / "got.bin").read_bytes() == big_file
    curl = run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url], out)
    assert curl.stdout == "410"
    rows = attempts_of(server, clock, url, 2)
    assert sum(a.counted for a in rows) == 1, rows
    assert sum(a.bytes_sent for a in served(rows)) <= 2 * SIZE


def test_slow_get_plus_range_from_1_plus_abort(start: Start, clock: Clock, big_file: bytes) -> None:
    """Issue #9 seen 2 (done-when 2): at most one whole copy and 2 x size bytes, then 410."""
    server = start(links={"max_downloads": 1})
    url = one_use_link(server, clock)
    copies, statuses = 0, []
    with httpx.Client(timeout=30) as client:
        for _ in range(3):
            with client.stream("GET", url) as slow:
                statuses.append(slow.status_code)
                if slow.status_code == 200:
                    next(slow.iter_bytes())
                rest = client.get(url, headers={"Range": "bytes=1-"})
                statuses.append(rest.status_code)
                copies += rest.status_code == 206 and rest.content == big_file[1:]
            # the slow GET is aborted here, with a few MB sent at most
        after = client.get(url)
    assert statuses[:2] == [200, 206] and set(statuses[2:]) == {410}
    assert after.status_code == 410
    rows = attempts_of(server, clock, url, len(statuses) + 1)
    assert sum(a.counted for a in rows) == 1
    assert sum(a.bytes_sent for a in served(rows)) <= 2 * SIZE


@pytest.mark.slow
def test_broken_download_restarted_from_zero_succeeds(
    start: Start, clock: Clock, files_dir: Path
) -> None:
    """Done-when 3 (#9): a download broken halfway and restarted from byte 0 (Chrome) succeeds."""
    # uvicorn's plain protocol; #19 seen 3 below has `bot serve`'s, and default buffers.
    # A phone's small receive window, and a file bigger than the send buffer (4 MB here): the
    # bytes the kernel took but the client never read count as sent (README), so the half that
    # was read plus the buffers must not cover the file.
    big_file = os.urandom(4 * SIZE)
    (files_dir / BIG_NAME).write_bytes(big_file)
    server = start(links={"max_downloads": 1})
    url = one_use_link(server, clock)
    host, port = url.split("/")[2].split(":")
    path = "/" + url.split("/", 3)[3]
    with socket.socket() as broken:
        broken.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        broken.connect((host, int(port)))
        broken.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        got = 0
        while got < len(big_file) // 2:
            chunk = broken.recv(256 * 1024)
            assert chunk
            got += len(chunk)
    with httpx.Client(timeout=30) as client:
        deadline = time.monotonic() + 10  # the server notices the hang-up, then ends its lease
        while (again := client.get(url)).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        after = client.get(url, headers={"Range": "bytes=1-"})
    assert again.status_code == 200 and again.content == big_file
    assert after.status_code == 410


# --- #19 seen 3: count what the client acknowledged (`bot serve`'s protocol: edge=True) --------


@pytest.fixture
def eight_mib(files_dir: Path) -> bytes:
    data = os.urandom(EIGHT)
    (files_dir / BIG_NAME).write_bytes(data)
    return data


@pytest.mark.parametrize("then", THEN)
def test_seen3_halfway_break_with_default_buffers_restarts_and_resumes(
    start: Start, clock: Clock, eight_mib: bytes, then: str
) -> None:
    """Issue #19 seen 3: 8 MiB, one use: read 4 MiB, drop, restart: 410 (default buffers)."""
    # The project's own test passed only because it shrank the client's receive window. The
    # client's kernel acknowledged what it read plus what its receive buffer held unread: the
    # count is bounded by that buffer, so the break is restartable when the two fall short of
    # the file (here autotuning had grown the buffer to about 1-3.5 MiB by 4 MiB read).
    server = start(edge=True, links={"max_downloads": 1})
    url = one_use_link(server, clock)
    kept, rcvbuf, sock = broken_get(url, EIGHT // 2)
    sock.close()  # unread bytes: a reset
    read, sent = len(kept), sent_once_ended(server, clock, url.removeprefix(server.url))
    assert read <= sent <= read + rcvbuf, (read, sent, rcvbuf)
    if read + rcvbuf >= EIGHT:
        pytest.skip(f"the client's kernel buffered {rcvbuf} bytes: the bounded case (README)")
    then_the_rest(url, kept, eight_mib, then)


@pytest.mark.parametrize(
    "rcvbuf",
    [pytest.param(SMALL_WINDOW, id="small-window"), pytest.param(0, id="default-buffers")],
)
def test_seen3_a_break_counts_what_the_client_acknowledged(
    start: Start, clock: Clock, eight_mib: bytes, rcvbuf: int
) -> None:
    """Issue #19 seen 3: what socket buffers swallowed counted as delivered (several MiB)."""
    # Now a break counts at most what the client's kernel acknowledged: what the client read
    # plus its receive buffer, never the server's queue.
    server = start(edge=True, links={"max_downloads": 1})
    url = one_use_link(server, clock)
    kept, buffered, sock = broken_get(url, 2 * MiB, rcvbuf)
    held = len(kept) + unread(sock)  # what the client's kernel acknowledged, read or not
    sock.close()
    (row,) = attempts_of(server, clock, url, 1)
    # With default buffers a slow reader's kernel may take the whole file (tcp_rmem's maximum
    # is 32 MiB on some machines, more than the file): that download was delivered and counts.
    whole = held >= EIGHT
    expected = ("served", True, True) if whole else ("aborted", False, False)
    assert (row.outcome, row.complete, row.counted) == expected, held
    read = len(kept)
    assert read <= row.bytes_sent <= read + buffered, (read, row.bytes_sent, buffered)


@pytest.mark.parametrize("then", THEN)
@pytest.mark.parametrize(
    "read",
    [
        pytest.param(MiB, id="early"),
        pytest.param(EIGHT // 2, id="halfway"),
        pytest.param(EIGHT - MiB // 2, id="in-the-last-chunk"),
    ],
)
def test_seen3_break_at_any_point_stays_restartable_and_resumable(
    start: Start, clock: Clock, eight_mib: bytes, read: int, then: str
) -> None:
    """Issue #19 seen 3: a download broken halfway lost the link, and a resume was refused."""
    # Wherever the client's kernel did not acknowledge the rest (a small window: it waits in the
    # server's buffers), a break at any point, in the last chunk too, leaves the link
    # restartable from byte 0 and resumable.
    server = start(edge=True, links={"max_downloads": 1})
    url = one_use_link(server, clock)
    kept, _, sock = broken_get(url, read, SMALL_WINDOW)
    sock.close()
    assert sent_once_ended(server, clock, url.removeprefix(server.url)) < EIGHT
    then_the_rest(url, kept, eight_mib, then)


def test_a_client_that_stops_reading_at_the_end_is_cut_off_uncounted(
    start: Start, clock: Clock, eight_mib: bytes, logs: LogCapture
) -> None:
    """A client silent in the last chunk (a lost network: no reset) is cut off; it restarts."""
    server = start(edge=True, links={"max_downloads": 1}, limits={"send_timeout": 2})
    url = one_use_link(server, clock)
    kept, _, silent = broken_get(url, EIGHT - MiB // 2, SMALL_WINDOW)
    try:
        read, sent = (
            len(kept),
            sent_once_ended(server, clock, url.removeprefix(server.url)),
        )  # the client still holds on
        assert read <= sent < EIGHT, (read, sent)
        assert logs.wait_for("cut off (the client took nothing for [limits] send_timeout)")
        then_the_rest(url, kept, eight_mib, "restart")
    finally:
        silent.close()


def test_a_client_that_half_closes_is_counted_for_all_it_reads(
    start: Start, clock: Clock, eight_mib: bytes
) -> None:
    """A client that ends its side after the request (FIN) reads on: all it gets counts."""
    server = start(edge=True, links={"max_downloads": 1})
    url = one_use_link(server, clock)
    kept, _, sock = broken_get(url, 0, SMALL_WINDOW)
    with sock:
        sock.shutdown(socket.SHUT_WR)  # uvicorn then closes, gracefully: its queue still comes
        while chunk := sock.recv(65536):
            kept += chunk
    sent = sent_once_ended(server, clock, url.removeprefix(server.url))
    assert len(kept) <= sent, (len(kept), sent)


@pytest.mark.parametrize("connection", ["keep-alive", "close"])
def test_a_whole_download_counts_once_its_last_byte_is_acknowledged(
    start: Start, clock: Clock, eight_mib: bytes, connection: str
) -> None:
    """`bot serve`'s protocol: a whole download counts once acknowledged; the next GET is 410."""
    server = start(edge=True, links={"max_downloads": 1})
    url = one_use_link(server, clock)
    whole = httpx.get(url, headers={"Connection": connection}, timeout=30)
    assert whole.status_code == 200 and whole.content == eight_mib
    (row,) = attempts_of(server, clock, url, 1)
    assert (row.outcome, row.complete, row.counted, row.bytes_sent) == ("served", True, True, EIGHT)
    assert httpx.get(url, timeout=30).status_code == 410


@pytest.mark.slow
@pytest.mark.parametrize(
    "client",
    [
        pytest.param(["curl", "-s", "-f", "-C", "-", "-o", "got.bin"], id="curl-C"),
        pytest.param(["wget", "-q", "-c", "-O", "got.bin"], id="wget-c"),
    ],
)
def test_interrupted_then_resumed_counts_once(
    start: Start, clock: Clock, big_file: bytes, tmp_path: Path, client: list[str]
) -> None:
    """Issue #9 seen 11: 200 cut off, then resumed with 206: the link counts one download."""
    server = start(links={"max_downloads": 1})
    url = one_use_link(server, clock)
    out = tmp_path / "resume"
    out.mkdir()
    kept = b""
    with httpx.Client(timeout=30) as first, first.stream("GET", url) as cut:
        assert cut.status_code == 200
        for chunk in cut.iter_bytes():
            kept += chunk
            if len(kept) >= SIZE // 3:
                break  # the connection breaks here
    (out / "got.bin").write_bytes(kept)  # what the cut-off first try kept
    deadline = time.monotonic() + 10
    while True:
        resumed = run([*client, url], out)
        if resumed.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.1)  # the cut-off download's lease ends once the server sees the hang-up
    assert resumed.returncode == 0, resumed.stderr
    assert (out / "got.bin").read_bytes() == big_file
    rows = attempts_of(server, clock, url, 2)
    assert sum(a.counted for a in rows) == 1
    assert httpx.get(url, headers={"Range": "bytes=0-0"}).status_code == 410


@pytest.mark.slow
def test_curl_head_is_recorded_as_head_never_a_download(
    start: Start, clock: Clock, big_file: bytes, tmp_path: Path
) -> None:
    """Issue #9 seen 11: ``curl -I`` is a HEAD in the audit, neither complete nor counted."""
    server = start(links={"max_downloads": 1})
    url = one_use_link(server, clock)
    head = run(["curl", "-s", "-I", "-o", "/dev/null", "-w", "%{http_code}", url], tmp_path)
    assert head.stdout == "200"
    (row,) = attempts_of(server, clock, url, 1)
    assert (row.method, row.complete, row.counted, row.bytes_sent) == ("HEAD", False, False, 0)
    assert httpx.get(url, timeout=30).content == big_file  # the link is still unspent
    audit = bot("audit", row.link_id, "--config", str(tmp_path / "config.toml"))
    assert audit.returncode == 0, audit.stderr
    assert "HEAD" in audit.stdout and "GET" in audit.stdout


def test_range_on_fresh_link_and_probe_do_not_spend_it(
    start: Start, clock: Clock, big_file: bytes
) -> None:
    """Issue #9 seen 16 (direct mode; x-accel in test_nginx): bytes=1-9 and 0-0 never count."""
    server = start(links={"max_downloads": 1})
    url = one_use_link(server, clock)
    with httpx.Client(timeout=30) as client:
        piece = client.get(url, headers={"Range": "bytes=1-9"})
        probe = client.get(url, headers={"Range": "bytes=0-0"})
        whole = client.get(url)
    assert piece.status_code == 206 and piece.content == big_file[1:10]
    assert probe.status_code == 206 and probe.content == big_file[:1]
    assert whole.status_code == 200 and whole.content == big_file


def test_a_cut_off_the_bot_chose_is_no_error_in_the_owners_log(
    tmp_path: Path, files_dir: Path, big_file: bytes
) -> None:
    """A download the bot cuts off itself (here the file changed) made uvicorn log an ERROR,
    "ASGI callable returned without completing response.", as if the bot had failed: the
    owner's log now has the bot's warning with the reason, and no error."""
    config, url = config_for(tmp_path / "owner", files_dir)
    with running(config, url):
        path = link_path(push(url, timestamp=time.time(), msg_id="7101", content="Big").text)
        with (
            httpx.Client(timeout=30) as client,
            client.stream("GET", url + path) as download,
            pytest.raises(httpx.RemoteProtocolError),
        ):
            for n, _ in enumerate(download.iter_bytes()):
                if not n:
                    (files_dir / BIG_NAME).write_bytes(os.urandom(SIZE))  # cp: same inode
        log = config.parent / "bot.log"
        wait_for(lambda: "the file changed during the download" in log.read_text("utf-8"))
    text = log.read_text("utf-8")
    assert "WARNING" in next(line for line in text.splitlines() if "file changed" in line)
    assert "ERROR" not in text and "without completing" not in text, text


def test_file_changed_mid_download_is_cut_off_not_counted(
    start: Start,
    clock: Clock,
    big_file: bytes,
    files_dir: Path,
    logs: LogCapture,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    """Issue #9 seen 10: ``cp new files/x`` during ``bytes=0-``: aborted, not counted, logged."""
    server = start(links={"max_downloads": 1})
    url = one_use_link(server, clock)
    got = 0
    with (
        httpx.Client(timeout=30) as client,
        client.stream("GET", url, headers={"Range": "bytes=0-"}) as download,
    ):
        assert download.status_code == 206
        with pytest.raises(httpx.RemoteProtocolError):
            for chunk in download.iter_bytes():
                if not got:
                    (files_dir / BIG_NAME).write_bytes(os.urandom(SIZE))  # cp: same inode
                got += len(chunk)
    assert got < SIZE
    rows = attempts_of(server, clock, url, 1)
    assert [(a.outcome, a.counted, a.complete) for a in rows] == [("changed", False, False)]
    assert logs.wait_for("the file changed during the download", level="WARNING")
    everything = logs.messages() + [r.getMessage() for r in caplog.records]
    assert not [m for m in everything if "Traceback" in m or str(tmp_path) in m]
    assert not [r for r in caplog.records if r.exc_info]
    assert httpx.get(url, timeout=30).status_code == 200  # the link was not spent


def pause(state_url: str, tmp_path: Path, own_redis: Any) -> Callable[[], None]:
    """Stall the store; returns how to resume it."""
    if state_url.startswith("redis"):
        own_redis.process.send_signal(signal.SIGSTOP)
        return lambda: own_redis.process.send_signal(signal.SIGCONT)
    # The workers' turns at the file (bot.db.lock, flock): held, every store call waits.
    lock = os.open(tmp_path / "state" / "bot.db.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(lock, fcntl.LOCK_EX)

    def resume() -> None:
        fcntl.flock(lock, fcntl.LOCK_UN)
        os.close(lock)

    return resume


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_stalled_store_never_spends_a_link(
    tmp_path: Path,
    files_dir: Path,
    big_file: bytes,
    serve: Callable[[Settings], RunningServer],
    clock: Clock,
    backend: str,
    request: pytest.FixtureRequest,
) -> None:
    """Issue #9 seen 4 (done-when 5): Redis SIGSTOP / bot.db.lock held: 503, then unspent."""
    redis = request.getfixturevalue("own_redis") if backend == "redis" else None
    url = redis.url() if redis else "sqlite:///state/bot.db"
    settings = load_settings(
        write_config(tmp_path, keywords=LIMITED, state={"url": url}, links={"max_downloads": 1})
    )
    server = serve(settings)
    link = one_use_link(server, clock)
    warm = one_use_link(server, clock, msg_id="warm")  # a download before: scripts loaded
    assert httpx.get(warm, timeout=30).status_code == 200
    resume = pause(url, tmp_path, redis)
    try:
        refused = httpx.get(link, timeout=30, headers={"Accept": "application/json"})
        time.sleep(0.5)  # the stall goes on after the 503 (12 s / 3 s in the issue)
    finally:
        resume()
    assert refused.status_code == 503
    deadline = time.monotonic() + 10  # the refused claim's cancellation lands after it
    with httpx.Client(timeout=30) as client:
        while (after := client.get(link)).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
    assert after.status_code == 200 and after.content == big_file


@pytest.mark.slow
def test_kill_9_mid_download_frees_the_link_within_the_lease(
    killable: Callable[[str], tuple[subprocess.Popen[bytes], str]],
    tmp_path: Path,
    big_file: bytes,
    serve: Callable[[Settings], RunningServer],
    state_url: str,
) -> None:
    """Issue #9 seen 5 (done-when 4): kill -9 mid-download; after the lease, it downloads."""
    if state_url.startswith("sqlite"):
        state_url = f"sqlite:///{tmp_path / 'killed' / 'state' / 'bot.db'}"
    proc, url = killable(state_url)
    link = url + link_of(text_of(post(url, msg_id="k1", timestamp=time.time(), content="big")))
    with httpx.Client(timeout=30) as client, client.stream("GET", link) as running:
        assert running.status_code == 200
        next(running.iter_bytes())
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    # Another instance on the same store, its clock past the lease (30 s): the link is free.
    # It serves unthrottled: the killed one's rate limit only kept its download running.
    later = Clock(time.time() + 31)
    config = tmp_path / "killed" / "config.toml"
    settings = load_settings(config)
    settings.limits.rate_bytes_per_second = 0
    app = create_app(settings, clock=later)
    server, thread, other = start_server(app)
    try:
        path = link.split(url, 1)[1]
        again = httpx.get(other + path, timeout=30)
        deadline = time.monotonic() + 10  # the lease ends just after the last byte goes out
        while True:
            usage = with_store(settings, lambda s: s.usage(link_id(path, later)), later)
            if usage.active == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    finally:
        server.should_exit = True
        thread.join(10)
    assert again.status_code == 200 and again.content == big_file
    assert usage.active == 0 and usage.completed == 1


def test_five_parallel_gets_on_one_use_link(start: Start, clock: Clock, big_file: bytes) -> None:
    """Deliver 1: concurrent admission: 5 parallel whole GETs give one 200; the four others
    are 503 with Retry-After while the first one's lease may still end short (#19 item 9), or
    410 once it noted its last bytes."""
    server = start(links={"max_downloads": 1})
    url = one_use_link(server, clock)
    results = sorted(
        parallel([lambda: httpx.get(url, timeout=30)] * 5), key=lambda r: r.status_code
    )
    assert results[0].status_code == 200 and results[0].content == big_file
    assert all(r.status_code in (410, 503) for r in results[1:]), results
    assert all(r.headers["retry-after"] == "30" for r in results[1:] if r.status_code == 503)


def stuck_client(url: str) -> socket.socket:
    """A client that asks for the file and never reads (a tiny receive buffer fills at once)."""
    host, port = url.removeprefix("http://").split("/", 1)[0].split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    path = "/" + url.removeprefix("http://").split("/", 1)[1]
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    return sock


@pytest.mark.slow
def test_clients_that_never_read_are_cut_off_and_free_their_slots(
    tmp_path: Path,
    files_dir: Path,
    big_file: bytes,
    serve: Callable[[Settings], RunningServer],
    clock: Clock,
    logs: LogCapture,
) -> None:
    """Issue #9 seen 14: 64 clients that never read no longer hold every slot for good."""
    limits = {"send_timeout": 2, "max_concurrent_per_link": 0}  # 64 slots, one link
    server = serve(load_settings(write_config(tmp_path, limits=limits)))
    url = one_use_link(server, clock)  # "big" is unlimited in the default keywords
    link = url
    stuck = [stuck_client(url) for _ in range(64)]
    try:
        slots = server.app.state.services.slots
        deadline = time.monotonic() + 10
        while slots.running < 64 and time.monotonic() < deadline:
            time.sleep(0.05)
        refused = httpx.get(link, timeout=30)
        deadline = time.monotonic() + 30
        while (later := httpx.get(link, timeout=30)).status_code == 503:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        for sock in stuck:
            sock.close()
    assert refused.status_code == 503
    assert later.status_code == 200 and later.content == big_file
    assert logs.find("cut off (the client took nothing for [limits] send_timeout)")


@pytest.mark.slow
def test_a_running_download_keeps_its_lease(start: Start, clock: Clock, files_dir: Path) -> None:
    """Deliver 2: the lease is renewed while bytes flow (the clock runs past it many times)."""
    data = os.urandom(4 * 1024 * 1024)
    (files_dir / BIG_NAME).write_bytes(data)
    server = start(
        links={"max_downloads": 1, "claim_lease_seconds": 1},
        limits={"rate_bytes_per_second": 1_000_000},  # about 4 s
    )
    url = one_use_link(server, clock)
    done = threading.Event()

    def tick() -> None:  # the bot's clock at 0.8x real time: the 1 s lease lapses unless renewed
        while not done.wait(0.25):
            clock.advance(0.2)

    ticker = threading.Thread(target=tick, daemon=True)
    with httpx.Client(timeout=30) as client, client.stream("GET", url) as running:
        ticker.start()
        got, second = b"", None
        try:
            for chunk in running.iter_bytes():
                got += chunk
                if second is None and len(got) >= len(data) // 2:
                    second = httpx.get(url, timeout=30).status_code  # 2+ s in: lease held
        finally:
            done.set()
            ticker.join(5)
    assert got == data
    assert second == 503  # held by the running download's lease: try again, not gone (#19)
