"""How a checked download leaves the bot: streamed from disk, or handed to nginx (X-Accel)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import anyio
from fastapi.responses import Response
from starlette.types import Message, Receive, Scope, Send

from bot.catalog import FileInfo
from bot.config import Settings
from bot.errors import FileMissing
from bot.slots import READ_MAX, READ_MIN, DownloadSlots, Pacer, ReadBudget, Slot, paced_chunk
from bot.web.safefile import SafeFileResponse, same_file

RANGE_READ = 256 * 1024  # Starlette streams Range requests, in reads of this size
_WAIT_FOR_CLIENT: Message = {"type": "http.response.body", "body": b"", "more_body": True}


class PacedFileResponse(SafeFileResponse):
    """A FileResponse that reads big chunks in few thread hops, within a memory budget, paced."""

    chunk_size = READ_MAX

    def __init__(
        self, *args: Any, rate: int = 0, slots: DownloadSlots | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._rate = rate
        self._budget = slots.reads if slots is not None else ReadBudget(READ_MAX)
        self._want = paced_chunk(rate, READ_MAX) if rate else READ_MAX

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._rate:
            send = _paced(send, self._rate)
        ranged = any(name == b"range" for name, _ in scope.get("headers", []))
        if ranged or self.stat_result is None or scope.get("type") != "http":
            self.chunk_size = min(self._want, RANGE_READ)
            await super().__call__(scope, receive, send)  # Starlette parses and serves ranges
            return
        await self._send_whole(scope, receive, send, self.stat_result.st_size)

    async def _send_whole(self, scope: Scope, receive: Receive, send: Send, size: int) -> None:
        """A whole-file GET/HEAD: the file opens with its first read; one read, no extra task."""
        start = {"type": "http.response.start", "status": self.status_code}
        reader = _Reader(Path(self.path), size, self.stat_result)
        if scope["method"] == "HEAD" or reader.done:
            await send({**start, "headers": self.raw_headers})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        budget, floor = self._budget, min(READ_MIN, self._want)
        # A file that fits in one read goes out in one piece, outside the budget: the budget is
        # for big files, whose slow clients would otherwise each hold a full read for minutes.
        held = 0 if size <= self._want else budget.take(self._want, floor)
        try:
            try:  # the status line waits for the first read: a vanished file is still a 404
                first = await anyio.to_thread.run_sync(reader.read, held or size)
            except OSError:
                raise FileMissing(self.file_key) from None
            await send({**start, "headers": self.raw_headers})
            if reader.done:
                await send({"type": "http.response.body", "body": first, "more_body": False})
                return
            async with anyio.create_task_group() as group:

                async def stream() -> None:
                    nonlocal held
                    chunk = first
                    while True:
                        body = {"type": "http.response.body", "body": chunk}
                        await send({**body, "more_body": not reader.done})
                        if reader.done:
                            break
                        # Returns once the client has taken most of the last chunk (the server's
                        # flow control): only then read the next, so a slow client holds one.
                        await send(_WAIT_FOR_CLIENT)
                        budget.give(held)
                        held = 0
                        held = budget.take(self._want, floor)
                        chunk = await anyio.to_thread.run_sync(reader.read, held)
                    group.cancel_scope.cancel()

                group.start_soon(stream)
                while (await receive())["type"] != "http.disconnect":
                    pass
                group.cancel_scope.cancel()  # the client hung up: stop reading
        finally:
            budget.give(held)
            reader.close()


class _Reader:
    """Reads one file front to back from a worker thread; opens with the first read."""

    def __init__(self, path: Path, size: int, expected: os.stat_result | None = None) -> None:
        self.path, self.left, self.expected = path, size, expected
        self._file: IO[bytes] | None = None

    @property
    def done(self) -> bool:
        return self.left <= 0

    def read(self, size: int) -> bytes:
        if self._file is None:
            self._file = same_file(self.path, self.expected, buffering=0)
        data = self._file.read(min(size, self.left))
        if not data:
            raise OSError(f"{self.path} is shorter than when it was stat'ed")
        self.left -= len(data)
        if self.done:
            self.close()
        return data

    def close(self) -> None:
        # Closing a file opened read-only does not wait on the disk, so it may run on the loop.
        if self._file is not None:
            self._file.close()
            self._file = None


def _paced(send: Send, rate: int) -> Send:
    """``send`` that holds a download to ``rate`` bytes per second."""
    pacer = Pacer(rate, time.monotonic())

    async def paced(message: Message) -> None:
        if message["type"] == "http.response.body":
            wait = pacer.delay(len(message.get("body", b"")), time.monotonic())
            if wait > 0:
                await anyio.sleep(wait)
        await send(message)

    return paced


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
