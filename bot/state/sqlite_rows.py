"""SQLite's queries shared by several store methods, each run inside the caller's transaction."""

from __future__ import annotations

import sqlite3

from bot.state import coverage
from bot.state.base import (
    QUOTA_WINDOW,
    SENT_KEEP,
    LinkRecord,
    Remembered,
    SendClaim,
    SendQuota,
)


def known_reply(db: sqlite3.Connection, key: str, now: float) -> Remembered | None:
    row = db.execute(
        "SELECT done, text FROM replies WHERE key = ? AND expires_at > ?", (key, now)
    ).fetchone()
    return Remembered(bool(row[0]), row[1]) if row else None


def put_reply(db: sqlite3.Connection, key: str, reply: Remembered, until: float) -> None:
    db.execute(
        "INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?)",
        (key, int(reply.done), reply.text, until),
    )


def record_link_row(db: sqlite3.Connection, link: LinkRecord, per_hour: int) -> float | None:
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


def is_revoked(db: sqlite3.Connection, link_id: str) -> bool:
    return bool(db.execute("SELECT 1 FROM revoked WHERE link_id = ?", (link_id,)).fetchone())


def read_counts(db: sqlite3.Connection, link_id: str) -> coverage.LinkCounts:
    row = db.execute("SELECT state FROM counts WHERE link_id = ?", (link_id,)).fetchone()
    return coverage.LinkCounts.from_json(row[0] if row else None)


def save_counts(
    db: sqlite3.Connection, link_id: str, counts: coverage.LinkCounts, until: float
) -> None:
    db.execute(
        "INSERT INTO counts VALUES (?, ?, ?) ON CONFLICT (link_id) DO UPDATE"
        " SET state = excluded.state, until = max(until, excluded.until)",
        (link_id, counts.to_json(), until),
    )


def claim_send_row(
    db: sqlite3.Connection, key: str, openid: str, quota: SendQuota, now: float, until: float
) -> SendClaim:
    """Within a write transaction: claim message ``key``'s 客服 send (see ``LateSends``)."""
    if db.execute("SELECT 1 FROM custom_sends WHERE key = ? AND until > ?", (key, now)).fetchone():
        return SendClaim.SENT
    (sent,) = db.execute(
        "SELECT count(*) FROM custom_sends WHERE openid = ? AND quota = ? AND at > ?",
        (openid, quota.name, now - quota.window),
    ).fetchone()
    if sent >= quota.limit:
        return SendClaim.OVER_QUOTA
    keep = now + max(quota.window, SENT_KEEP)
    db.execute(
        "INSERT OR REPLACE INTO custom_sends VALUES (?, ?, ?, ?, ?)",
        (key, openid, quota.name, now, keep),
    )
    put_reply(db, key, Remembered(done=True), until)
    return SendClaim.GRANTED
