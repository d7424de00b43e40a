"""How uvicorn faces the network: header size and time limits, and no proxy-header guessing."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from bot.config import Settings

LINGER = 1.0  # seconds a refused connection stays half-open, for the client to read the 431
TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\ncontent-length: 22\r\n"
    b"connection: close\r\n\r\nrequest header too big"
)


class GuardedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with two limits it lacks (uvicorn issue #157).

    Each request's head (request line and headers) must fit in ``max_header_bytes`` (else 431
    and close) and arrive within ``header_timeout`` seconds of its first byte, or of the
    connection's opening (else the connection is closed). The body has its own limits
    (``[wechat] max_body_bytes``, ``body_timeout``); idle keep-alive is uvicorn's.
    """

    def __init__(
        self, *args: Any, max_header_bytes: int, header_timeout: float, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._max_head = max_header_bytes
        self._head_timeout = header_timeout
        self._head_size = 0  # request line and headers of the current request, as parsed
        self._pending = 0  # bytes received since the last head ended, while none has ended
        self._heads = 0  # heads parsed on this connection
        self._in_head = True
        self._refused = False
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # already answered 431; the connection is about to close
        heads = self._heads
        super().data_received(data)
        if self._refused:  # a whole head over the cap, in this chunk
            self._refuse()
        elif self._heads != heads:
            self._pending = 0
        elif self._in_head:  # a head still unfinished: httptools keeps its partial value
            self._pending += len(data)
            if self._pending > self._max_head:
                self._refused = True
                self._refuse()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_size = True, 0
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
        self._heads += 1
        self._disarm()
        if self._head_size > self._max_head:
            self._refused = True  # answered by data_received once the parser returns
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        super().on_message_complete()
        self._in_head = True  # bytes after this belong to the next request's head

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
