"""Per-link download counting by bytes delivered, and claims as leases (pure; both stores use it).

A link's counts are the byte ranges it has sent, as pieces ``(start, end, depth)``: ``depth`` is
how many times those bytes went out. A download counts when the pieces cover the whole file: the
number of whole copies is the smallest depth over the file. A request is admitted with a lease
on the span it will send; while leases run, their whole spans count as if sent (the bound holds
for requests in flight too). For ``max_downloads = N`` a request is refused when, with it,

- N whole copies have already been sent, or
- everything sent and in flight could make more than N whole copies, or
- the bytes sent and in flight would pass (N + 1) x the file's size (the spare copy absorbs
  restarts and download managers' overlapping connections).

A lease lives until ``until``; the sending side renews it with the bytes sent so far. A lease
that lapses (its worker died, its answer never went out) adds what it last reported. A span
handed to another server (nginx) is ``handed``: it reports only when it ends, so until then it
may yet end short (a new request is held, not refused), and if it lapses it adds its whole span.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field

from bot.state.base import Grant

MAX_PIECES = 512  # a link pieced together from more ranges than this is refused (an attack)
Piece = tuple[int, int, int]


@dataclass(slots=True)
class Lease:
    """A request in flight: the span it may send, what it reported sent, until when it holds."""

    start: int
    end: int
    until: float
    sent: int = 0
    handed: bool = False  # sent by another server (nginx), which reports only at the end


@dataclass(slots=True)
class LinkCounts:
    """What one use-limited link has sent, and its leases."""

    size: int = 0
    sent: int = 0
    pieces: list[Piece] = field(default_factory=list)
    leases: dict[str, Lease] = field(default_factory=dict)

    def copies(self) -> int:
        """Whole copies of the file assembled from every byte sent so far."""
        return whole_copies(self.pieces, self.size)

    def to_json(self) -> str:
        """The counts as one JSON value (a SQLite column, a Redis string)."""
        leases = {k: _lease_row(v) for k, v in self.leases.items()}
        return json.dumps([self.size, self.sent, self.pieces, leases], separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | None) -> LinkCounts:
        """Counts from ``to_json`` (None: a link that never sent anything)."""
        if not text:
            return cls()
        size, sent, pieces, leases = json.loads(text)
        return cls(
            size,
            sent,
            [(int(a), int(b), int(d)) for a, b, d in pieces],
            {k: _lease_of(row) for k, row in leases.items()},
        )


def _lease_row(lease: Lease) -> list[float]:
    row = [lease.start, lease.end, lease.until, lease.sent]
    return [*row, 1] if lease.handed else row  # rows stored before #19's hand-over have four


def _lease_of(row: list[float]) -> Lease:
    start, end, until, sent, *handed = row
    return Lease(int(start), int(end), float(until), int(sent), bool(handed and handed[0]))


def add_piece(pieces: list[Piece], start: int, end: int) -> list[Piece]:
    """The pieces with ``[start, end)`` sent once more (sorted, disjoint, neighbours merged)."""
    if end <= start:
        return list(pieces)
    cuts = sorted({start, end, *(p[0] for p in pieces), *(p[1] for p in pieces)})
    out: list[Piece] = []
    for a, b in itertools.pairwise(cuts):
        depth = sum(d for s, e, d in pieces if s <= a and b <= e) + (start <= a and b <= end)
        if not depth:
            continue
        if out and out[-1][1] == a and out[-1][2] == depth:
            out[-1] = (out[-1][0], b, depth)
        else:
            out.append((a, b, depth))
    return out


def whole_copies(pieces: list[Piece], size: int) -> int:
    """The smallest depth over ``[0, size)``: 0 unless every byte was sent."""
    if size <= 0:
        return 0
    at, least = 0, None
    for start, end, depth in pieces:
        if start > at:
            return 0
        if end > at:
            least = depth if least is None else min(least, depth)
            at = end
        if at >= size:
            return least or 0
    return 0


def lapse(counts: LinkCounts, now: float) -> None:
    """Drop leases past their time; what each last reported counts as sent."""
    for lease_id in [k for k, v in counts.leases.items() if v.until <= now]:
        lease = counts.leases.pop(lease_id)
        if lease.handed:  # nginx never said how it ended: the whole span counts
            lease.sent = lease.end - lease.start
        _settle(counts, lease)


def _settle(counts: LinkCounts, lease: Lease) -> None:
    sent = max(0, min(lease.sent, lease.end - lease.start))
    counts.sent += sent
    counts.pieces = add_piece(counts.pieces, lease.start, lease.start + sent)


def admit(
    counts: LinkCounts,
    lease_id: str,
    start: int,
    end: int,
    size: int,
    limit: int,
    until: float,
    now: float,
    handed: bool = False,
    noted: bool = False,
) -> Grant:
    """Take a lease on ``[start, end)`` if the bounds above allow it (GRANTED); EXHAUSTED when
    they do not even if every lease ended now; HELD when only leases in flight stand in the way
    (a running download, or a dead worker's until it lapses: either may yet end short).

    ``handed``: another server (nginx) sends the span and reports once, when it ends.
    ``noted``: the span is noted as sent already (the bot sends it in one piece): if the lease
    lapses the whole span counts, as after a final ``renew``.
    """
    lapse(counts, now)
    counts.size = size
    if counts.copies() >= limit:
        return Grant.EXHAUSTED
    if not _fits(counts, start, end, limit, whole_leases=True):
        held = counts.leases and _fits(counts, start, end, limit, whole_leases=False)
        return Grant.HELD if held else Grant.EXHAUSTED
    sent = end - start if noted else 0
    counts.leases[lease_id] = Lease(start, end, until, sent, handed=handed)
    return Grant.GRANTED


def _fits(counts: LinkCounts, start: int, end: int, limit: int, *, whole_leases: bool) -> bool:
    """The bounds, with each lease counted whole or only as far as it reported."""
    projected, planned = counts.pieces, counts.sent + (end - start)
    for lease in counts.leases.values():
        upto = lease.end if whole_leases else lease.start + min(lease.sent, lease.end - lease.start)
        projected = add_piece(projected, lease.start, upto)
        planned += upto - lease.start
    projected = add_piece(projected, start, end)
    size = counts.size
    return (
        whole_copies(projected, size) <= limit
        and planned <= (limit + 1) * size
        and len(projected) <= MAX_PIECES
    )


def renew(counts: LinkCounts, lease_id: str, sent: int, until: float, now: float) -> bool:
    """Extend a running lease and note its progress; False when it has lapsed (or never was)."""
    lapse(counts, now)
    lease = counts.leases.get(lease_id)
    if lease is None:
        return False
    lease.sent, lease.until = max(lease.sent, sent), max(lease.until, until)
    return True


def release(counts: LinkCounts, lease_id: str, sent: int, now: float) -> bool:
    """End a lease with ``sent`` bytes delivered; True when that completed one more copy."""
    before = counts.copies()
    lease = counts.leases.pop(lease_id, None)
    if lease is not None:
        lease.sent = sent
        _settle(counts, lease)
    lapse(counts, now)
    return counts.copies() > before
