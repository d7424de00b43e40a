"""What a disk download reads from and counts by: the file, checked at every read, and the
connection's acknowledged bytes (``Acks``, put in the request's scope by ``bot.web.edge``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Protocol

from bot.delivery.catalog import identity_of
from bot.delivery.ranges import Span
from bot.errors import TransferAborted

ACKS = "bot.acks"  # the scope key of the connection's Acks (bot.web.edge puts them there)


class Acks(Protocol):
    """How much of what was written to a request's connection the client's kernel acknowledged."""

    def written(self) -> int:
        """Bytes written to the connection so far."""

    def acked(self) -> int:
        """Bytes of those the client's kernel acknowledged (final once ``gone``)."""

    def gone(self) -> bool:
        """The connection is lost."""

    def abort(self) -> None:
        """Reset the connection, dropping what the kernel has not sent; ``acked`` is final."""


def same_file(path: str | os.PathLike[str], expected: tuple[int, ...]) -> IO[bytes]:
    """Open ``path`` for reading; FileNotFoundError if it is no longer the file ``expected``
    (``FileInfo.identity``; () checks nothing)."""
    raw: IO[bytes] = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by the caller
    if expected and identity_of(os.fstat(raw.fileno())) != expected:
        raw.close()
        raise FileNotFoundError(f"{path} changed after it was checked")
    return raw


class Reader:
    """Reads one span of one file from a worker thread; opens with the first read.

    Every read checks the file is still the one that was stat'ed: a file replaced or changed in
    place (``cp new files/x``) raises TransferAborted, never a short or mixed copy.
    """

    def __init__(self, path: Path, span: Span, expected: tuple[int, ...]) -> None:
        self.path, self.offset, self.left, self.expected = path, span.start, span.length, expected
        self._file: IO[bytes] | None = None

    @property
    def done(self) -> bool:
        return self.left <= 0

    def read(self, size: int) -> bytes:
        if self._file is None:
            self._file = same_file(self.path, self.expected)
            self._file.seek(self.offset)
        data = self._file.read(min(size, self.left))
        if not data or identity_of(os.fstat(self._file.fileno())) != self.expected:
            raise TransferAborted("the file changed during the download")
        self.left -= len(data)
        if self.done:
            self.close()
        return data

    def close(self) -> None:
        # Closing a file opened read-only does not wait on the disk, so it may run on the loop.
        if self._file is not None:
            self._file.close()
            self._file = None
