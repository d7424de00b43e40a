"""Shared fixtures: a temp files dir, a config, an injectable clock, a real uvicorn server, logs."""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from loguru import logger

from bot.app import create_app
from bot.config import Settings, load_settings
from bot.web.edge import uvicorn_options
from bot.wechat import Simulator, build_message_xml

TOKEN = "testtoken123"
APP_ID = "wxb11529c136998cb6"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
SECRET = "test-secret-key-0123456789abcdef"
DEMO_NAME = "使用说明.txt"
BIG_NAME = "安装包 v1.bin"
# Fixtures shared from helpers: `browser` (Debian's headless Chromium, one per module) and
# `killable` (a `bot serve` a test may kill -9).
pytest_plugins = ["tests.helpers.browser", "tests.helpers.killable"]
WECHAT = Simulator(TOKEN, APP_ID, AES_KEY)  # WeChat's side of the account every test config uses


class Clock:
    """A settable clock injected into the app instead of time.time."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# Ports for servers a test starts by number (bot serve, nginx, redis-server): below the kernel's
# ephemeral range (32768-60999), so no bind(0) or outgoing connection anywhere takes one between
# the pick and the server's bind; and each one reserved by a file, so two test processes on one
# machine (make test-fast's four, a second make test beside this one) never pick the same.
PORTS = range(20000, 32768)
RESERVED = Path(tempfile.gettempdir()) / "wechat-link-bot-test-ports"
RESERVATION_LIFETIME = 6 * 3600.0  # a reservation older than this is from a run that crashed
_picked: list[Path] = []  # this process's reservations, given back when its session ends


def pytest_sessionfinish(session: pytest.Session) -> None:
    for mark in _picked:
        mark.unlink(missing_ok=True)


def free_port() -> int:
    """A port no other test process has picked and nothing listens on now."""
    RESERVED.mkdir(exist_ok=True)
    for _ in range(1000):
        port = random.choice(PORTS)
        mark = RESERVED / str(port)
        try:
            os.close(os.open(mark, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            with contextlib.suppress(OSError):
                if time.time() - mark.stat().st_mtime > RESERVATION_LIFETIME:
                    mark.unlink()
            continue
        _picked.append(mark)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use by something else: pick another
        return port
    raise RuntimeError(f"no free port in {PORTS} (reservations in {RESERVED})")


def write_config(
    tmp: Path, *, keywords: list[dict[str, Any]] | None = None, **sections: dict[str, Any]
) -> Path:
    """A config.toml in ``tmp`` with test values, sections (and the keywords) overridable."""
    base: dict[str, dict[str, Any]] = {
        "server": {"public_url": "http://127.0.0.1:8000"},
        "wechat": {"token": TOKEN, "app_id": APP_ID, "encoding_aes_key": AES_KEY},
        "links": {"secret_keys": [SECRET], "ttl_seconds": 600},
        "files": {"dir": "files"},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    lines: list[str] = []
    for name, values in base.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {_toml(v)}" for k, v in values.items()]
    if keywords is None:
        keywords = [
            {"match": "芝麻开门", "file": DEMO_NAME},
            {
                "match": "Big",
                "file": BIG_NAME,
                "reply": "大文件 {filename}: {url} ({minutes} 分钟)",
            },
        ]
    for keyword in keywords:
        lines.append("[[keywords]]")
        lines += [f"{k} = {_toml(v)}" for k, v in keyword.items()]
    path = tmp / "config.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def push(
    url: str,
    *,
    timestamp: float,
    msg_id: str | None,
    content: str = "",
    msg_type: str = "text",
    event: str = "",
    user: str = "o_follower_1",
    nonce: str | None = None,
    encrypt: bool = False,
    compatible: bool = False,
) -> httpx.Response:
    """A message POSTed to ``url``'s webhook exactly as WeChat's server would (signed, maybe AES)."""
    xml = build_message_xml(
        to_user="gh_account",
        from_user=user,
        create_time=int(timestamp),
        msg_type=msg_type,
        content=content,
        event=event,
        msg_id=msg_id,
    )
    nonce = nonce or secrets.token_hex(5)  # as WeChat: a fresh nonce per push (#10: replays)
    params, body = WECHAT.build_request(
        xml, timestamp=str(int(timestamp)), nonce=nonce, encrypt=encrypt, compatible=compatible
    )
    return httpx.post(url.rstrip("/") + "/wechat", params=params, content=body, timeout=10)


@pytest.fixture(autouse=True)
def _no_bot_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.upper().startswith("BOT_"):
            monkeypatch.delenv(key)


@pytest.fixture
def files_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / DEMO_NAME).write_text("使用说明：演示文件\n", encoding="utf-8")
    (folder / BIG_NAME).write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    return folder


@pytest.fixture
def config_file(tmp_path: Path, files_dir: Path) -> Path:
    return write_config(tmp_path)


@pytest.fixture
def settings(config_file: Path) -> Settings:
    return load_settings(config_file)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@dataclass
class LogCapture:
    """Every loguru message logged while the fixture is active."""

    records: list[dict[str, Any]] = field(default_factory=list)

    def messages(self, level: str | None = None) -> list[str]:
        return [r["message"] for r in self.records if level is None or r["level"].name == level]

    def find(self, needle: str, level: str | None = None) -> list[str]:
        return [m for m in self.messages(level) if needle in m]

    def wait_for(self, needle: str, level: str | None = None, count: int = 1) -> list[str]:
        """Lines logged after the response ended (a download's line) need a moment to land."""
        deadline = time.monotonic() + 5
        while len(found := self.find(needle, level)) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return found


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    capture = LogCapture()
    sink_id = logger.add(lambda m: capture.records.append(m.record), level="DEBUG")
    yield capture
    logger.remove(sink_id)


@dataclass
class RunningServer:
    url: str
    settings: Settings
    clock: Clock
    app: Any = None

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, **kwargs)


