"""SQLite's pick-up codes (``bot.state.base.PickupCodes``): codes, and wrong codes counted per
guesser and server-wide in buckets (table ``wrong_codes``), shared by every worker; and the
owner's wrong passwords (table ``wrong_logins``, ``OwnerPassword.wrong_login``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from bot.state.guesses import (
    GUESS_BUCKETS,
    CodeFound,
    CodeWrong,
    GuessLimits,
    Tried,
    guess_buckets,
    guess_refusal,
)
from bot.state.sqlite_thread import write as _write

T = TypeVar("T")
EVERYONE = "*"  # the server-wide row of a bucket (no address is written so)


def try_code_row(
    db: sqlite3.Connection, code: str, guesser: str, limits: GuessLimits, now: float
) -> Tried:
    """``PickupCodes.try_code`` within the caller's write transaction."""
    buckets, width = guess_buckets(now, limits.window)
    rows = db.execute(
        "SELECT guesser, bucket, n FROM wrong_codes"
        " WHERE guesser IN (?, ?) AND bucket BETWEEN ? AND ?",
        (guesser, EVERYONE, buckets[0], buckets[-1]),
    ).fetchall()
    mine = {bucket: n for who, bucket, n in rows if who == guesser}
    everyone = sum(n for who, _, n in rows if who == EVERYONE)
    refused = guess_refusal(buckets, [mine.get(b, 0) for b in buckets], everyone, limits, width)
    if refused is not None:
        return refused
    if code:
        row = db.execute(
            "SELECT token, link_id FROM pickup_codes WHERE code = ? AND expires_at > ?",
            (code, now),
        ).fetchone()
        if row:
            return CodeFound(str(row[0]), str(row[1]))
    until = (buckets[-1] + GUESS_BUCKETS) * width  # when this bucket leaves every window
    db.executemany(
        "INSERT INTO wrong_codes VALUES (?, ?, 1, ?)"
        " ON CONFLICT (guesser, bucket) DO UPDATE SET n = n + 1",
        [(guesser, buckets[-1], until), (EVERYONE, buckets[-1], until)],
    )
    return CodeWrong()


class SqliteCodes:
    """The pick-up code methods of ``SqliteStore``."""

    _clock: Callable[[], float]

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError

    async def _query(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        raise NotImplementedError

    async def _execute(self, sql: str, params: tuple[Any, ...]) -> None:
        raise NotImplementedError

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

    async def try_code(self, code: str, guesser: str, limits: GuessLimits) -> Tried:
        """Look a code up for a guesser, unless refused; a wrong one counted (one transaction)."""
        now = self._clock()

        def work(db: sqlite3.Connection) -> Tried:
            with _write(db):
                return try_code_row(db, code, guesser, limits, now)

        return await self._run(work)

    async def drop_code(self, code: str) -> None:
        """Forget a code."""
        await self._execute("DELETE FROM pickup_codes WHERE code = ?", (code,))

    async def wrong_login(self, address: str, at: float, keep: float) -> None:
        """Note a wrong password against ``address`` and the server; forget notes past ``keep``."""

        def work(db: sqlite3.Connection) -> None:
            with _write(db):
                db.executemany(
                    "INSERT INTO wrong_logins VALUES (?, ?)", [(address, at), (EVERYONE, at)]
                )
                # Small: the server-wide limit caps the rows an hour ([limits]).
                db.execute("DELETE FROM wrong_logins WHERE at < ?", (at - keep,))

        await self._run(work)

    async def wrong_logins(self, address: str, nth: int, nth_server: int) -> tuple[float, float]:
        """The ``nth`` newest wrong password's time from ``address``, and on the server."""

        def mark(db: sqlite3.Connection, who: str, n: int) -> float:
            row = db.execute(
                "SELECT at FROM wrong_logins WHERE who = ? ORDER BY at DESC LIMIT 1 OFFSET ?",
                (who, max(n - 1, 0)),
            ).fetchone()
            return float(row[0]) if row and n > 0 else 0.0

        return await self._run(lambda db: (mark(db, address, nth), mark(db, EVERYONE, nth_server)))
