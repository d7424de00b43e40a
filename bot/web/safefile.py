"""A FileResponse that answers 404 when its file vanishes or changes before the first byte."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import IO, Any

import anyio
from fastapi.responses import FileResponse
from starlette.types import Message, Receive, Scope, Send

from bot.errors import FileMissing


def _identity(stat: os.stat_result) -> tuple[int, int, int, int]:
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns


def same_file(
    path: str | os.PathLike[str], expected: os.stat_result | None, **kw: Any
) -> IO[bytes]:
    """Open ``path`` for reading; FileNotFoundError if it is no longer the file ``expected``."""
    raw: IO[bytes] = open(path, "rb", **kw)  # noqa: SIM115 - closed below or by the caller
    if expected is not None and _identity(os.fstat(raw.fileno())) != _identity(expected):
        raw.close()
        raise FileNotFoundError(f"{path} changed after it was checked")
    return raw


class SafeFileResponse(FileResponse):
    """Holds back the status line until the file is open and is the one the headers describe.

    Starlette sends ``200`` and Content-Length before it opens the file, so a file deleted or
    replaced in between would end in a broken 200 and a traceback; here it becomes FileMissing
    (a 404 page) instead.
    """

    def __init__(self, *args: Any, file_key: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.file_key = file_key or os.path.basename(self.path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        held: list[Message] = []
        released = False

        async def hold(message: Message) -> None:
            nonlocal released
            if not released and message["type"] == "http.response.start":
                held.append(message)
                return
            if not released:
                released = True
                for start in held:
                    await send(start)
            await send(message)

        try:
            await super().__call__(scope, receive, hold)
        except OSError:
            if released:
                raise
            raise FileMissing(self.file_key) from None

    @asynccontextmanager
    async def _open_file(self) -> AsyncIterator[anyio.AsyncFile[bytes]]:
        raw = await anyio.to_thread.run_sync(same_file, self.path, self.stat_result)
        file = anyio.wrap_file(raw)
        try:
            yield file
        finally:
            with anyio.CancelScope(shield=True):
                await file.aclose()
