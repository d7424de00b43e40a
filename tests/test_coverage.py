"""Counting by bytes delivered and leases (pure): the bounds of issue #9, table by table."""

from __future__ import annotations

import pytest

from bot.state import Grant
from bot.state.coverage import (
    LinkCounts,
    Piece,
    add_piece,
    admit,
    release,
    renew,
    whole_copies,
)

SIZE = 100


@pytest.mark.parametrize(
    ("pieces", "add", "expected"),
    [
        pytest.param([], (0, 10), [(0, 10, 1)], id="first"),
        pytest.param([(0, 10, 1)], (10, 20), [(0, 20, 1)], id="adjacent-merged"),
        pytest.param([(0, 10, 1)], (5, 15), [(0, 5, 1), (5, 10, 2), (10, 15, 1)], id="overlap"),
        pytest.param([(0, 10, 1)], (20, 30), [(0, 10, 1), (20, 30, 1)], id="gap"),
        pytest.param([(0, 10, 1)], (3, 3), [(0, 10, 1)], id="empty"),
    ],
)
def test_add_piece(pieces: list[Piece], add: tuple[int, int], expected: list[Piece]) -> None:
    assert add_piece(pieces, *add) == expected


@pytest.mark.parametrize(
    ("pieces", "copies"),
    [
        pytest.param([], 0, id="nothing"),
        pytest.param([(0, 100, 1)], 1, id="whole"),
        pytest.param([(1, 100, 1)], 0, id="first-byte-missing"),
        pytest.param([(0, 50, 2), (50, 100, 1)], 1, id="restart-from-0"),
        pytest.param([(0, 50, 1), (60, 100, 2)], 0, id="hole"),
        pytest.param([(0, 100, 2)], 2, id="two"),
    ],
)
def test_whole_copies(pieces: list[Piece], copies: int) -> None:
    assert whole_copies(pieces, SIZE) == copies


def lease(counts: LinkCounts, name: str, start: int, end: int, limit: int = 1) -> bool:
    return admit(counts, name, start, end, SIZE, limit, until=30, now=0) is Grant.GRANTED


def test_five_parallel_whole_gets_one_admitted() -> None:
    counts = LinkCounts()
    assert [lease(counts, f"r{i}", 0, SIZE) for i in range(5)] == [True] + [False] * 4


def test_download_manager_segments_beside_a_whole_get() -> None:
    counts = LinkCounts()
    assert lease(counts, "first", 0, SIZE)
    assert all(lease(counts, f"seg{i}", i * 25, (i + 1) * 25) for i in range(1, 4))
    assert release(counts, "first", 27, now=1) is False  # cut when it reached segment 1
    counted = [release(counts, f"seg{i}", 25, now=1) for i in range(1, 4)]
    assert counted == [False, False, True]
    assert counts.copies() == 1 and counts.sent == 102
    assert not lease(counts, "later", 1, SIZE), "a counted one-use link refuses every range"


def test_slow_get_plus_range_from_1_gives_at_most_one_copy() -> None:
    counts = LinkCounts()
    assert lease(counts, "slow", 0, SIZE)
    assert lease(counts, "range", 1, SIZE)
    assert release(counts, "slow", 3, now=1) is False
    assert release(counts, "range", SIZE - 1, now=1) is True
    assert not lease(counts, "again", 1, SIZE)
    assert counts.sent <= 2 * SIZE


def test_restart_from_zero_after_a_broken_download() -> None:
    counts = LinkCounts()
    assert lease(counts, "a", 0, SIZE) and release(counts, "a", 50, now=1) is False
    assert lease(counts, "b", 0, SIZE) and release(counts, "b", SIZE, now=1) is True


def test_bytes_never_pass_n_plus_one_copies() -> None:
    counts = LinkCounts()
    results = []
    for i in range(4):
        results.append(lease(counts, f"r{i}", 0, SIZE))
        release(counts, f"r{i}", 40, now=1)
    assert results == [True] * 3 + [False]  # 120 bytes sent: another whole copy would pass 200
    assert lease(counts, "resume", 40, SIZE), "a resume still fits within the budget"
    assert release(counts, "resume", 60, now=1) is True
    assert counts.sent == 180 and counts.copies() == 1


def test_probe_never_spends() -> None:
    counts = LinkCounts()
    for i in range(3):
        assert lease(counts, f"p{i}", 0, 1)
        release(counts, f"p{i}", 1, now=1)
    assert counts.copies() == 0 and lease(counts, "real", 0, SIZE)


def test_a_lapsed_lease_frees_the_link_and_keeps_what_it_reported() -> None:
    counts = LinkCounts()
    assert admit(counts, "dead", 0, SIZE, SIZE, 1, until=30, now=0) is Grant.GRANTED
    assert renew(counts, "dead", 40, until=60, now=10)
    assert admit(counts, "early", 0, SIZE, SIZE, 1, until=70, now=59) is Grant.HELD
    assert admit(counts, "after", 0, SIZE, SIZE, 1, until=91, now=61) is Grant.GRANTED
    assert counts.sent == 40 and "dead" not in counts.leases
    assert not renew(counts, "dead", 50, until=100, now=62), "a lapsed lease stays lapsed"


@pytest.mark.parametrize(
    ("reported", "limit", "grant"),
    [
        pytest.param(40, 1, Grant.HELD, id="a-lease-part-way-holds-the-link"),
        pytest.param(SIZE, 1, Grant.EXHAUSTED, id="a-lease-that-noted-its-last-bytes-used-it-up"),
        pytest.param(40, 2, Grant.GRANTED, id="room-beside-it"),
    ],
)
def test_held_while_a_lease_may_yet_end_short_exhausted_when_it_cannot(
    reported: int, limit: int, grant: Grant
) -> None:
    """#19 item 9: 503 while only a lease in flight (a dead worker's) stands in the way."""
    counts = LinkCounts()
    assert admit(counts, "running", 0, SIZE, SIZE, limit, until=30, now=0) is Grant.GRANTED
    assert renew(counts, "running", reported, until=30, now=1)
    assert admit(counts, "second", 0, SIZE, SIZE, limit, until=31, now=1) is grant


def test_a_span_noted_at_its_claim_is_as_one_that_noted_its_last_bytes() -> None:
    """#20: a span the bot sends in one piece is noted whole by its claim (no final renew): a
    second request cannot take the link, a lapse counts it, a release counts what was sent."""
    counts = LinkCounts()
    assert admit(counts, "one", 0, SIZE, SIZE, 1, until=30, now=0, noted=True) is Grant.GRANTED
    assert admit(counts, "second", 0, SIZE, SIZE, 1, until=31, now=1) is Grant.EXHAUSTED
    lapsed = LinkCounts.from_json(counts.to_json())
    assert admit(lapsed, "late", 0, SIZE, SIZE, 1, until=61, now=31) is Grant.EXHAUSTED
    assert lapsed.copies() == 1, "a lapsed noted lease counts its whole span"
    assert not release(counts, "one", 0, now=2), "a file gone before its first byte: nothing"
    assert admit(counts, "again", 0, SIZE, SIZE, 1, until=32, now=2) is Grant.GRANTED


def test_counts_round_trip_as_json() -> None:
    counts = LinkCounts()
    lease(counts, "x", 0, SIZE)
    release(counts, "x", 10, now=1)
    lease(counts, "y", 5, 50)
    assert LinkCounts.from_json(counts.to_json()) == counts
    assert LinkCounts.from_json(None) == LinkCounts()
