"""File keys to paths under ``files.dir``; nothing outside the configured catalogue is reachable."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bot.errors import FileMissing


@dataclass(frozen=True, slots=True)
class FileInfo:
    """A catalogue file as it is on disk now."""

    key: str
    path: Path
    stat: os.stat_result

    @property
    def size(self) -> int:
        return self.stat.st_size


class Catalog:
    """Resolves the keys the keywords name, refusing anything else or anything leading out."""

    def __init__(self, root: Path, keys: Iterable[str]) -> None:
        self.root = root.resolve()
        self.keys = frozenset(keys)

    def open(self, key: str) -> FileInfo:
        """Stat a catalogue file; FileMissing if unknown, outside the root, or gone."""
        if key not in self.keys:
            raise FileMissing(key)
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise FileMissing(key)
        try:
            stat = path.stat()
        except OSError:
            raise FileMissing(key) from None
        if not path.is_file():
            raise FileMissing(key)
        return FileInfo(key, path, stat)
