"""SQLite's tables: the schema, the columns added since, and the health probe that checks them."""

from __future__ import annotations

import secrets
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from bot.errors import StoreUnavailable
from bot.state.base import Attempt
from bot.state.sqlite_thread import write as _write

MIN_FREE_BYTES = 1024 * 1024  # below this the next WAL growth or checkpoint may fail: unhealthy
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
CREATE TABLE IF NOT EXISTS counts (
    link_id TEXT PRIMARY KEY, state TEXT NOT NULL, until REAL NOT NULL);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, outcome TEXT NOT NULL, link_id TEXT NOT NULL,
    file TEXT NOT NULL, ip TEXT NOT NULL, user_agent TEXT NOT NULL, range TEXT NOT NULL,
    status INTEGER NOT NULL, bytes_sent INTEGER NOT NULL, complete INTEGER NOT NULL,
    counted INTEGER NOT NULL, method TEXT NOT NULL DEFAULT 'GET',
    count INTEGER NOT NULL DEFAULT 1, uid TEXT);
CREATE INDEX IF NOT EXISTS attempts_by_time ON attempts (at);
CREATE INDEX IF NOT EXISTS attempts_by_link ON attempts (link_id);
CREATE TABLE IF NOT EXISTS health (id INTEGER PRIMARY KEY, nonce TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS pushes (
    key TEXT PRIMARY KEY, digest TEXT NOT NULL, expires_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS pushes_by_expiry ON pushes (expires_at);
CREATE TABLE IF NOT EXISTS pickup_codes (
    code TEXT PRIMARY KEY, token TEXT NOT NULL, link_id TEXT NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS owner (name TEXT PRIMARY KEY, value TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS custom_sends (
    key TEXT PRIMARY KEY, openid TEXT NOT NULL, quota TEXT NOT NULL, at REAL NOT NULL,
    until REAL NOT NULL);
CREATE INDEX IF NOT EXISTS custom_sends_by_openid ON custom_sends (openid, quota, at);
CREATE TABLE IF NOT EXISTS media_ids (
    name TEXT PRIMARY KEY, media_id TEXT NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS wrong_logins (who TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS wrong_logins_by_who ON wrong_logins (who, at);
CREATE TABLE IF NOT EXISTS wrong_codes (
    guesser TEXT NOT NULL, bucket INTEGER NOT NULL, n INTEGER NOT NULL, until REAL NOT NULL,
    PRIMARY KEY (guesser, bucket));
"""
ATTEMPT_COLUMNS = (
    "at, outcome, link_id, file, ip, user_agent, range, status, bytes_sent, complete, counted,"
    " method, count, uid"
)
ATTEMPT_VALUES = ", ".join("?" * len(ATTEMPT_COLUMNS.split(", ")))
# Columns added to attempts after its first release, added to older files on open.
ADDED_COLUMNS = {
    "method": "TEXT NOT NULL DEFAULT 'GET'",  # #9
    "count": "INTEGER NOT NULL DEFAULT 1",  # #10, the audit cap
    "uid": "TEXT",  # #19, a retried batch of rows is written once
}
# After the columns: a row written again under its uid is ignored (rows without one never clash).
UID_INDEX = (
    "CREATE UNIQUE INDEX IF NOT EXISTS attempts_by_uid ON attempts (uid) WHERE uid IS NOT NULL"
)


def attempt_row(a: Attempt) -> tuple[Any, ...]:
    """An attempt as the values of ATTEMPT_COLUMNS."""
    return (
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
        a.method,
        a.count,
        a.uid or None,
    )


def attempt_of(row: tuple[Any, ...]) -> Attempt:
    fields = dict(zip(ATTEMPT_COLUMNS.replace(" ", "").split(","), row, strict=True))
    fields["complete"], fields["counted"] = bool(fields["complete"]), bool(fields["counted"])
    fields["uid"] = fields["uid"] or ""
    return Attempt(**fields)


def migrate(db: sqlite3.Connection) -> None:
    """Within a write transaction: create what is missing, add the columns older files lack."""
    for statement in SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)
    columns = {row[1] for row in db.execute("PRAGMA table_info(attempts)")}
    for name, kind in ADDED_COLUMNS.items():
        if name not in columns:  # a file from before that column
            db.execute(f"ALTER TABLE attempts ADD COLUMN {name} {kind}")
    db.execute(UID_INDEX)


def probe(db: sqlite3.Connection, path: Path, now: float) -> bool:
    """Write a nonce, then read it back (and every table's newest row) through a new connection."""
    if db.in_transaction:  # queued in a batch: undone, then rerun alone (see sqlite_thread)
        raise StoreUnavailable("the health probe commits on its own")
    nonce = secrets.token_hex(8)
    with _write(db):
        db.execute("INSERT OR REPLACE INTO health VALUES (1, ?, ?)", (nonce, now))
    free = shutil.disk_usage(path.parent).free
    if free < MIN_FREE_BYTES:
        raise StoreUnavailable(f"sqlite {path}: disk full ({free:,} bytes free)")
    fresh = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=1)
    try:
        (got,) = fresh.execute("SELECT nonce FROM health WHERE id = 1").fetchone() or ("",)
        if got != nonce:
            raise StoreUnavailable(f"sqlite {path}: a write did not read back (file replaced?)")
        for table, columns in TABLES.items():
            found = {row[1] for row in fresh.execute(f"PRAGMA table_info({table})")}
            if not columns <= found:
                raise StoreUnavailable(f"sqlite {path}: table {table} lacks {columns - found}")
            fresh.execute(f"SELECT * FROM {table} ORDER BY rowid DESC LIMIT 1").fetchall()  # noqa: S608 - our table names
    finally:
        fresh.close()
    return True


def _tables() -> dict[str, set[str]]:
    """Every table of SCHEMA and its columns."""
    memory = sqlite3.connect(":memory:")
    try:
        memory.executescript(SCHEMA)
        names = [
            row[0] for row in memory.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        return {n: {row[1] for row in memory.execute(f"PRAGMA table_info({n})")} for n in names}
    finally:
        memory.close()


TABLES = _tables()
