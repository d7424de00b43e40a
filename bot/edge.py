"""How uvicorn faces the network: header size and time limits, and no proxy-header guessing."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from bot.config import Settings

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
        self._head_bytes = 0
        self._in_head = True
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._in_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > self._max_head:
                self.logger.warning("request header over %d bytes: 431, closed", self._max_head)
                self._disarm()
                if self.cycle is None or self.cycle.response_complete:  # not inside an answer
                    self.transport.write(TOO_LARGE)
                self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        if self._head_timer is None:
            self._arm()

    def on_headers_complete(self) -> None:
        self._in_head, self._head_bytes = False, 0
        self._disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True  # bytes after this belong to the next request's head

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
        # Client addresses come from bot.clientaddr ([server] trusted_proxies), never from
        # uvicorn's --forwarded-allow-ips, which takes the leftmost X-Forwarded-For.
        "proxy_headers": False,
        # The bot logs each link and download itself; uvicorn's line per request only at DEBUG.
        "access_log": settings.log.level in ("TRACE", "DEBUG"),
    }
