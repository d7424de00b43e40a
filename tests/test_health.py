"""Issue #9 seen 15: ``/healthz`` is 503 while the store cannot write and read back, and turns
green by itself once the fault is fixed. Real uvicorn, a real SQLite file on a small tmpfs
(mounted here: the tests run as root), a real redis-server."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.config import Settings, load_settings
from bot.state import Attempt
from bot.state.sqlite import SqliteStore
from bot.state.sqlite_schema import SCHEMA
from tests.conftest import REDIS_SERVER, RedisServer, RunningServer, free_port, write_config

WAIT = 15.0  # seconds for the store to notice a fixed fault (a probe or two)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted for this test (unmounted lazily: the server may still hold files)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def health(server: RunningServer) -> int:
    with server.client() as client:
        return client.get("/healthz").status_code


def wait_health(server: RunningServer, status: int) -> int:
    """Poll /healthz until it answers ``status`` (or WAIT passes); the last status seen."""
    deadline = time.monotonic() + WAIT
    while (seen := health(server)) != status and time.monotonic() < deadline:
        time.sleep(0.2)
    return seen


def sqlite_server(
    serve: Callable[[Settings], RunningServer], tmp_path: Path, state: Path
) -> RunningServer:
    url = f"sqlite:///{state / 'bot.db'}"
    return serve(load_settings(write_config(tmp_path, state={"url": url})))


def backup(db: Path, to: Path) -> None:
    """A consistent copy of the live database (SQLite's backup API)."""
    with sqlite3.connect(db) as source, sqlite3.connect(to) as target:
        source.backup(target)
    target.close()
    source.close()


def checkpoint(db: Path) -> None:
    """Move every page from the -wal into the database file."""
    other = sqlite3.connect(db, isolation_level=None)
    assert other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
    other.close()


def fill(disk: Path) -> None:
    """Write zeros until the disk is full."""
    with (disk / "filler").open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass


def test_seen_15_full_disk(
    serve: Callable[[Settings], RunningServer], tmp_path: Path, files_dir: Path, tmpfs: Path
) -> None:
    """Issue #9 seen 15: a full disk (2 MiB tmpfs) is 503; freeing space turns it green."""
    server = sqlite_server(serve, tmp_path, tmpfs)
    assert health(server) == 200
    fill(tmpfs)
    assert health(server) == 503
    (tmpfs / "filler").unlink()
    assert wait_health(server, 200) == 200


def test_seen_15_state_directory_deleted(
    serve: Callable[[Settings], RunningServer], tmp_path: Path, files_dir: Path, tmpfs: Path
) -> None:
    """Issue #9 seen 15: the state directory deleted is 503 (never silently recreated empty,
    which would forget every count); putting the database back turns it green."""
    state = tmpfs / "state"
    server = sqlite_server(serve, tmp_path, state)
    assert health(server) == 200
    backup(state / "bot.db", tmp_path / "backup.db")
    shutil.rmtree(state)
    assert health(server) == 503
    assert health(server) == 503 and not state.exists()
    state.mkdir()
    shutil.copy(tmp_path / "backup.db", state / "bot.db")
    assert wait_health(server, 200) == 200


def test_seen_15_database_replaced(
    serve: Callable[[Settings], RunningServer], tmp_path: Path, files_dir: Path, tmpfs: Path
) -> None:
    """Issue #9 seen 15: a database file replaced by garbage is 503; a good copy reopens green."""
    server = sqlite_server(serve, tmp_path, tmpfs)
    assert health(server) == 200
    db = tmpfs / "bot.db"
    backup(db, tmp_path / "backup.db")
    checkpoint(db)  # else the -wal still holds every page of this small database
    (tmpfs / "garbage").write_bytes(b"not a database " * 512)
    os.replace(tmpfs / "garbage", db)
    assert health(server) == 503
    shutil.copy(tmp_path / "backup.db", tmpfs / "good")
    os.replace(tmpfs / "good", db)
    assert wait_health(server, 200) == 200


def test_seen_15_corrupt_audit_table(
    serve: Callable[[Settings], RunningServer], tmp_path: Path, files_dir: Path, tmpfs: Path
) -> None:
    """Issue #9 seen 15: an audit table of the wrong shape is 503; restoring it turns it green."""
    server = sqlite_server(serve, tmp_path, tmpfs)
    assert health(server) == 200
    other = sqlite3.connect(tmpfs / "bot.db", isolation_level=None)
    other.execute("DROP TABLE attempts")
    other.execute("CREATE TABLE attempts (junk TEXT)")
    assert health(server) == 503
    other.execute("DROP TABLE attempts")
    other.executescript(SCHEMA)
    other.close()
    assert wait_health(server, 200) == 200


def test_seen_15_corrupt_pages(
    serve: Callable[[Settings], RunningServer], tmp_path: Path, files_dir: Path, tmpfs: Path
) -> None:
    """Issue #9 seen 15: garbage over the audit table's pages on disk is 503."""
    server = sqlite_server(serve, tmp_path, tmpfs)
    assert health(server) == 200
    db = tmpfs / "bot.db"
    checkpoint(db)
    other = sqlite3.connect(db, isolation_level=None)
    (root,) = other.execute("SELECT rootpage FROM sqlite_master WHERE name = 'attempts'").fetchone()
    (page_size,) = other.execute("PRAGMA page_size").fetchone()
    other.close()
    with db.open("r+b") as raw:
        raw.seek((root - 1) * page_size)
        raw.write(os.urandom(page_size))
    assert health(server) == 503


LEFT_OPEN = """
import os, signal, sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA journal_mode = WAL")
db.executescript(sys.argv[2])
db.execute("INSERT INTO revoked VALUES ('x', 0)")
os.kill(os.getpid(), signal.SIGKILL)  # a worker killed: -wal and -shm stay behind
"""


def test_seen_15_store_opened_read_only_recovers(
    serve: Callable[[Settings], RunningServer], tmp_path: Path, files_dir: Path, tmpfs: Path
) -> None:
    """Issue #9 seen 15: a store opened on a read-only disk is 503, and turns green by itself
    when the disk is writable again (no restart)."""
    db = tmpfs / "bot.db"
    subprocess.run([sys.executable, "-c", LEFT_OPEN, str(db), SCHEMA], check=False)
    assert (tmpfs / "bot.db-wal").exists()
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    server = sqlite_server(serve, tmp_path, tmpfs)
    assert health(server) == 503
    assert health(server) == 503
    subprocess.run(["mount", "-o", "remount,rw", str(tmpfs)], check=True)
    assert wait_health(server, 200) == 200


# --- Redis ----------------------------------------------------------------------------------------


def redis_command(port: int, *args: str) -> bytes:
    """One command over a raw socket (RESP), the reply's first line."""
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"".join(parts))
        return sock.recv(4096).split(b"\r\n")[0]


