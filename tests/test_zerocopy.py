"""Issue #20 deliver 4, "sendfile where the server allows it; fewer copies": under `bot serve`'s
protocol a direct download's bytes go from the page cache to the socket, never through Python.

The protocol offers ASGI's zero-copy send extension (``http.response.zerocopysend``) on a GET;
the disk delivery uses it for spans over 64 KiB, reading ahead only the span's last byte, which
goes out once the file is found unchanged. Bytes not in the page cache are sent from a worker
thread (the disk's wait is not the loop's). Real uvicorn servers, real sockets.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

import bot.delivery.disk
import bot.web.edge
import bot.web.zerocopy
from bot.config import Settings, load_settings
from bot.delivery.reading import ZEROCOPY, Reader
from bot.web.transport import in_page_cache
from tests.conftest import BIG_NAME, RunningServer, write_config
from tests.helpers.webhook import link_path, reply_text, send

Serve = Callable[..., RunningServer]


@dataclass
class Sendfiles:
    """Every zero-copy write the server made: bytes, and whether it ran on the event loop."""

    calls: list[tuple[int, bool]] = field(default_factory=list)
    after_first: Callable[[], None] | None = None

    @property
    def sent(self) -> int:
        return sum(n for n, _ in self.calls)

    def on_loop(self) -> list[bool]:
        return [loop for _, loop in self.calls]


def _on_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@pytest.fixture
def sendfiles(monkeypatch: pytest.MonkeyPatch) -> Sendfiles:
    seen = Sendfiles()
    real = bot.web.zerocopy.send_file

    def spy(sock: int, file: int, offset: int, count: int) -> int | None:
        sent = real(sock, file, offset, count)
        seen.calls.append((sent or 0, _on_loop()))
        if seen.after_first is not None and len(seen.calls) == 1:
            seen.after_first()
        return sent

    monkeypatch.setattr(bot.web.zerocopy, "send_file", spy)
    return seen


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sizes of the reads that brought file bytes into Python."""
    sizes: list[int] = []
    real = Reader.read

    def spy(self: Reader, size: int) -> bytes:
        data = real(self, size)
        sizes.append(len(data))
        return data

    monkeypatch.setattr(Reader, "read", spy)
    return sizes


@pytest.fixture
def edge_server(tmp_path: Path, files_dir: Path, serve: Serve) -> RunningServer:
    return serve(load_settings(write_config(tmp_path)), edge=True)


def big_path(server: RunningServer) -> str:
    return link_path(reply_text(send(server, content="big")))


@pytest.mark.parametrize(
    ("headers", "status", "span"),
    [
        pytest.param({}, 200, slice(None), id="whole"),
        pytest.param({"Range": "bytes=100-2000099"}, 206, slice(100, 2000100), id="range"),
    ],
)
def test_a_big_download_goes_from_the_page_cache_to_the_socket(
    edge_server: RunningServer,
    files_dir: Path,
    sendfiles: Sendfiles,
    reads: list[int],
    headers: dict[str, str],
    status: int,
    span: slice,
) -> None:
    original = (files_dir / BIG_NAME).read_bytes()
    with edge_server.client() as client:
        got = client.get(big_path(edge_server), headers=headers)
    assert got.status_code == status
    assert got.content == original[span]
    assert sendfiles.sent == len(got.content) - 1  # all but the last byte, read ahead
    assert reads == []  # nothing read into Python on the way
    assert all(sendfiles.on_loop())  # in the page cache: no worker thread needed


