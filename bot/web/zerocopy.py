"""ASGI's zero-copy send (``http.response.zerocopysend``) over `bot serve`'s connections.

uvicorn implements neither of ASGI's file extensions; `bot serve`'s protocol (``bot.web.edge``)
offers this one on a GET over plain TCP. The bytes go from the page cache to the socket
(``sendfile``) from a duplicate of the socket's descriptor, then uvicorn is handed a
``WrittenAside`` of their length: its Content-Length check, keep-alive and pipelining stay its
own, and the transport writes nothing for it. A window of the file known to be in the page cache
is sent on the loop (as nginx does); anything else from a worker thread holding descriptors of
its own, so the loop never waits on the disk and nothing it closes can be reused under a send.
"""

from __future__ import annotations

import asyncio
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from starlette.types import Message, Send

from bot.delivery.reading import ZEROCOPY
from bot.web.transport import LingeringTransport, WrittenAside, in_page_cache, send_file

WINDOW = 512 * 1024  # the most one send on the loop takes, once probed in the page cache
PROBE_EVERY = 128 * 1024  # a page looked at this often across a window (RWF_NOWAIT)
_THREADS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="bot-sendfile")


class FileSender:
    """Writes file bytes to one connection's socket, once what the transport holds has gone."""

    def __init__(
        self, transport: LingeringTransport, sock: socket.socket, lost: asyncio.Event
    ) -> None:
        self.transport, self._sock, self._lost = transport, sock, lost

    async def send(self, file: int, offset: int, count: int) -> int:
        """Write ``count`` bytes of ``file`` from ``offset``; the bytes written.

        OSError (as ASGI's ``send`` on a closed connection) when the connection closes first
        (ConnectionError: broken by the client) or the file ends first; some bytes may have gone.
        """
        loop = asyncio.get_running_loop()
        if self.transport.is_closing():
            await self._lost.wait()
            raise OSError("the connection closed before a zero-copy send")
        # A number of our own for the socket, taken while the transport's is surely its own:
        # the transport may close that one meanwhile, and a number reused by the next
        # connection must never receive these bytes.
        sock, sent = os.dup(self._sock.fileno()), 0
        try:
            while sent < count:
                if self.transport.is_closing():  # once lost, ``acked`` is final (bot.web.edge)
                    await self._lost.wait()
                    raise OSError("the connection closed during a zero-copy send")
                if self.transport.get_write_buffer_size():  # the head or an earlier body first
                    await _writable(loop, sock)
                    await asyncio.sleep(0)  # the transport's turn to write
                    continue
                at, left = offset + sent, count - sent
                window = min(left, WINDOW)
                if cached(file, at, window):
                    n = send_file(sock, file, at, window)
                else:  # the disk's wait in a worker thread, never the loop's
                    n = await _in_thread(loop, sock, file, at, left)
                if n is None:
                    await _writable(loop, sock)
                elif n == 0:
                    raise OSError("the file ended before the zero-copy send did")
                else:
                    sent += n
        finally:
            os.close(sock)
        return sent


class ZeroCopySend:
    """One response's ``send`` with the extension. A zero-copy message must follow the status
    line and fit in what its Content-Length still allows (else RuntimeError, nothing written):
    file bytes never go out unframed, nor into the next response on a kept-alive connection."""

    def __init__(self, sender: FileSender, send: Send) -> None:
        self._sender, self._send = sender, send
        self._left: int | None = None  # body bytes the Content-Length still allows

    async def __call__(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self._left = content_length(message.get("headers", []))
        elif kind == ZEROCOPY:
            message = await self._zero_copy(message)
        elif kind == "http.response.body" and self._left is not None:
            self._left -= len(message.get("body", b""))
        await self._send(message)

    async def _zero_copy(self, message: Message) -> Message:
        file = message["file"]
        fd = file if isinstance(file, int) else file.fileno()
        offset = message.get("offset")
        if offset is None:
            offset = os.lseek(fd, 0, os.SEEK_CUR)
        count = message.get("count")
        if count is None:
            count = os.fstat(fd).st_size - offset
        if self._left is None or count > self._left:
            raise RuntimeError("a zero-copy send must fit in the response's Content-Length")
        sent = await self._sender.send(fd, offset, count)
        self._left -= sent
        more = message.get("more_body", False)
        return {"type": "http.response.body", "body": WrittenAside(sent), "more_body": more}


def content_length(headers: Any) -> int | None:
    """The Content-Length of a response's headers (ASGI's byte pairs), or None."""
    for name, value in headers:
        if name.lower() == b"content-length":
            return int(value)
    return None


def cached(file: int, offset: int, count: int) -> bool:
    """Every PROBE_EVERY bytes of the span, and its last, are in the page cache."""
    ends = [*range(offset, offset + count, PROBE_EVERY), offset + count - 1]
    return all(in_page_cache(file, at) for at in ends)


async def _in_thread(loop: asyncio.AbstractEventLoop, sock: int, file: int, at: int, n: int) -> Any:
    """``send_file`` in a worker thread, on descriptors of its own (closed there)."""
    mine = os.dup(sock), os.dup(file)

    def work() -> int | None:
        try:
            return send_file(*mine, at, n)
        finally:
            for fd in mine:
                os.close(fd)

    # Shielded: a cancelled wait leaves the thread to finish and close its own descriptors.
    return await asyncio.shield(loop.run_in_executor(_THREADS, work))


async def _writable(loop: asyncio.AbstractEventLoop, sock: int) -> None:
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_writer(sock, wake)
    try:
        await ready
    finally:
        loop.remove_writer(sock)
