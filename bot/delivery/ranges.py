"""``Range: bytes=...`` → the one span of the file a response sends (pure, RFC 9110 §14)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.errors import MalformedRange, RangeNotSatisfiable


@dataclass(frozen=True, slots=True)
class Span:
    """Bytes ``[start, end)`` of a file of ``size`` bytes; ``partial`` means a 206 answer."""

    start: int
    end: int
    size: int
    partial: bool = False

    @property
    def length(self) -> int:
        """How many bytes the span holds."""
        return self.end - self.start

    def content_range(self) -> str:
        """The ``Content-Range`` value of a 206 answer."""
        return f"bytes {self.start}-{self.end - 1}/{self.size}"


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``[start, end)`` asked for by a Range header; None when the header is to be ignored.

    Several ranges are coalesced into the one span from the first asked byte to the last
    (RFC 9110 §15.3.7.2 lets a server coalesce), so an answer is never multipart. A unit other
    than ``bytes`` is ignored (§14.2). MalformedRange for broken syntax; RangeNotSatisfiable when
    no range holds a byte of the file.
    """
    unit, eq, specs = header.strip().partition("=")
    if not eq or unit.strip().lower() != "bytes":
        return None
    spans: list[tuple[int, int]] = []
    for spec in specs.split(","):
        spec = spec.strip()
        if not spec:
            continue  # RFC 9110 §5.6.1: empty list elements are ignored
        first, dash, last = (part.strip() for part in spec.partition("-"))
        if not dash or not (first.isdigit() or last.isdigit()):
            raise MalformedRange(header)
        if (first and not first.isdigit()) or (last and not last.isdigit()):
            raise MalformedRange(header)
        if not first:  # suffix: the last N bytes
            if int(last) > 0 and size > 0:
                spans.append((max(0, size - int(last)), size))
            continue
        start = int(first)
        if last and int(last) < start:
            raise MalformedRange(header)
        if start < size:
            spans.append((start, size if not last else min(int(last) + 1, size)))
    if not spans:
        if not any(s.strip() for s in specs.split(",")):
            raise MalformedRange(header)
        raise RangeNotSatisfiable(header, size)
    return min(s for s, _ in spans), max(e for _, e in spans)


def if_range_holds(if_range: str | None, etag: str, last_modified: str) -> bool:
    """RFC 9110 §13.1.5: True when If-Range is absent or names the current representation."""
    if if_range is None:
        return True
    value = if_range.strip()
    if value.startswith(('"', "W/")):
        return value == etag and not value.startswith("W/")  # strong comparison only
    return value == last_modified


def span_for(
    method: str, range_header: str | None, if_range: str | None, etag: str, modified: str, size: int
) -> Span:
    """The span a GET or HEAD answers with: the asked range (206) or the whole file (200)."""
    whole = Span(0, size, size)
    if range_header is None or method == "HEAD" or not if_range_holds(if_range, etag, modified):
        return whole
    asked = parse_range(range_header, size)
    if asked is None:
        return whole
    return Span(asked[0], asked[1], size, partial=True)
