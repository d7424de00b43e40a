"""What a disk download reads from and counts by: the file, checked at every read, and the
connection's acknowledged bytes (``Acks``, put in the request's scope by ``bot.web.edge``), which
may also send file bytes itself (``ZEROCOPY``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Protocol

from bot.delivery.catalog import identity_of
from bot.delivery.ranges import Span
from bot.errors import TransferAborted

ACKS = "bot.acks"  # the scope key of the connection's Acks (bot.web.edge puts them there)
# ASGI's zero-copy send extension (asgiref's spec; bot.web.edge offers it): body bytes from a file
ZEROCOPY = "http.response.zerocopysend"


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

    async def pause(self, seconds: float) -> None:
        """Wait ``seconds``, or less: until the client sends anything (its next request on a
        kept-alive connection says it has read this answer: worth a look at ``acked``)."""


def same_file(path: str | os.PathLike[str], expected: tuple[int, ...]) -> IO[bytes]:
    """Open ``path`` for reading; FileNotFoundError if it is no longer the file ``expected``
    (``FileInfo.identity``; () checks nothing)."""
    raw: IO[bytes] = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by the caller
    if expected and identity_of(os.fstat(raw.fileno())) != expected:
        raw.close()
        raise FileNotFoundError(f"{path} changed after it was checked")
    return raw


class Reader:
    """Reads one span of one file: in a worker thread, or on the loop what ``cached_tail``
    finds in the page cache; opens (and checks) the file at the first call.

    Every read (and every piece sent another way) checks the file is still the one that was
    stat'ed: a file replaced or changed in place (``cp new files/x``) raises TransferAborted,
    never a short or mixed copy.
    """

    def __init__(self, path: Path, span: Span, expected: tuple[int, ...]) -> None:
        self.path, self.offset, self.left, self.expected = path, span.start, span.length, expected
        self._file: IO[bytes] | None = None

    @property
    def done(self) -> bool:
        return self.left <= 0

    def read(self, size: int) -> bytes:
        data = os.pread(self.fileno(), min(size, self.left), self.offset)
        self._check(len(data))
        self.offset += len(data)
        self.left -= len(data)
        if self.done:
            self.close()
        return data

    def tail(self, size: int) -> bytes:
        """The span's last ``size`` bytes, read ahead: a zero-copy send sends the rest, then
        these, so a file changed during the send (``passed`` tells) never goes out whole."""
        return self._checked(os.pread(self.fileno(), size, self._tail_at(size)), size)

    def cached_tail(self, size: int) -> bytes | None:
        """``tail`` if it is in the page cache (read on the loop); else None."""
        buffer, file = bytearray(size), self.fileno()
        try:
            got = os.preadv(file, [buffer], self._tail_at(size), os.RWF_NOWAIT)
        except OSError:  # it would wait on the disk, or the kernel cannot tell
            return None
        return self._checked(bytes(buffer[:got]), size)

    def _tail_at(self, size: int) -> int:
        return self.offset + self.left - size

    def _checked(self, data: bytes, size: int) -> bytes:
        self._check(len(data) if len(data) == size else 0)
        return data

    def passed(self, count: int) -> None:
        """``count`` bytes went out from the file another way (a zero-copy send)."""
        self._check(count)
        self.offset += count
        self.left -= count

    def fileno(self) -> int:
        """The open file (opened, and checked, at the first call)."""
        if self._file is None:
            self._file = same_file(self.path, self.expected)
        return self._file.fileno()

    def changed(self) -> bool:
        """The file is no longer the one that was stat'ed."""
        return identity_of(os.fstat(self.fileno())) != self.expected

    def _check(self, got: int) -> None:
        if not got or self.changed():
            raise TransferAborted("the file changed during the download")

    def close(self) -> None:
        # Closing a file opened read-only does not wait on the disk, so it may run on the loop.
        if self._file is not None:
            self._file.close()
            self._file = None
