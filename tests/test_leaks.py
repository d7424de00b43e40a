"""Issue #19 item 9: smaller leaks and lies (spellings of a link, presigned lifetimes, a dead
worker's lease), against the real server, nginx, moto's S3 and both stores."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from bot.app import create_app
from bot.config import Settings, load_settings
from tests.conftest import (
    BIG_NAME,
    DEMO_NAME,
    Clock,
    RunningServer,
    free_port,
    start_server,
    write_config,
)
from tests.helpers.nginx import Nginx, local_conf
from tests.helpers.pickup import issue
from tests.helpers.s3 import (
    Bucket,
    bucket_fixture,  # noqa: F401 - the `bucket` fixture
    s3_config,
    s3_server_fixture,  # noqa: F401 - the `s3_server` fixture
)
from tests.helpers.webhook import link_of, link_path, post, reply_text, send, text_of

pytestmark = pytest.mark.slow  # nginx, a kill -9 and the s3 fake


def raw_get(url: str, target: str) -> tuple[int, bytes]:
    """``GET target`` exactly as written (no client normalizes it): status and body."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def spellings(token: str, code: str) -> dict[str, str]:
    """Other ways to write ``/d/<token>`` and ``/k/<code>`` that a server may decode to them."""
    escaped = f"%{ord(token[0]):02X}{token[1:]}"
    return {
        f"/%64/{token}": "/d/",
        f"/%64/{escaped}": "/d/",
        f"/d/{escaped}": "/d/",
        f"//d/{token}": "/d/",
        f"/./d/{token}": "/d/",
        f"/x/../d/{token}": "/d/",
        f"/%6B/{code}": "/k/",
        f"/%6b/{code}": "/k/",
        f"//k/{code}": "/k/",
    }


def test_seen_9_only_canonical_paths_reach_d_and_k(server: RunningServer, files_dir: Path) -> None:
    """Issue #19 seen 9: `GET /%64/<token>`, `//d/…` and `/./d/…` were served; `/%6B/<code>`
    likewise."""
    path, code = issue(server)
    token = path.removeprefix("/d/")
    assert raw_get(server.url, path) == (200, (files_dir / DEMO_NAME).read_bytes())
    assert raw_get(server.url, f"/k/{code}")[0] == 302
    for target in spellings(token, code):
        status, body = raw_get(server.url, target)
        assert status in (403, 404), (target, status)
        assert body != (files_dir / DEMO_NAME).read_bytes()
    assert raw_get(server.url, "/%6B")[0] == 404 and raw_get(server.url, "/k")[0] == 200


@pytest.mark.parametrize("mode", ["direct", "x-accel"])
def test_seen_9_the_shipped_nginx_logs_every_spelling_masked(
    tmp_path: Path, files_dir: Path, clock: Clock, mode: str
) -> None:
    """Issue #19 seen 9: the shipped nginx logged those spellings with the whole token."""
    config = write_config(
        tmp_path, files={"delivery": mode}, server={"trusted_proxies": ["127.0.0.1/32"]}
    )
    app = create_app(load_settings(config), clock=clock)
    bot, thread, upstream = start_server(app)
    port = free_port()
    conf = local_conf(
        prefix=tmp_path / "nginx",
        port=port,
        upstream=upstream.removeprefix("http://"),
        files_dir=files_dir,
    )
    nginx = Nginx(tmp_path / "nginx", conf, [port]).start()
    try:
        front = f"http://127.0.0.1:{port}"
        path, code = issue(RunningServer(upstream, app.state.services.settings, clock, app))
        token = path.removeprefix("/d/")
        assert raw_get(front, path)[0] == 200
        for target in spellings(token, code):
            assert raw_get(front, target)[0] in (403, 404), target
        assert raw_get(front, f"/k/{code}?via=box")[0] == 302
        log = tmp_path / "nginx" / "access.log"
        deadline = time.monotonic() + 10  # nginx writes each line as the request ends
        while (text := log.read_text(encoding="utf-8")).count("\n") < 11:
            assert time.monotonic() < deadline, text
            time.sleep(0.05)
    finally:
        nginx.stop()
        bot.should_exit = True
        thread.join(10)
    assert token not in text and token[:20] not in text and code not in text, text
    assert text.count('"GET /d/<token>"') == 7 and text.count('"GET /k/<code>') == 4, text
    assert '"GET /k/<code>?<query>" 302' in text


@pytest.fixture
def s3_bot(
    tmp_path: Path, bucket: Bucket, serve: Callable[[Settings], RunningServer]
) -> Callable[..., RunningServer]:
    def _start(**sections: object) -> RunningServer:
        return serve(load_settings(s3_config(tmp_path, bucket, **sections)))

    return _start


def test_seen_9_a_presigned_url_never_outlives_its_link(
    s3_bot: Callable[..., RunningServer], bucket: Bucket, clock: Clock
) -> None:
    """Issue #19 seen 9: a presigned URL lived `presign_seconds` (3,600) from the redirect even
    at second 599 of a 600 s link."""
    server = s3_bot(s3={"presign_seconds": 3600})
    path = link_path(reply_text(send(server, content="芝麻开门")))

    def lifetime() -> str:
        with server.client() as client:
            answer = client.get(path)
        assert answer.status_code == 302, answer.text
        (expires,) = parse_qs(urlsplit(answer.headers["location"]).query)["X-Amz-Expires"]
        return expires

    assert lifetime() == "600"
    clock.advance(599)
    assert lifetime() == "1"


def test_seen_9_a_link_inside_a_dead_workers_lease_is_503_not_410(
    killable: Callable[[str], tuple[subprocess.Popen[bytes], str]],
    tmp_path: Path,
    big_file_path: Path,
    state_url: str,
) -> None:
    """Issue #19 seen 9: during the lease after a worker was killed, the link answered 410
    "used up" (a permanent status) for a temporary condition."""
    if state_url.startswith("sqlite"):
        state_url = f"sqlite:///{tmp_path / 'killed' / 'state' / 'bot.db'}"
    proc, url = killable(state_url)
    path = link_of(text_of(post(url, msg_id="k9", timestamp=time.time(), content="big")))
    with httpx.Client(timeout=30) as client, client.stream("GET", url + path) as running:
        assert running.status_code == 200
        next(running.iter_bytes())
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    settings = load_settings(tmp_path / "killed" / "config.toml")
    clock = Clock(time.time())  # another instance on the same store, inside the 30 s lease
    app = create_app(settings, clock=clock)
    server, thread, other = start_server(app)
    try:
        held = httpx.get(other + path, timeout=30)
        page = httpx.get(other + path, headers={"Accept": "text/html"}, timeout=30)
        clock.advance(31)  # the dead worker's lease lapses
        later = httpx.get(other + path, timeout=30)
    finally:
        server.should_exit = True
        thread.join(10)
    assert held.status_code == 503 and held.headers["retry-after"] == "30"
    assert "链接正在下载中" in page.text
    assert later.status_code == 200 and later.content == big_file_path.read_bytes()


@pytest.fixture
def big_file_path(files_dir: Path) -> Path:
    """The big file, 6 MB: the rate cap (500 kB/s) keeps a download running for seconds."""
    path = files_dir / BIG_NAME
    path.write_bytes(bytes(range(256)) * (6 * 1024 * 1024 // 256))
    return path