def start_server(app: Any, **options: Any) -> tuple[uvicorn.Server, threading.Thread, str]:
    # The socket is bound here and handed over: a port picked, freed and bound again later
    # could be taken in between by another test process (make test-fast runs four).
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # Like `bot serve`: client addresses come from [server] trusted_proxies, not from uvicorn.
    options = {"log_config": None, "proxy_headers": False, **options}
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    return server, thread, f"http://127.0.0.1:{port}"


REDIS_SERVER = Path("/usr/bin/redis-server")


@dataclass
class RedisServer:
    """A real redis-server on a free port, without persistence."""

    port: int
    process: subprocess.Popen[bytes]

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def start_redis() -> RedisServer:
    """Start redis-server (Debian's, installed by `make test`); fail, never skip, if missing."""
    if not REDIS_SERVER.is_file():
        pytest.fail(f"{REDIS_SERVER} is missing: run `make debs` (apt-get install redis-server)")
    for _ in range(5):  # a free port can be taken before redis binds it (another test process)
        port = free_port()
        args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        process = subprocess.Popen(
            [str(REDIS_SERVER), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        server = RedisServer(port, process)
        deadline = time.monotonic() + 10
        while process.poll() is None and time.monotonic() < deadline:
            # Ours, not another process's redis on a port it took first: INFO names the pid.
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"INFO server\r\n")
                    if f"process_id:{process.pid}\r\n".encode() in sock.recv(65536):
                        return server
            except OSError:
                pass
            time.sleep(0.02)
        server.stop()
    pytest.fail("redis-server did not start")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = start_redis()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's redis-server, emptied for this test."""
    with socket.create_connection(("127.0.0.1", redis_server.port), timeout=5) as sock:
        sock.sendall(b"FLUSHALL\r\n")
        assert sock.recv(16).startswith(b"+OK")
    return redis_server.url()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server this test may kill or pause."""
    server = start_redis()
    yield server
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGCONT)  # in case the test paused it
    server.stop()


@pytest.fixture
def serve_app() -> Iterator[Callable[..., str]]:
    """Real uvicorn servers for any ASGI app (uvicorn options given), stopped after the test."""
    running: list[tuple[uvicorn.Server, threading.Thread]] = []

    def _start(app: Any, **options: Any) -> str:
        server, thread, url = start_server(app, **options)
        running.append((server, thread))
        return url

    yield _start
    for server, thread in running:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def serve(clock: Clock, serve_app: Callable[..., str]) -> Callable[..., RunningServer]:
    """Real uvicorn servers for given settings (the injected clock); edge=True: `bot serve`'s."""
    # edge=True: bot.web.edge's uvicorn options (its protocol), not uvicorn's plain protocol.

    def _start(settings: Settings, *, edge: bool = False) -> RunningServer:
        app = create_app(settings, clock=clock)
        url = serve_app(app, **(uvicorn_options(settings) if edge else {}))
        return RunningServer(url, settings, clock, app)

    return _start


Start = Callable[..., RunningServer]


@pytest.fixture
def start(
    tmp_path: Path, files_dir: Path, state_url: str, serve: Callable[[Settings], RunningServer]
) -> Start:
    """A running bot on this test's store, with config sections (and keywords) overridable."""

    def _start(keywords: list[dict[str, Any]] | None = None, **sections: Any) -> RunningServer:
        sections["state"] = {"url": state_url, **sections.get("state", {})}
        return serve(load_settings(write_config(tmp_path, keywords=keywords, **sections)))

    return _start


@pytest.fixture
def server(serve: Callable[[Settings], RunningServer], settings: Settings) -> RunningServer:
    return serve(settings)


@pytest.fixture(params=["sqlite", "redis"])
def state_url(request: pytest.FixtureRequest) -> str:
    """Each store in turn: a SQLite file in the test's folder, then the session's redis-server."""
    if request.param == "sqlite":
        return "sqlite:///state/bot.db"
    url: str = request.getfixturevalue("redis_url")
    return url
