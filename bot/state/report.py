"""``bot stats`` and ``bot audit`` as text: pure summaries of links and attempts."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from bot.clock import CHINA
from bot.links import file_ref
from bot.state.base import Attempt, LinkRecord, Usage

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """Seconds in ``90s``, ``30m``, ``12h``, ``7d`` or ``2w``; ValueError otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text.lower())
    if not match:
        raise ValueError(f"{text!r} is not a duration like 30m, 12h, 7d or 2w")
    return int(match.group(1)) * _UNITS[match.group(2)]


@dataclass(slots=True)
class FileStats:
    """One row of ``bot stats``."""

    file: str
    links: int = 0
    followers: set[str] = field(default_factory=set)
    completed: int = 0
    bytes_sent: int = 0
    expired: int = 0


def summarize(
    links: Iterable[LinkRecord], attempts: Iterable[Attempt], files: Iterable[str] = ()
) -> tuple[list[FileStats], int]:
    """Per-file counts, and the bad tokens (which name no file).

    A refusal by a server that did not know the file yet (a rule it had not reloaded) names the
    file by its opaque reference: the link's record, or one of ``files``, gives the name back.
    """
    rows: dict[str, FileStats] = {}
    bad_tokens = 0
    links = list(links)
    named = {link.link_id: link.file for link in links}
    named_by_ref = {file_ref(name): name for name in files}
    for link in links:
        row = rows.setdefault(link.file, FileStats(link.file))
        row.links += 1
        row.followers.add(link.openid)
    for attempt in attempts:
        if attempt.outcome == "bad_token":
            bad_tokens += attempt.count
            continue
        file = named.get(attempt.link_id) or named_by_ref.get(attempt.file, attempt.file)
        if not file:
            continue
        row = rows.setdefault(file, FileStats(file))
        row.completed += attempt.counted
        row.bytes_sent += attempt.bytes_sent
        row.expired += attempt.count if attempt.outcome == "expired" else 0
    return sorted(rows.values(), key=lambda r: r.file), bad_tokens


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(_width(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [row[0] + " " * (widths[0] - _width(row[0]))]
        cells += [" " * (w - _width(c)) + c for c, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def stats_text(rows: list[FileStats], bad_tokens: int) -> str:
    """The per-file table with a total line."""
    header = ["file", "links", "followers", "downloads", "bytes", "expired hits", "bad tokens"]
    body = [
        [
            r.file,
            str(r.links),
            str(len(r.followers)),
            str(r.completed),
            f"{r.bytes_sent:,}",
            str(r.expired),
            "-",
        ]
        for r in rows
    ]
    everyone: set[str] = set().union(*(r.followers for r in rows))
    total = [
        "total",
        str(sum(r.links for r in rows)),
        str(len(everyone)),
        str(sum(r.completed for r in rows)),
        f"{sum(r.bytes_sent for r in rows):,}",
        str(sum(r.expired for r in rows)),
        str(bad_tokens),
    ]
    return _table(header, [*body, total])


def when(ts: float) -> str:
    """A time as the owner reads it (Beijing time)."""
    return datetime.fromtimestamp(ts, CHINA).strftime("%Y-%m-%d %H:%M:%S")


def audit_text(link_id: str, link: LinkRecord | None, usage: Usage, attempts: list[Attempt]) -> str:
    """One link's record and every request for it."""
    if link is None:
        lines = [f"link {link_id}: not in the audit trail (never recorded, or pruned)"]
    else:
        lines = [
            f"link {link_id}: file {link.file!r} keyword {link.keyword!r} for {link.openid}",
            f"issued {when(link.issued_at)}, expires {when(link.expires_at)} (UTC+8)",
        ]
    state = "revoked" if usage.revoked else "not revoked"
    counted = sum(a.counted for a in attempts)
    lines.append(
        f"{state}; complete downloads {counted}, in progress now {usage.active},"
        f" bytes sent {usage.sent:,}"
    )
    if not attempts:
        return "\n".join([*lines, "no requests"])
    header = [
        "time",
        "method",
        "outcome",
        "status",
        "bytes",
        "complete",
        "counted",
        "range",
        "ip",
        "agent",
    ]
    yes = {True: "yes", False: "no"}
    rows = [
        [
            when(a.at),
            a.method,
            a.outcome,
            str(a.status or "-"),
            f"{a.bytes_sent:,}",
            yes[a.complete],
            yes[a.counted],
            a.range or "-",
            a.ip or "-",
            a.user_agent[:40] or "-",
        ]
        for a in attempts
    ]
    return "\n".join([*lines, _table(header, rows)])
