"""Issue #19 seen 2: a store fault in the middle of a one-use transfer never gives an extra copy.

The faults are real: SQLite on a small tmpfs that is filled mid-download, and the real
redis-server stopped with SIGSTOP. The transfer whose count cannot be written must end broken
(before its last bytes), resumable once the store is back, and the link still gives one copy.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from bot.config import load_settings
from tests.conftest import BIG_NAME, Clock, RedisServer, RunningServer, write_config
from tests.helpers.stores import LIMITED, link_id, with_store
from tests.helpers.webhook import link_of, post, text_of

SIZE = 16 * 1024 * 1024
FAULT_AT = 2 * 1024 * 1024
# uvicorn's plain protocol, and `bot serve`'s (bot.web.edge: counts what the client acknowledged)
EDGE = pytest.mark.parametrize("edge", [False, True], ids=["plain", "edge"])

pytestmark = pytest.mark.slow  # a tmpfs filled and a redis-server stopped mid-transfer


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs of its own (needs root), for a store that can run out of room."""
    where = tmp_path / "disk"
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode:
        pytest.fail(f"mount -t tmpfs failed (the fault test needs root): {mounted.stderr}")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


def fill(where: Path) -> Path:
    """Write to ``where`` until the disk is full; returns the filler (delete it to recover)."""
    filler = where / "filler"
    with filler.open("wb", buffering=0) as out:
        block = b"\0" * 65536
        while True:
            try:
                out.write(block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
        while True:  # the last partial block
            try:
                out.write(b"\0" * 512)
            except OSError:
                break
    return filler


def broken_then_resumed(
    server: RunningServer, clock: Clock, data: bytes, fault: Callable[[], Callable[[], None]]
) -> None:
    """GET a one-use link, fault the store after FAULT_AT bytes, recover, resume, try again."""
    url = server.url + link_of(
        text_of(post(server.url, msg_id="f1", timestamp=clock(), content="big"))
    )
    lid = link_id(url.split(server.url, 1)[1], clock)
    got = b""
    recover: Callable[[], None] | None = None
    try:
        with httpx.Client(timeout=30) as client, client.stream("GET", url) as first:
            assert first.status_code == 200
            # Never a clean end: cut short (uvicorn's close) or reset (`bot serve`'s protocol).
            with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
                for chunk in first.iter_bytes():
                    got += chunk
                    if recover is None and len(got) >= FAULT_AT:
                        recover = fault()
    finally:
        if recover is not None:
            recover()
    assert FAULT_AT <= len(got) < len(data) and got == data[: len(got)]
    deadline = time.monotonic() + 30  # the lost release is retried once the store is back
    while with_store(server.settings, lambda s: s.usage(lid), clock).active:
        assert time.monotonic() < deadline, "the cut-off transfer's lease was never ended"
        time.sleep(0.05)
    with httpx.Client(timeout=30) as client:
        rest = client.get(url, headers={"Range": f"bytes={len(got)}-"})
        again = client.get(url)
    assert rest.status_code == 206 and got + rest.content == data  # resumed: one whole copy
    assert again.status_code == 410  # and no second one


@pytest.fixture
def big(files_dir: Path) -> bytes:
    data = os.urandom(SIZE)
    (files_dir / BIG_NAME).write_bytes(data)
    return data


@EDGE
def test_full_disk_mid_transfer_never_gives_a_second_copy(
    tmp_path: Path,
    small_disk: Path,
    big: bytes,
    serve: Callable[..., RunningServer],
    clock: Clock,
    edge: bool,
) -> None:
    """Issue #19 seen 2 (SQLite): the tmpfs fills after 2 MiB; the transfer ends broken."""
    state = {"url": f"sqlite:///{small_disk / 'bot.db'}"}
    settings = load_settings(
        write_config(tmp_path, keywords=LIMITED, state=state, links={"max_downloads": 1})
    )
    server = serve(settings, edge=edge)

    def fault() -> Callable[[], None]:
        filler = fill(small_disk)
        return filler.unlink

    broken_then_resumed(server, clock, big, fault)


@EDGE
def test_redis_stopped_mid_transfer_never_gives_a_second_copy(
    tmp_path: Path,
    files_dir: Path,
    big: bytes,
    own_redis: RedisServer,
    serve: Callable[..., RunningServer],
    clock: Clock,
    edge: bool,
) -> None:
    """Issue #19 seen 2 (Redis): SIGSTOP after 2 MiB, until the transfer has ended."""
    settings = load_settings(
        write_config(
            tmp_path, keywords=LIMITED, state={"url": own_redis.url()}, links={"max_downloads": 1}
        )
    )
    server = serve(settings, edge=edge)

    def fault() -> Callable[[], None]:
        own_redis.process.send_signal(signal.SIGSTOP)
        return lambda: own_redis.process.send_signal(signal.SIGCONT)

    broken_then_resumed(server, clock, big, fault)
