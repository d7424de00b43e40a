"""SQLite's queries shared by several store methods, each run inside the caller's transaction."""

from __future__ import annotations

import sqlite3

from bot.state import coverage
from bot.state.base import (
    QUOTA_WINDOW,
    SENT_KEEP,
    CodeTaken,
    FirstAnswer,
    Fresh,
    Known,
    LinkRecord,
    OverQuota,
    PushClaimed,
    Remembered,
    Replayed,
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


def seen_push(
    db: sqlite3.Connection, key: str, digest: str, until: float, now: float
) -> str | None:
    """Within a write transaction: the digest remembered for ``key``, else remember ``digest``."""
    db.execute("DELETE FROM pushes WHERE expires_at <= ?", (now,))
    row = db.execute("SELECT digest FROM pushes WHERE key = ?", (key,)).fetchone()
    if row:
        return str(row[0])
    db.execute("INSERT INTO pushes VALUES (?, ?, ?)", (key, digest, until))
    return None


def answer_rows(db: sqlite3.Connection, first: FirstAnswer, now: float) -> PushClaimed:
    """Within a write transaction: ``Store.answer_push``, in as few statements as it takes.

    The replay record and the claim are each one upsert that only replaces an expired row; a
    live one (rowcount 0) is then read. Expired replay records are deleted by the caller.
    """
    seen = first.seen
    if seen is not None:
        taken = db.execute(
            "INSERT INTO pushes VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE"
            " SET digest = excluded.digest, expires_at = excluded.expires_at"
            " WHERE pushes.expires_at <= ?",
            (seen.key, seen.digest, now + seen.ttl, now),
        ).rowcount
        if not taken:
            (digest,) = db.execute(
                "SELECT digest FROM pushes WHERE key = ?", (seen.key,)
            ).fetchone()
            if digest != seen.digest:
                return Replayed(str(digest))
    for code in first.codes:
        live = db.execute(
            "SELECT 1 FROM pickup_codes WHERE code = ? AND expires_at > ?", (code.code, now)
        ).fetchone()
        if live:
            return CodeTaken(code.code)
    until = now + first.ttl
    claimed = db.execute(
        "INSERT INTO replies VALUES (?, 1, ?, ?) ON CONFLICT (key) DO UPDATE"
        " SET done = excluded.done, text = excluded.text, expires_at = excluded.expires_at"
        " WHERE replies.expires_at <= ?",
        (first.key, first.text, until, now),
    ).rowcount
    if not claimed:
        known = known_reply(db, first.key, now)
        if known is not None:
            return Known(known)
    if first.links:
        retry_at = record_link_row(db, first.links[0], first.per_hour)
        if retry_at is not None:
            put_reply(db, first.key, Remembered(done=False), until)
            return OverQuota(retry_at)
        for link in first.links[1:]:
            record_link_row(db, link, 0)
    if first.codes:
        db.executemany(
            "INSERT OR REPLACE INTO pickup_codes VALUES (?, ?, ?, ?)",
            [(c.code, c.token, c.link_id, c.expires_at) for c in first.codes],
        )
    return Fresh()
