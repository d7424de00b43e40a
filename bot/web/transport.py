"""A connection under `bot serve`'s protocol: a lingering close, what the peer acknowledged, and
file bytes written straight from the page cache (sendfile)."""

from __future__ import annotations

import asyncio
import fcntl
import os
import socket
import struct
import termios
from collections.abc import Callable
from typing import Any

# A lingering close (after an answer sent while the request body was still arriving) reads on
# and discards for at most this long and this much, then closes for good.
LINGER_SECONDS = 5.0
LINGER_BYTES = 16 * 1024 * 1024
# Offsets in Linux's struct tcp_info: tcpi_bytes_acked (u64, 4.1+), tcpi_notsent_bytes (u32, 4.6+)
BYTES_ACKED, NOTSENT_BYTES = 120, 144
RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() resets, dropping the send queue


class WrittenAside:
    """A body the connection wrote itself (a zero-copy send), handed to uvicorn's ``send`` so it
    counts its length against the Content-Length: the transport writes nothing for it."""

    __slots__ = ("length",)

    def __init__(self, length: int) -> None:
        self.length = length

    def __len__(self) -> int:
        return self.length


def send_file(sock: int, file: int, offset: int, count: int) -> int | None:
    """One non-blocking sendfile: bytes sent (0: the file ended), None if the socket is full.
    It reads the disk where the span is not in the page cache (``in_page_cache``)."""
    try:
        return os.sendfile(sock, file, offset, count)
    except BlockingIOError:
        return None


def tcp_info(sock: socket.socket) -> tuple[int, int] | None:
    """(bytes the peer acknowledged, bytes not sent yet) of a Linux TCP socket; None elsewhere."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    except (OSError, AttributeError):  # not TCP (a Unix socket), or not Linux
        return None
    if len(info) < NOTSENT_BYTES + 4:
        return None
    acked: int = struct.unpack_from("Q", info, BYTES_ACKED)[0]
    notsent: int = struct.unpack_from("I", info, NOTSENT_BYTES)[0]
    return acked, notsent


def send_queue(sock: socket.socket) -> int:
    """Bytes in a Linux TCP socket's send queue, sent or not, not yet acknowledged (SIOCOUTQ)."""
    raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")  # SIOCOUTQ is TIOCOUTQ
    queued: int = struct.unpack("i", raw)[0]
    return queued


def in_page_cache(file: int, offset: int) -> bool:
    """The byte at ``offset`` is in the page cache: reading it would not wait on the disk.
    False where the kernel cannot tell (RWF_NOWAIT: Linux 4.14+, most filesystems)."""
    try:
        return os.preadv(file, [bytearray(1)], offset, os.RWF_NOWAIT) == 1
    except (OSError, AttributeError):
        return False


class LingeringTransport(asyncio.Transport):
    """A connection's transport whose close() lingers while ``reading()``: a body still arrives."""

    # Closing with unread bytes resets the connection, often before the client (still sending)
    # reads its answer. So: the answer, a half-close, then what the client still sends is
    # dropped (``discard``) for up to LINGER_SECONDS or LINGER_BYTES before the real close.

    def __init__(
        self, inner: asyncio.Transport, reading: Callable[[], bool], loop: asyncio.AbstractEventLoop
    ) -> None:
        super().__init__()
        self.inner, self._reading, self._loop = inner, reading, loop
        self.closing = self.lingering = False
        self.discarded = 0

    def close(self) -> None:
        self.closing = True
        if self.lingering or self.inner.is_closing() or not self._reading():
            self.inner.close()
            return
        self.lingering = True
        if self.inner.can_write_eof():
            self.inner.write_eof()  # sent after the answer: the client reads it, then the end
        self.inner.resume_reading()
        self._loop.call_later(LINGER_SECONDS, self.inner.close)

    def discard(self, data: bytes) -> None:
        """Drop bytes received while lingering; past ``LINGER_BYTES``, close."""
        self.discarded += len(data)
        if self.discarded > LINGER_BYTES:
            self.inner.close()

    def is_closing(self) -> bool:
        return self.closing or self.inner.is_closing()

    def abort(self) -> None:
        self.inner.abort()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if isinstance(data, WrittenAside):
            return  # already on the socket
        self.inner.write(data)

    def writelines(self, list_of_data: Any) -> None:
        self.inner.writelines(list_of_data)

    def write_eof(self) -> None:
        self.inner.write_eof()

    def can_write_eof(self) -> bool:
        return self.inner.can_write_eof()

    def get_write_buffer_size(self) -> int:
        return self.inner.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self.inner.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.inner.set_write_buffer_limits(high, low)

    def is_reading(self) -> bool:
        return self.inner.is_reading()

    def pause_reading(self) -> None:
        self.inner.pause_reading()

    def resume_reading(self) -> None:
        self.inner.resume_reading()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.inner.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.inner.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.inner.get_protocol()
