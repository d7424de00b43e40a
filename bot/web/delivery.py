"""How a checked download leaves the bot: streamed from disk, or handed to nginx (X-Accel)."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import anyio
from fastapi.responses import FileResponse, Response
from starlette.types import Message, Receive, Scope, Send

from bot.catalog import FileInfo
from bot.config import Settings
from bot.slots import DownloadSlots, Pacer, Slot, paced_chunk

# Read size of a streamed download. Starlette's 64 KiB costs a thread hop and an event-loop turn
# per 64 KiB; 256 KiB measured as fast as 1 MiB while a slow client holds at most one chunk.
READ_SIZE = 256 * 1024


class PacedFileResponse(FileResponse):
    """A FileResponse with a large read size and an optional speed cap in bytes per second."""

    chunk_size = READ_SIZE

    def __init__(self, *args: Any, rate: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rate = rate
        if rate:
            self.chunk_size = paced_chunk(rate, self.chunk_size)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._rate:
            await super().__call__(scope, receive, send)
            return
        pacer = Pacer(self._rate, time.monotonic())

        async def paced(message: Message) -> None:
            if message["type"] == "http.response.body":
                wait = pacer.delay(len(message.get("body", b"")), time.monotonic())
                if wait > 0:
                    await anyio.sleep(wait)
            await send(message)

        await super().__call__(scope, receive, paced)


def accel_response(info: FileInfo, headers: dict[str, str], settings: Settings) -> Response:
    """An empty answer that tells nginx to send the file from its internal location."""
    headers = {
        **headers,
        # nginx unescapes this URI: names with spaces, '?', '%' or Chinese stay intact.
        "X-Accel-Redirect": settings.files.x_accel_prefix + quote(info.key, safe="/"),
    }
    if settings.limits.rate_bytes_per_second:
        headers["X-Accel-Limit-Rate"] = str(settings.limits.rate_bytes_per_second)
    return Response(status_code=200, headers=headers)


def take_slot(slots: DownloadSlots, link_id: str, method: str) -> Slot | None:
    """A download slot for a GET (HEAD sends no bytes); ServerBusy or LinkBusy when full."""
    return None if method == "HEAD" else slots.acquire(link_id)
