"""SQLite state: one file in WAL mode, every call on one dedicated thread, safe across workers."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from loguru import logger

from bot.errors import StoreUnavailable
from bot.state import coverage
from bot.state.base import (
    REVOKED_KEEP,
    Attempt,
    Claim,
    Claimed,
    FirstAnswer,
    Fresh,
    Grant,
    Known,
    LinkRecord,
    OverQuota,
    PushClaimed,
    Remembered,
    SendClaim,
    SendQuota,
    Usage,
)
from bot.state.sqlite_codes import SqliteCodes
from bot.state.sqlite_rows import (
    answer_rows,
    claim_send_row,
    is_revoked,
    known_reply,
    put_reply,
    read_counts,
    record_link_row,
    save_counts,
    seen_push,
)
from bot.state.sqlite_schema import (
    ATTEMPT_COLUMNS,
    ATTEMPT_VALUES,
    attempt_of,
    attempt_row,
    migrate,
    probe,
)
from bot.state.sqlite_thread import StoreThread
from bot.state.sqlite_thread import write as _write

T = TypeVar("T")
BUSY_TIMEOUT_MS = 2000
PURGE_EVERY = 1.0  # seconds between deletions of expired replay records by answer_push


class SqliteStore(SqliteCodes):
    """The default store: ``sqlite:///state/bot.db``."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._thread = StoreThread(self._connect, path)
        self._opened = False  # once opened, a missing file is a fault, never created afresh
        self._pushes_purged = 0.0  # when answer_push last deleted expired replay records

    @classmethod
    def from_url(cls, url: str, *, clock: Callable[[], float] = time.time) -> SqliteStore:
        """The store of a ``sqlite:///PATH`` URL (``sqlite:////abs/path`` is absolute)."""
        return cls(Path(url.removeprefix("sqlite:///")), clock=clock)

    def _connect(self) -> sqlite3.Connection:
        if self._opened:  # mode=rw: a deleted database stays missing (its counts are not reset)
            target, uri = f"{self.path.absolute().as_uri()}?mode=rw", True
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            target, uri = str(self.path), False
        db = sqlite3.connect(target, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, uri=uri)
        try:
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            with _write(db):
                migrate(db)
        except BaseException:
            db.close()
            raise
        self._opened = True
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
        """True when the database takes a write that reads back from the file, with room to grow.

        StoreUnavailable otherwise (full, deleted, replaced, corrupt, read-only, locked); the
        connection is then reopened by the next call, so the store recovers once fixed.
        """
        return await self._run(lambda db: probe(db, self.path, self._clock()))

    async def close(self) -> None:
        """Close the connection and stop the thread."""
        try:
            await self._thread.close()
        except (sqlite3.Error, TimeoutError) as exc:
            logger.error("sqlite {}: closing: {!r}", self.path, exc)

    async def claim_message(self, key: str, ttl: float) -> Remembered | None:
        """None when first; else the remembered (maybe pending) reply."""

        def work(db: sqlite3.Connection) -> Remembered | None:
            now = self._clock()
            with _write(db):
                known = known_reply(db, key, now)
                if known is None:
                    put_reply(db, key, Remembered(done=False), now + ttl)
                return known

        return await self._run(work)

    async def save_reply(self, key: str, text: str | None, ttl: float) -> None:
        """Remember the answer."""
        until = self._clock() + ttl
        await self._run(lambda db: put_reply(db, key, Remembered(done=True, text=text), until))

    async def read_reply(self, key: str) -> Remembered | None:
        """The remembered reply, if any."""
        now = self._clock()
        return await self._run(lambda db: known_reply(db, key, now))

    async def record_link(self, link: LinkRecord, per_hour: int) -> float | None:
        """Record the link unless the follower's hourly quota is used up."""

        def work(db: sqlite3.Connection) -> float | None:
            with _write(db):
                return record_link_row(db, link, per_hour)

        return await self._run(work)

    async def claim_and_record(
        self, key: str, ttl: float, text: str | None, link: LinkRecord | None, per_hour: int
    ) -> Claimed:
        """Claim, check the quota, record the link and remember the answer: one transaction."""

        def work(db: sqlite3.Connection) -> Claimed:
            now = self._clock()
            with _write(db):
                known = known_reply(db, key, now)
                if known is not None:
                    return Known(known)
                retry_at = None if link is None else record_link_row(db, link, per_hour)
                if retry_at is not None:
                    put_reply(db, key, Remembered(done=False), now + ttl)
                    return OverQuota(retry_at)
                put_reply(db, key, Remembered(done=True, text=text), now + ttl)
                return Fresh()

        return await self._run(work)

    async def answer_push(self, first: FirstAnswer) -> PushClaimed:
        """The replay record, claim, quota, links, codes and answer: one transaction."""

        def work(db: sqlite3.Connection) -> PushClaimed:
            now = self._clock()
            with _write(db):
                if now - self._pushes_purged >= PURGE_EVERY:
                    db.execute("DELETE FROM pushes WHERE expires_at <= ?", (now,))
                    self._pushes_purged = now
                return answer_rows(db, first, now)

        return await self._run(work)

    async def remember_push(self, key: str, digest: str, ttl: float) -> str | None:
        """Remember a callback's body digest under its signed triple; the known one if any."""

        def work(db: sqlite3.Connection) -> str | None:
            now = self._clock()
            with _write(db):
                return seen_push(db, key, digest, now + ttl, now)

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
        now = self._clock()

        def work(db: sqlite3.Connection) -> Usage:
            revoked = is_revoked(db, link_id)
            counts = read_counts(db, link_id)
            coverage.lapse(counts, now)
            return Usage(revoked, len(counts.leases), counts.copies(), counts.sent)

        return await self._run(work)

    async def claim(self, claim: Claim) -> Grant:
        """Take a lease if the link's bounds allow it."""
        now = self._clock()
        c = claim

        def work(db: sqlite3.Connection) -> Grant:
            with _write(db):
                if is_revoked(db, c.link_id):
                    return Grant.REVOKED
                counts = read_counts(db, c.link_id)
                until = now + c.lease_seconds
                grant = coverage.admit(
                    counts,
                    c.lease_id,
                    c.start,
                    c.end,
                    c.size,
                    c.limit,
                    until,
                    now,
                    c.handed,
                    c.noted,
                )
                if grant is not Grant.GRANTED:
                    return grant
                save_counts(db, c.link_id, counts, now + max(c.keep, c.lease_seconds))
                return Grant.GRANTED

        return await self._run(work)

    async def renew(self, link_id: str, lease_id: str, sent: int, lease_seconds: float) -> bool:
        """Extend a lease."""
        now = self._clock()

        def work(db: sqlite3.Connection) -> bool:
            with _write(db):
                counts = read_counts(db, link_id)
                alive = coverage.renew(counts, lease_id, sent, now + lease_seconds, now)
                save_counts(db, link_id, counts, now + lease_seconds)
                return alive

        return await self._run(work)

    async def release(self, link_id: str, lease_id: str, sent: int) -> bool:
        """End a lease; True when it completed a copy."""
        now = self._clock()

        def work(db: sqlite3.Connection) -> bool:
            with _write(db):
                counts = read_counts(db, link_id)
                counted = coverage.release(counts, lease_id, sent, now)
                save_counts(db, link_id, counts, now)
                return counted

        return await self._run(work)

    async def record_attempt(self, attempt: Attempt) -> None:
        """Append an attempt."""
        await self.record_attempts([attempt])

    async def record_attempts(self, attempts: Sequence[Attempt]) -> None:
        """Append attempts in one transaction."""
        rows = [attempt_row(a) for a in attempts]

        def work(db: sqlite3.Connection) -> None:
            with _write(db):
                db.executemany(
                    f"INSERT OR IGNORE INTO attempts ({ATTEMPT_COLUMNS}) VALUES ({ATTEMPT_VALUES})",  # noqa: S608 - constant
                    rows,
                )

        await self._run(work)

    async def links_since(self, since: float) -> list[LinkRecord]:
        """Links issued since a time."""
        rows = await self._query(
            "SELECT * FROM links WHERE issued_at >= ? ORDER BY issued_at", (since,)
        )
        return [LinkRecord(*row) for row in rows]

    async def attempts_since(self, since: float, link_id: str | None = None) -> list[Attempt]:
        """Attempts since a time, oldest first."""
        sql = f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE at >= ?"  # noqa: S608 - constant
        params: tuple[Any, ...] = (since,)
        if link_id is not None:
            sql, params = sql + " AND link_id = ?", (since, link_id)
        rows = await self._query(sql + " ORDER BY at, id", params)
        return [attempt_of(row) for row in rows]

    async def prune(self, before: float) -> int:
        """Drop old audit rows, expired replies and counts of long-dead links."""
        now = self._clock()

        def work(db: sqlite3.Connection) -> int:
            with _write(db):
                start = db.total_changes
                db.execute("DELETE FROM attempts WHERE at < ?", (before,))
                db.execute("DELETE FROM links WHERE issued_at < ?", (before,))
                db.execute("DELETE FROM revoked WHERE at < ?", (min(before, now - REVOKED_KEEP),))
                db.execute("DELETE FROM counts WHERE until < ?", (now,))
                db.execute("DELETE FROM replies WHERE expires_at < ?", (now,))
                db.execute("DELETE FROM pushes WHERE expires_at < ?", (now,))
                db.execute("DELETE FROM pickup_codes WHERE expires_at < ?", (now,))
                db.execute("DELETE FROM custom_sends WHERE until < ?", (now,))
                db.execute("DELETE FROM media_ids WHERE expires_at < ?", (now,))
                db.execute("DELETE FROM wrong_codes WHERE until < ?", (now,))
                return db.total_changes - start

        return await self._run(work)

    # --- 客服 sends and media ids (bot.wechat.api.late, bot.wechat.api.media) ----------------

    async def claim_send(self, key: str, ttl: float, openid: str, quota: SendQuota) -> SendClaim:
        """Claim the one 客服 send of a message's reply, within the follower's quota."""

        def work(db: sqlite3.Connection) -> SendClaim:
            now = self._clock()
            with _write(db):
                return claim_send_row(db, key, openid, quota, now, now + ttl)

        return await self._run(work)

    async def media_id(self, name: str) -> str | None:
        """The kept media_id of an image, unless expired."""
        rows = await self._query(
            "SELECT media_id FROM media_ids WHERE name = ? AND expires_at > ?",
            (name, self._clock()),
        )
        return str(rows[0][0]) if rows else None

    async def keep_media_id(self, name: str, media_id: str, expires_at: float) -> None:
        """Keep an image's media_id until it expires."""
        await self._execute(
            "INSERT OR REPLACE INTO media_ids VALUES (?, ?, ?)", (name, media_id, expires_at)
        )

    # --- the owner's page password (bot.owner.password) ----------------------------------------

    async def owner_password(self) -> str | None:
        """The stored hash, if set."""
        rows = await self._query("SELECT value FROM owner WHERE name = 'password'", ())
        return str(rows[0][0]) if rows else None

    async def set_owner_password(self, hashed: str | None) -> None:
        """Store or forget the hash."""
        if hashed is None:
            await self._execute("DELETE FROM owner WHERE name = 'password'", ())
        else:
            await self._execute(
                "INSERT OR REPLACE INTO owner VALUES ('password', ?, ?)", (hashed, self._clock())
            )

    async def _execute(self, sql: str, params: tuple[Any, ...]) -> None:
        await self._run(lambda db: db.execute(sql, params).close())

    async def _query(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        return await self._run(lambda db: db.execute(sql, params).fetchall())
