"""The shared WeChat access token in the SQLite state file: a table and a lock row of its own."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from bot.errors import StoreUnavailable
from bot.wechat.api.token import CachedToken

T = TypeVar("T")
BUSY_TIMEOUT_MS = 2000
SCHEMA = """
CREATE TABLE IF NOT EXISTS wechat_tokens (
    name TEXT PRIMARY KEY, token TEXT NOT NULL, expires_at REAL NOT NULL, forced TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS wechat_token_locks (
    name TEXT PRIMARY KEY, owner TEXT NOT NULL, until REAL NOT NULL);
"""


class SqliteTokenCache:
    """A TokenCache in the state store's SQLite file; the lock lapses by the wall clock."""

    @classmethod
    def from_url(
        cls, url: str, name: str, *, wall: Callable[[], float] = time.time
    ) -> SqliteTokenCache:
        """The cache in the file of a ``sqlite:///PATH`` state URL."""
        from bot.state import sqlite_path

        path = sqlite_path(url)
        assert path is not None  # chosen by its prefix in bot.state.STORES  # noqa: S101
        return cls(path, name, wall=wall)

    def __init__(self, path: Path, name: str, *, wall: Callable[[], float] = time.time) -> None:
        self.path, self.name, self._wall = path, name, wall
        self._db: sqlite3.Connection | None = None
        self._mutex = threading.Lock()  # one connection, used by one thread at a time

    def __repr__(self) -> str:
        return f"SqliteTokenCache({str(self.path)!r}, {self.name!r})"

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(
            self.path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            db.execute("PRAGMA journal_mode = WAL")
            db.executescript(SCHEMA)
        except BaseException:
            db.close()
            raise
        return db

    def _locked(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._mutex:
            try:
                if self._db is None:
                    self._db = self._connect()
                return work(self._db)
            except (sqlite3.Error, OSError) as exc:
                if self._db is not None:
                    self._db.close()
                    self._db = None
                raise StoreUnavailable(f"sqlite {self.path}: token cache: {exc}") from None

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.to_thread(self._locked, work)

    async def get(self) -> CachedToken | None:
        def read(db: sqlite3.Connection) -> CachedToken | None:
            row = db.execute(
                "SELECT token, expires_at, forced FROM wechat_tokens WHERE name = ?", (self.name,)
            ).fetchone()
            if row is None:
                return None
            return CachedToken(row[0], float(row[1]), tuple(json.loads(row[2])))

        return await self._run(read)

    async def set(self, token: CachedToken) -> None:
        row = (self.name, token.token, token.expires_at, json.dumps(list(token.forced)))
        await self._run(
            lambda db: db.execute("INSERT OR REPLACE INTO wechat_tokens VALUES (?, ?, ?, ?)", row)
        )

    async def acquire(self, owner: str, seconds: float) -> bool:
        now = self._wall()

        def take(db: sqlite3.Connection) -> bool:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute(
                    "SELECT owner, until FROM wechat_token_locks WHERE name = ?", (self.name,)
                ).fetchone()
                if row is not None and row[0] != owner and row[1] > now:
                    return False
                db.execute(
                    "INSERT OR REPLACE INTO wechat_token_locks VALUES (?, ?, ?)",
                    (self.name, owner, now + seconds),
                )
                return True
            finally:
                db.commit()

        return await self._run(take)

    async def release(self, owner: str) -> None:
        await self._run(
            lambda db: db.execute(
                "DELETE FROM wechat_token_locks WHERE name = ? AND owner = ?", (self.name, owner)
            )
        )

    async def close(self) -> None:
        """Close the connection."""

        def drop() -> None:
            with self._mutex:
                if self._db is not None:
                    self._db.close()
                    self._db = None

        await asyncio.to_thread(drop)