def redis_on(port: int, *extra: str) -> subprocess.Popen[bytes]:
    """A redis-server on ``port`` (a restart after a kill), without persistence unless asked."""
    args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *extra]
    process = subprocess.Popen(
        [str(REDIS_SERVER), *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if redis_command(port, "PING") == b"+PONG":
                return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    pytest.fail("redis-server did not restart")


@pytest.mark.parametrize(
    ("fault", "fix"),
    [
        pytest.param(
            ("REPLICAOF", "127.0.0.1", "1"), ("REPLICAOF", "NO", "ONE"), id="read-only-replica"
        ),
        pytest.param(("SET", "bot:attempts", "junk"), ("DEL", "bot:attempts"), id="corrupt-audit"),
    ],
)
def test_seen_15_redis_cannot_write_or_is_corrupt(
    serve: Callable[[Settings], RunningServer],
    tmp_path: Path,
    files_dir: Path,
    own_redis: RedisServer,
    fault: tuple[str, ...],
    fix: tuple[str, ...],
) -> None:
    """Issue #9 seen 15 (Redis): a read-only replica or an audit key of the wrong type is 503."""
    server = serve(load_settings(write_config(tmp_path, state={"url": own_redis.url()})))
    assert health(server) == 200
    assert redis_command(own_redis.port, *fault).startswith(b"+")
    assert health(server) == 503
    assert redis_command(own_redis.port, *fix).startswith((b"+", b":"))
    assert wait_health(server, 200) == 200


def test_seen_15_redis_restarted_reconnects(
    serve: Callable[[Settings], RunningServer],
    tmp_path: Path,
    files_dir: Path,
    own_redis: RedisServer,
) -> None:
    """Issue #9 seen 15 (Redis): killed is 503; restarted, the store reconnects by itself."""
    server = serve(load_settings(write_config(tmp_path, state={"url": own_redis.url()})))
    assert health(server) == 200
    own_redis.stop()
    assert health(server) == 503
    own_redis.process = redis_on(own_redis.port)
    try:
        assert wait_health(server, 200) == 200
    finally:
        own_redis.process.send_signal(signal.SIGTERM)


def test_probe_among_queued_writes_is_never_a_false_alarm(tmp_path: Path) -> None:
    """A health probe queued with other calls runs in its own transaction, so it reads back."""

    async def run() -> list[object]:
        store = SqliteStore(tmp_path / "bot.db")
        await store.open()
        try:
            writes = [store.record_attempt(Attempt(float(i), "served")) for i in range(30)]
            return await asyncio.gather(*writes[:15], store.ping(), *writes[15:], store.ping())
        finally:
            await store.close()

    for _ in range(5):
        results = asyncio.run(run())
        assert results.count(True) == 2 and results.count(None) == 30


def redis_info(port: int, section: str) -> dict[str, str]:
    parts = b"*2\r\n$4\r\nINFO\r\n$%d\r\n%s\r\n" % (len(section), section.encode())
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(parts)
        data = b""
        while not data.endswith(b"\r\n\r\n") and len(data) < 65536:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    lines = data.decode().split("\r\n")[1:]
    return dict(line.split(":", 1) for line in lines if ":" in line)


def bgsave(port: int) -> str:
    """Start a background save and wait for it; its status (ok or err)."""
    assert redis_command(port, "BGSAVE").startswith(b"+")
    deadline = time.monotonic() + 20
    while (info := redis_info(port, "persistence"))["rdb_bgsave_in_progress"] != "0":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return info["rdb_last_bgsave_status"]


def test_seen_15_redis_full_disk(
    serve: Callable[[Settings], RunningServer], tmp_path: Path, files_dir: Path, tmpfs: Path
) -> None:
    """Issue #9 seen 15 (Redis): saving to a full disk fails, Redis refuses writes (MISCONF): 503;
    a save that succeeds once there is room again turns it green."""
    port = free_port()
    redis = RedisServer(port, redis_on(port, "--dir", str(tmpfs), "--save", "3600 1"))
    try:
        server = serve(load_settings(write_config(tmp_path, state={"url": redis.url()})))
        assert health(server) == 200
        fill(tmpfs)
        assert bgsave(port) == "err"
        assert health(server) == 503
        (tmpfs / "filler").unlink()
        assert bgsave(port) == "ok"
        assert wait_health(server, 200) == 200
    finally:
        redis.stop()
