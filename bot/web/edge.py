"""How uvicorn faces the network: head limits, a lingering close, acknowledged bytes, no proxies."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
from typing import Any, cast

from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from bot.config import Settings
from bot.delivery.reading import ACKS, ZEROCOPY
from bot.web.transport import RESET, LingeringTransport, send_queue, tcp_info
from bot.web.zerocopy import FileSender, ZeroCopySend

LINGER = 1.0  # seconds a refused connection stays half-open, for the client to read the 431
TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\ncontent-length: 22\r\n"
    b"connection: close\r\n\r\nrequest header too big"
)


class GuardedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits it lacks (uvicorn #157), and two tools."""

    # Each request's head (request line and headers) must fit in ``max_header_bytes`` (else 431
    # and close) and arrive within ``header_timeout`` seconds of its first byte, or of the
    # connection's opening (else the connection is closed). Body bytes never count as head
    # bytes, however they are segmented; the body has its own limits ([wechat] max_body_bytes,
    # body_timeout); idle keep-alive is uvicorn's. A connection whose answer went out while its
    # request body was still arriving (a 413, a 404 to a POST) is closed, lingering
    # (LingeringTransport), never read on for as long as the client sends. On Linux each
    # request's scope holds the connection's bot.delivery.reading.Acks (``ACKS``: this protocol):
    # direct downloads count what the client's kernel acknowledged, not what the server's took.
    # There a GET over plain TCP also has ASGI's zero-copy send (``ZEROCOPY``,
    # ``bot.web.zerocopy``): file bytes go from the page cache to the socket, not through
    # Python (#20).

    transport: LingeringTransport  # set by connection_made, as uvicorn's own

    def __init__(
        self, *args: Any, max_header_bytes: int, header_timeout: float, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._max_head = max_header_bytes
        self._head_timeout = header_timeout
        self._head_size = 0  # request line and headers of the current head, as parsed so far
        self._raw_head = 0  # its bytes in reads that came wholly inside it (see data_received)
        self._begun = 0  # heads begun on this connection
        self._in_head = True  # a head is awaited (the connection is new) or unfinished
        self._in_body = False  # a request's body is still arriving
        self._refused = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._sock: socket.socket | None = None  # where the kernel counts acknowledgements
        self._acked_at_loss: int | None = None
        self._lost = asyncio.Event()
        self._heard = asyncio.Event()  # the client sent something (see ``pause``)
        self._files: FileSender | None = None  # plain TCP only (sendfile would bypass TLS)
        self._app, self.app = self.app, self._serve

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The app, with the zero-copy send on a GET where the kernel counts acknowledgements."""
        if self._files is not None and scope.get("method") == "GET":
            scope["extensions"] = {**scope.get("extensions", {}), ZEROCOPY: {}}
            send = ZeroCopySend(self._files, send)
        await self._app(scope, receive, send)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and tcp_info(sock) is not None:
            self._sock = sock
        super().connection_made(LingeringTransport(transport, lambda: self._in_body, self.loop))
        if self._sock is not None and transport.get_extra_info("ssl_object") is None:
            self._files = FileSender(self.transport, self._sock, self._lost)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._sock is not None and self._acked_at_loss is None:  # the socket is open here
            # A reset drops what the kernel holds; a clean end (the peer's FIN: it may read on)
            # still delivers it, so then it counts as acknowledged.
            self._acked_at_loss = self.acked() if exc is not None else self.written()
        self._lost.set()
        self._heard.set()
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._heard.set()
        if self.transport.lingering:
            self.transport.discard(data)
            return
        if self._refused:
            return  # already answered 431; the connection is about to close
        begun, inside = self._begun, self._in_head
        super().data_received(data)
        if self._refused:  # a whole head over the cap, in this chunk
            self._refuse()
            return
        if not self._in_head:
            return
        # A head still unfinished: httptools holds a partial header back, so raw bytes count
        # too, but only those of reads that came wholly inside this head (never body bytes).
        if inside and self._begun == begun:
            self._raw_head += len(data)
        if max(self._raw_head, self._head_size) > self._max_head:
            self._refused = True
            self._refuse()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._begun += 1
        self._in_head, self._head_size, self._raw_head = True, 0, 0
        if self._sock is not None:  # uvicorn's scope is a TypedDict without room for it
            cast(dict[str, Any], self.scope)[ACKS] = self
        if self._head_timer is None:
            self._arm()

    def on_url(self, url: bytes) -> None:
        self._head_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm()
        if self._head_size > self._max_head:
            self._refused = True  # answered by data_received once the parser returns
            return
        self._in_body = True  # until on_message_complete (at once when there is no body)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._in_body = False
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._in_body and not self.transport.is_closing():
            self.transport.close()  # answered before its body ended: never read on for ever

    def written(self) -> int:
        """Bytes written to this connection: acknowledged, in the kernel, or in the transport."""
        if self._sock is None or self._acked_at_loss is not None:
            return self.acked()
        # Two calls, one snapshot: an ACK between them would count its bytes twice (queued
        # before, acknowledged after), so the queue is read between two equal looks at acked.
        for _ in range(3):
            acked = self.acked()
            queued = send_queue(self._sock) + self.transport.get_write_buffer_size()
            if self.acked() == acked:
                break
        return acked + queued

    def acked(self) -> int:
        """Bytes written to this connection that the peer's kernel acknowledged (final if lost)."""
        if self._acked_at_loss is not None:
            return self._acked_at_loss
        info = tcp_info(self._sock) if self._sock is not None else None
        return info[0] if info else 0

    async def pause(self, seconds: float) -> None:
        """Wait ``seconds``, or less: until the client sends anything, or the connection ends."""
        self._heard.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._heard.wait()

    def gone(self) -> bool:
        """The connection is lost: ``acked`` is final."""
        return self._acked_at_loss is not None

    def abort(self) -> None:
        """Reset the connection, dropping what the kernel has not sent; ``acked`` is final."""
        # What was sent already may still arrive: it counts as if acknowledged.
        if self._sock is not None and self._acked_at_loss is None:
            info = tcp_info(self._sock)
            if info is not None:
                self._acked_at_loss = info[0] + max(0, send_queue(self._sock) - info[1])
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET)
        self.transport.inner.abort()

    def _refuse(self) -> None:
        self.logger.warning("request header over %d bytes: 431, closed", self._max_head)
        self._disarm()
        if self.cycle is not None and not self.cycle.response_complete:  # inside an answer
            self.transport.close()
            return
        # Closing at once with unread bytes would reset the connection before the client reads
        # the answer: half-close, stop reading, and close for good a moment later.
        self.transport.write(TOO_LARGE)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.transport.pause_reading()
        self.loop.call_later(LINGER, self.transport.close)

    def _arm(self) -> None:
        self._head_timer = self.loop.call_later(self._head_timeout, self._head_too_slow)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            self.logger.info("request header not complete in %gs: closed", self._head_timeout)
            self.transport.close()


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn settings every way of serving the bot shares (``bot serve``, the tests)."""
    server = settings.server
    return {
        "log_config": None,
        "server_header": False,
        # The fast C pieces of uvicorn[standard], named so a missing one fails loudly.
        "loop": "uvloop",
        "http": functools.partial(
            GuardedHttpTools,
            max_header_bytes=server.max_header_bytes,
            header_timeout=server.header_timeout,
        ),
        # Client addresses come from bot.web.clientaddr ([server] trusted_proxies), never from
        # uvicorn's --forwarded-allow-ips, which takes the leftmost X-Forwarded-For.
        "proxy_headers": False,
        # The bot logs each link and download itself; uvicorn's line per request only at DEBUG.
        "access_log": settings.log.level in ("TRACE", "DEBUG"),
    }
