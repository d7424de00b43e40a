"""File keys to paths under ``files.dir``; nothing outside the configured catalogue is reachable."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG

from bot.errors import FileMissing


@dataclass(frozen=True, slots=True)
class FileInfo:
    """A catalogue file as it is now: what headers, pages and validators need (no stat)."""

    key: str
    path: Path  # names the file (pages, Content-Disposition); only disk delivery opens it
    size: int
    modified: float  # seconds since the epoch, sub-second where the disk keeps it
    identity: tuple[int, ...] = ()  # disk: (device, inode, size, mtime_ns); () for an object

    @classmethod
    def of(cls, key: str, path: Path, stat: os.stat_result) -> FileInfo:
        """A file on disk, as ``stat`` found it."""
        return cls(key, path, stat.st_size, stat.st_mtime, identity_of(stat))


def identity_of(stat: os.stat_result) -> tuple[int, ...]:
    """What tells one version of a file on disk from another: replaced, or changed in place."""
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns


class Catalog:
    """Resolves the keys the keywords name, refusing anything else or anything leading out."""

    def __init__(self, root: Path, keys: Iterable[str]) -> None:
        self.root = root.resolve()
        self.keys = frozenset(keys)
        # key -> the file found inside the root at the last open: (device, inode, ctime), path
        self._inside: dict[str, tuple[tuple[int, int, int], Path]] = {}

    def open(self, key: str) -> FileInfo:
        """Stat a catalogue file; FileMissing if unknown, outside the root, or gone."""
        if key not in self.keys:
            raise FileMissing(key)
        try:
            stat = os.stat(self.root / key)
        except OSError:
            raise FileMissing(key) from None
        if not S_ISREG(stat.st_mode):
            raise FileMissing(key)
        known = self._inside.get(key)
        if known is not None and known[0] == _seen(stat):
            return FileInfo.of(key, known[1], stat)  # the very file found inside before
        # Where it leads, followed link by link (a path leading out is refused): only for a
        # file not seen before. The same file is the same answer: its device and inode, and
        # its ctime, which a new file reusing a freed inode, a rename, a new link or a change
        # all move on.
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise FileMissing(key)
        try:
            stat = path.stat()
        except OSError:
            raise FileMissing(key) from None
        if not S_ISREG(stat.st_mode):
            raise FileMissing(key)
        self._inside[key] = (_seen(stat), path)
        return FileInfo.of(key, path, stat)


def _seen(stat: os.stat_result) -> tuple[int, int, int]:
    return stat.st_dev, stat.st_ino, stat.st_ctime_ns
