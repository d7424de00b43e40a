"""``parse_range``: the examples of RFC 9110 §14.1.2 and the edges around them (pure)."""

from __future__ import annotations

import pytest

from bot.delivery.ranges import Span, if_range_holds, parse_range, span_for
from bot.errors import MalformedRange, RangeNotSatisfiable

SIZE = 10000  # RFC 9110's examples use a 10000-byte representation


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("bytes=0-499", (0, 500), id="rfc-first-500"),
        pytest.param("bytes=500-999", (500, 1000), id="rfc-second-500"),
        pytest.param("bytes=-500", (9500, 10000), id="rfc-final-500-suffix"),
        pytest.param("bytes=9500-", (9500, 10000), id="rfc-final-500-open"),
        pytest.param("bytes=0-0,-1", (0, 10000), id="rfc-first-and-last-coalesced"),
        pytest.param("bytes= 0-999, 4500-5499, -1000", (0, 10000), id="rfc-several-coalesced"),
        pytest.param("bytes=500-600,601-999", (500, 1000), id="rfc-adjacent"),
        pytest.param("bytes=500-700,601-999", (500, 1000), id="rfc-overlapping"),
        pytest.param("bytes=0-999999", (0, 10000), id="last-pos-clamped"),
        pytest.param("bytes=-20000", (0, 10000), id="suffix-longer-than-file"),
        pytest.param("bytes=9999-9999", (9999, 10000), id="last-byte"),
        pytest.param("BYTES=1-", (1, 10000), id="unit-case-insensitive"),
        pytest.param("bytes=20000-,5-9", (5, 10), id="unsatisfiable-part-dropped"),
        pytest.param("pages=1-2", None, id="other-unit-ignored"),
        pytest.param("bytes", None, id="no-equals-ignored"),
    ],
)
def test_parse_range(header: str, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, SIZE) == expected


@pytest.mark.parametrize(
    ("header", "error"),
    [
        pytest.param("bytes=10000-", RangeNotSatisfiable, id="starts-at-size"),
        pytest.param("bytes=-0", RangeNotSatisfiable, id="empty-suffix"),
        pytest.param("bytes=5-1", MalformedRange, id="last-before-first"),
        pytest.param("bytes=a-b", MalformedRange, id="not-digits"),
        pytest.param("bytes=-", MalformedRange, id="dash-alone"),
        pytest.param("bytes=", MalformedRange, id="empty-set"),
        pytest.param("bytes=1-2-3", MalformedRange, id="two-dashes"),
        pytest.param("bytes=+1-2", MalformedRange, id="sign"),
    ],
)
def test_parse_range_refuses(header: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_range(header, SIZE)


def test_empty_file_has_no_satisfiable_range() -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=0-", 0)


ETAG, MODIFIED = '"abc"', "Tue, 01 Dec 2026 09:00:00 GMT"


@pytest.mark.parametrize(
    ("if_range", "holds"),
    [
        pytest.param(None, True, id="absent"),
        pytest.param('"abc"', True, id="same-etag"),
        pytest.param('"stale"', False, id="other-etag"),
        pytest.param('W/"abc"', False, id="weak-never-matches"),
        pytest.param(MODIFIED, True, id="same-date"),
        pytest.param("Mon, 30 Nov 2026 09:00:00 GMT", False, id="other-date"),
    ],
)
def test_if_range(if_range: str | None, holds: bool) -> None:
    assert if_range_holds(if_range, ETAG, MODIFIED) is holds


@pytest.mark.parametrize(
    ("method", "header", "if_range", "span"),
    [
        pytest.param("GET", None, None, Span(0, 1000, 1000), id="no-range"),
        pytest.param("GET", "bytes=0-", None, Span(0, 1000, 1000, True), id="from-0"),
        pytest.param("GET", "bytes=100-", None, Span(100, 1000, 1000, True), id="resume"),
        pytest.param("HEAD", "bytes=100-", None, Span(0, 1000, 1000), id="head-whole"),
        pytest.param("GET", "bytes=100-", '"stale"', Span(0, 1000, 1000), id="if-range-stale"),
        pytest.param("GET", "pages=1-2", None, Span(0, 1000, 1000), id="other-unit"),
    ],
)
def test_span_for(method: str, header: str | None, if_range: str | None, span: Span) -> None:
    assert span_for(method, header, if_range, ETAG, MODIFIED, 1000) == span
