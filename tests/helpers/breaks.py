"""A download broken on purpose: a raw client that reads part of a file and goes away."""

from __future__ import annotations

import fcntl
import socket
import struct
import termios
import time

import httpx
import pytest

from tests.conftest import Clock, RunningServer
from tests.helpers.stores import link_id, with_store

MiB = 1024 * 1024
EIGHT = 8 * MiB  # issue #19's file
SMALL_WINDOW = 64 * 1024  # a client that shrinks its receive window (SO_RCVBUF)
THEN = [pytest.param("restart", id="restart"), pytest.param("resume", id="resume")]


def broken_get(url: str, read: int, rcvbuf: int = 0) -> tuple[bytes, int, socket.socket]:
    """GET on a raw socket, ``read`` bytes of the body read: (them, SO_RCVBUF, the open socket)."""
    # rcvbuf: a receive window of that size; 0: the kernel's default, autotuned.
    where, path = url.removeprefix("http://").split("/", 1)
    host, port = where.split(":")
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect((host, int(port)))
    sock.sendall(f"GET /{path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    got = b""
    while b"\r\n\r\n" not in got or len(got.split(b"\r\n\r\n", 1)[1]) < read:
        chunk = sock.recv(256 * 1024)
        assert chunk, got[:200]
        got += chunk
    head, body = got.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 "), head
    settle(sock)
    return body, sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF), sock


def unread(sock: socket.socket) -> int:
    """Bytes the client's kernel holds that its app has not read (all acknowledged)."""
    waiting: int = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]
    return waiting


def settle(sock: socket.socket) -> None:
    """Wait until the bytes unread at the client stop growing: both kernels' buffers are full."""
    # A client that stopped reading a moment before it left.
    waiting, still, deadline = -1, 0, time.monotonic() + 10
    while still < 5 and time.monotonic() < deadline:
        now = unread(sock)
        still = still + 1 if now == waiting else 0
        waiting = now
        time.sleep(0.02)


def sent_once_ended(server: RunningServer, clock: Clock, path: str) -> int:
    """The bytes the link counts once its download has ended (a hang-up seen, or a cut-off)."""
    lid = link_id(path, clock)
    deadline = time.monotonic() + 15
    while (usage := with_store(server.settings, lambda s: s.usage(lid), clock)).active:
        assert time.monotonic() < deadline, usage
        time.sleep(0.05)
    return usage.sent


def then_the_rest(url: str, kept: bytes, data: bytes, then: str) -> None:
    """A browser restarting from byte 0, or a resume with Range; then the link is spent."""
    with httpx.Client(timeout=30) as client:
        if then == "resume":
            rest = client.get(url, headers={"Range": f"bytes={len(kept)}-"})
            assert rest.status_code == 206 and kept + rest.content == data
        else:
            again = client.get(url)
            assert again.status_code == 200 and again.content == data
        assert client.get(url).status_code == 410  # one whole copy counted: one use
