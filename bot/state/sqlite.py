"""SQLite state: one file in WAL mode, every call on one dedicated thread, safe across workers."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from loguru import logger

from bot.errors import StoreUnavailable
from bot.state.base import QUOTA_WINDOW, REVOKED_KEEP, Attempt, Grant, LinkRecord, Reply, Usage
from bot.state.sqlite_thread import StoreThread
from bot.state.sqlite_thread import write as _write

T = TypeVar("T")
BUSY_TIMEOUT_MS = 2000
SCHEMA = """
CREATE TABLE IF NOT EXISTS replies (
    key TEXT PRIMARY KEY, done INTEGER NOT NULL, text TEXT, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS links (
    link_id TEXT PRIMARY KEY, openid TEXT NOT NULL, keyword TEXT NOT NULL, file TEXT NOT NULL,
    issued_at REAL NOT NULL, expires_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS links_by_openid ON links (openid, issued_at);
CREATE INDEX IF NOT EXISTS links_by_file ON links (file);
CREATE INDEX IF NOT EXISTS links_by_time ON links (issued_at);
CREATE TABLE IF NOT EXISTS revoked (link_id TEXT PRIMARY KEY, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS usage (
    link_id TEXT PRIMARY KEY, active INTEGER NOT NULL, completed INTEGER NOT NULL,
    until REAL NOT NULL);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, outcome TEXT NOT NULL, link_id TEXT NOT NULL,
    file TEXT NOT NULL, ip TEXT NOT NULL, user_agent TEXT NOT NULL, range TEXT NOT NULL,
    status INTEGER NOT NULL, bytes_sent INTEGER NOT NULL, complete INTEGER NOT NULL,
    counted INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS attempts_by_time ON attempts (at);
CREATE INDEX IF NOT EXISTS attempts_by_link ON attempts (link_id);
"""
PICKUP_SCHEMA = """
CREATE TABLE IF NOT EXISTS pickup_codes (
    code TEXT PRIMARY KEY, token TEXT NOT NULL, link_id TEXT NOT NULL, expires_at REAL NOT NULL);
"""
_ATTEMPT_COLUMNS = (
    "at, outcome, link_id, file, ip, user_agent, range, status, bytes_sent, complete, counted"
)


def _attempt(row: tuple[Any, ...]) -> Attempt:
    fields = dict(zip(_ATTEMPT_COLUMNS.split(", "), row, strict=True))
    fields["complete"], fields["counted"] = bool(fields["complete"]), bool(fields["counted"])
    return Attempt(**fields)


def _known_reply(db: sqlite3.Connection, key: str, now: float) -> Reply | None:
    row = db.execute(
        "SELECT done, text FROM replies WHERE key = ? AND expires_at > ?", (key, now)
    ).fetchone()
    return Reply(bool(row[0]), row[1]) if row else None


def _put_reply(db: sqlite3.Connection, key: str, reply: Reply, until: float) -> None:
    db.execute(
        "INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?)",
        (key, int(reply.done), reply.text, until),
    )


def _record_link(db: sqlite3.Connection, link: LinkRecord, per_hour: int) -> float | None:
    """Within a write transaction: record the link, or when the follower may ask again."""
    if per_hour:
        count, oldest = db.execute(
            "SELECT count(*), min(issued_at) FROM links WHERE openid = ? AND issued_at > ?",
            (link.openid, link.issued_at - QUOTA_WINDOW),
        ).fetchone()
        if count >= per_hour:
            return float(oldest) + QUOTA_WINDOW
    db.execute(
        "INSERT OR REPLACE INTO links VALUES (?, ?, ?, ?, ?, ?)",
        (link.link_id, link.openid, link.keyword, link.file, link.issued_at, link.expires_at),
    )
    return None


class SqliteStore:
    """The default store: ``sqlite:///state/bot.db``."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._thread = StoreThread(self._connect, path)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        try:
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            with _write(db):
                for statement in (SCHEMA + PICKUP_SCHEMA).split(";"):
                    if statement.strip():
                        db.execute(statement)
        except BaseException:
            db.close()
            raise
        return db

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await self._thread.run(work)

    async def open(self) -> None:
        """Create the file and tables now (a failure is logged; later calls retry)."""
        try:
            await self._run(lambda db: None)
        except StoreUnavailable as exc:
            logger.error("{}", exc)

    async def ping(self) -> bool:
        """True when the database can take a write (a locked or read-only file cannot)."""

        def probe(db: sqlite3.Connection) -> bool:
            with _write(db):
                db.execute("DELETE FROM replies WHERE 0")
            return True

        return await self._run(probe)

    async def close(self) -> None:
        """Close the connection and stop the thread."""
        try:
            await self._thread.close()
        except (sqlite3.Error, TimeoutError) as exc:
            logger.error("sqlite {}: closing: {!r}", self.path, exc)

    async def claim_message(self, key: str, ttl: float) -> Reply | None:
        """None when first; else the remembered (maybe pending) reply."""

        def work(db: sqlite3.Connection) -> Reply | None:
            now = self._clock()
            with _write(db):
                known = _known_reply(db, key, now)
                if known is None:
                    _put_reply(db, key, Reply(done=False), now + ttl)
                return known

        return await self._run(work)

    async def save_reply(self, key: str, text: str | None, ttl: float) -> None:
        """Remember the answer."""
        until = self._clock() + ttl
        await self._run(lambda db: _put_reply(db, key, Reply(done=True, text=text), until))

    async def read_reply(self, key: str) -> Reply | None:
        """The remembered reply, if any."""
        now = self._clock()
        return await self._run(lambda db: _known_reply(db, key, now))

    async def record_link(self, link: LinkRecord, per_hour: int) -> float | None:
        """Record the link unless the follower's hourly quota is used up."""

        def work(db: sqlite3.Connection) -> float | None:
            with _write(db):
                return _record_link(db, link, per_hour)

        return await self._run(work)

    async def claim_and_record(
        self, key: str, ttl: float, text: str | None, link: LinkRecord | None, per_hour: int
    ) -> Reply | float | None:
        """Claim, check the quota, record the link and remember the answer: one transaction."""

        def work(db: sqlite3.Connection) -> Reply | float | None:
            now = self._clock()
            with _write(db):
                known = _known_reply(db, key, now)
                if known is not None:
                    return known
                retry_at = None if link is None else _record_link(db, link, per_hour)
                answer = Reply(done=True, text=text) if retry_at is None else Reply(done=False)
                _put_reply(db, key, answer, now + ttl)
                return retry_at

        return await self._run(work)

    async def link(self, link_id: str) -> LinkRecord | None:
        """One recorded link."""
        rows = await self._query("SELECT * FROM links WHERE link_id = ?", (link_id,))
        return LinkRecord(*rows[0]) if rows else None

    async def revoke(self, link_ids: list[str]) -> int:
        """Revoke links; returns how many were new."""
        now = self._clock()

        def work(db: sqlite3.Connection) -> int:
            with _write(db):
                before = db.total_changes
                db.executemany(
                    "INSERT OR IGNORE INTO revoked VALUES (?, ?)", [(i, now) for i in link_ids]
                )
                return db.total_changes - before

        return await self._run(work)

    async def links_of(self, *, openid: str | None = None, file: str | None = None) -> list[str]:
        """Ids of links for a follower or a file."""
        column, value = ("openid", openid) if openid is not None else ("file", file)
        rows = await self._query(f"SELECT link_id FROM links WHERE {column} = ?", (value,))  # noqa: S608 - column is one of two literals
        return [row[0] for row in rows]

    async def usage(self, link_id: str) -> Usage:
        """Revocation and counts of one link."""
        rows = await self._query(
            "SELECT EXISTS (SELECT 1 FROM revoked WHERE link_id = ?),"
            " (SELECT active FROM usage WHERE link_id = ?),"
            " (SELECT completed FROM usage WHERE link_id = ?)",
            (link_id, link_id, link_id),
        )
        revoked, active, completed = rows[0]
        return Usage(bool(revoked), active or 0, completed or 0)

    async def claim_download(self, link_id: str, limit: int, keep: float) -> Grant:
        """Take a download slot if one is free."""
        until = self._clock() + keep

        def work(db: sqlite3.Connection) -> Grant:
            with _write(db):
                if db.execute("SELECT 1 FROM revoked WHERE link_id = ?", (link_id,)).fetchone():
                    return Grant.REVOKED
                row = db.execute(
                    "SELECT active + completed FROM usage WHERE link_id = ?", (link_id,)
                ).fetchone()
                if row and row[0] >= limit:
                    return Grant.EXHAUSTED
                db.execute(
                    "INSERT INTO usage VALUES (?, 1, 0, ?) ON CONFLICT (link_id) DO UPDATE"
                    " SET active = active + 1, until = max(until, excluded.until)",
                    (link_id, until),
                )
                return Grant.GRANTED

        return await self._run(work)

    async def end_download(self, link_id: str, completed: bool) -> None:
        """Free or count a slot."""
        await self._execute(
            "UPDATE usage SET active = max(active - 1, 0), completed = completed + ?"
            " WHERE link_id = ?",
            (int(completed), link_id),
        )

    async def record_attempt(self, attempt: Attempt) -> None:
        """Append an attempt."""
        a = attempt
        await self._execute(
            f"INSERT INTO attempts ({_ATTEMPT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608 - constant
            (
                a.at,
                a.outcome,
                a.link_id,
                a.file,
                a.ip,
                a.user_agent,
                a.range,
                a.status,
                a.bytes_sent,
                int(a.complete),
                int(a.counted),
            ),
        )

    async def links_since(self, since: float) -> list[LinkRecord]:
        """Links issued since a time."""
        rows = await self._query(
            "SELECT * FROM links WHERE issued_at >= ? ORDER BY issued_at", (since,)
        )
        return [LinkRecord(*row) for row in rows]

    async def attempts_since(self, since: float, link_id: str | None = None) -> list[Attempt]:
        """Attempts since a time, oldest first."""
        sql = f"SELECT {_ATTEMPT_COLUMNS} FROM attempts WHERE at >= ?"  # noqa: S608 - constant
        params: tuple[Any, ...] = (since,)
        if link_id is not None:
            sql, params = sql + " AND link_id = ?", (since, link_id)
        rows = await self._query(sql + " ORDER BY at, id", params)
        return [_attempt(row) for row in rows]

    async def prune(self, before: float) -> int:
        """Drop old audit rows, expired replies and counts of long-dead links."""
        now = self._clock()

        def work(db: sqlite3.Connection) -> int:
            with _write(db):
                start = db.total_changes
                db.execute("DELETE FROM attempts WHERE at < ?", (before,))
                db.execute("DELETE FROM links WHERE issued_at < ?", (before,))
                db.execute("DELETE FROM revoked WHERE at < ?", (min(before, now - REVOKED_KEEP),))
                db.execute("DELETE FROM usage WHERE until < ?", (now,))
                db.execute("DELETE FROM replies WHERE expires_at < ?", (now,))
                db.execute("DELETE FROM pickup_codes WHERE expires_at < ?", (now,))
                return db.total_changes - start

        return await self._run(work)

    # --- pick-up codes (bot.pickup.PickupCodes) ------------------------------------------------

    async def put_code(self, code: str, token: str, link_id: str, expires_at: float) -> bool:
        """Store a code unless it is live already."""

        def work(db: sqlite3.Connection) -> bool:
            with _write(db):
                row = db.execute(
                    "SELECT 1 FROM pickup_codes WHERE code = ? AND expires_at > ?",
                    (code, self._clock()),
                ).fetchone()
                if row:
                    return False
                db.execute(
                    "INSERT OR REPLACE INTO pickup_codes VALUES (?, ?, ?, ?)",
                    (code, token, link_id, expires_at),
                )
                return True

        return await self._run(work)

    async def resolve_code(self, code: str) -> tuple[str, str] | None:
        """The live code's token and link id."""
        rows = await self._query(
            "SELECT token, link_id FROM pickup_codes WHERE code = ? AND expires_at > ?",
            (code, self._clock()),
        )
        return (str(rows[0][0]), str(rows[0][1])) if rows else None

    async def drop_code(self, code: str) -> None:
        """Forget a code."""
        await self._execute("DELETE FROM pickup_codes WHERE code = ?", (code,))

    async def _execute(self, sql: str, params: tuple[Any, ...]) -> None:
        await self._run(lambda db: db.execute(sql, params).close())

    async def _query(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        return await self._run(lambda db: db.execute(sql, params).fetchall())