def test_a_cold_file_is_sent_from_a_worker_thread(
    edge_server: RunningServer, files_dir: Path, sendfiles: Sendfiles
) -> None:
    big = files_dir / BIG_NAME
    original = big.read_bytes()
    path = big_path(edge_server)
    with big.open("rb") as cold:  # out of the page cache (its pages are clean: written, synced)
        os.fsync(cold.fileno())
        os.posix_fadvise(cold.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        assert not in_page_cache(cold.fileno(), 0)  # the filesystem let them go
    with edge_server.client() as client:
        got = client.get(path)
    assert got.status_code == 200 and got.content == original
    assert sendfiles.on_loop()[0] is False  # the disk's wait was a worker thread's


def test_a_file_changed_during_a_zero_copy_send_never_goes_out_whole(
    edge_server: RunningServer, files_dir: Path, sendfiles: Sendfiles
) -> None:
    big = files_dir / BIG_NAME
    size = big.stat().st_size

    def change_in_place() -> None:  # as `cp new files/x` would, between two sends
        with big.open("r+b") as file:
            file.write(b"new!")
        stat = big.stat()
        os.utime(big, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))

    sendfiles.after_first = change_in_place
    got, span = b"", {"Range": "bytes=0-999999"}  # one piece: only the last byte is held back
    with (
        edge_server.client() as client,
        client.stream("GET", big_path(edge_server), headers=span) as answer,
    ):
        assert answer.status_code == 206
        with pytest.raises(httpx.RemoteProtocolError):
            for chunk in answer.iter_bytes():
                got += chunk
    assert len(got) < 1_000_000 < size  # the last byte was withheld


def test_the_protocol_offers_zero_copy_send_on_a_get(
    serve_app: Callable[..., str], settings: Settings, tmp_path: Path
) -> None:
    data = os.urandom(300_000)
    (tmp_path / "blob").write_bytes(data)
    offered: list[tuple[str, bool]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        has = ZEROCOPY in scope.get("extensions", {})
        offered.append((scope["method"], has))
        if not has:
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        start, count = (1000, 200_000) if scope["path"] == "/part" else (None, None)
        length = count if count is not None else len(data)
        headers = [(b"content-length", str(length).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        with (tmp_path / "blob").open("rb") as file:
            message = {"type": ZEROCOPY, "file": file, "more_body": False}
            if start is not None:
                message |= {"offset": start, "count": count}
            await send(message)

    url = serve_app(app, **bot.web.edge.uvicorn_options(settings))  # `bot serve`'s protocol
    with httpx.Client(base_url=url, timeout=10) as client:  # one connection, kept alive
        part, whole = client.get("/part"), client.get("/whole")
        posted = client.post("/part", content=b"x")
    assert part.status_code == 200 and part.content == data[1000:201_000]
    assert whole.status_code == 200 and whole.content == data
    assert posted.status_code == 204
    assert offered == [("GET", True), ("GET", True), ("POST", False)]


def test_a_kept_alive_clients_next_request_ends_the_wait_for_its_acknowledgements(
    edge_server: RunningServer, files_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A response ends once the client's kernel acknowledged its last byte, looked at in
    growing pauses; the client's next request on the connection says it read the answer, so
    the look comes then, not at the end of the pause (#20: a pause cost every request)."""
    monkeypatch.setattr(bot.delivery.disk, "ACK_POLL", (60.0, 60.0))  # a look a minute
    original = (files_dir / BIG_NAME).read_bytes()
    path = big_path(edge_server)
    with edge_server.client() as client:  # one connection, kept alive; 10 s at most a request
        first, second = client.get(path), client.get(path)
    assert first.content == original and second.content == original  # well within a minute


def test_a_zero_copy_send_outside_its_content_length_writes_nothing(
    serve_app: Callable[..., str], settings: Settings, tmp_path: Path
) -> None:
    """File bytes never go out unframed (before the status line) nor past the Content-Length,
    where a kept-alive client would read them as the next response."""
    (tmp_path / "blob").write_bytes(b"SECRET-FILE-BYTES" * 100)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        with (tmp_path / "blob").open("rb") as file:
            piece = {"type": ZEROCOPY, "file": file, "offset": 0, "count": 1700}
            if scope["path"] == "/over":
                headers = [(b"content-length", b"10")]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send(piece)

    url = serve_app(app, **bot.web.edge.uvicorn_options(settings))
    with httpx.Client(base_url=url, timeout=10) as client:
        early = client.get("/early")
        with client.stream("GET", "/over") as over:
            got = b""
            with pytest.raises(httpx.RemoteProtocolError):
                for chunk in over.iter_bytes():
                    got += chunk
    assert early.status_code == 500 and b"SECRET" not in early.content
    assert over.status_code == 200 and got == b""
