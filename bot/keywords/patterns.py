"""Owner regexes, bounded: the `regex` package (re's semantics, plus a per-search timeout)."""

# Why `regex` and not google-re2: RE2 never backtracks, but its \w is ASCII only (so `\w+` stops
# matching Chinese text), and it refuses lookarounds and backreferences that owners' rules
# already use under Python's re. `regex` keeps re's syntax and Unicode semantics, and its
# `timeout=` ends a runaway search from inside the matcher, on the event loop, in milliseconds.

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import regex
from loguru import logger

if TYPE_CHECKING:
    from bot.keywords.settings import KeywordSettings

TIMEOUT = 0.005  # seconds one search of one alias may take before the text falls to the next rule
MAX_TEXT = 512  # characters: a longer text is not tried against regex rules (WeChat's are short)
MAX_DEPTH = 100  # nested groups; deeper is refused before the compiler recurses that far
WARN_EVERY = 60.0  # seconds between two timeout warnings of one rule; the ones between are counted
SHOWN = 40  # characters of a pattern shown in a message


def shown(source: str) -> str:
    """A pattern as messages name it: repr, cut to ``SHOWN`` characters."""
    return repr(source) if len(source) <= SHOWN else repr(source[:SHOWN]) + "…"


def compile_pattern(source: str) -> regex.Pattern[str]:
    """Compile an owner's regex (case-insensitive); ValueError says why it can't be used."""
    if _shape(source).depth > MAX_DEPTH:
        raise ValueError(f"nests groups deeper than {MAX_DEPTH}")
    try:
        return regex.compile(source, regex.IGNORECASE)
    except (regex.error, OverflowError, RecursionError, MemoryError) as exc:
        raise ValueError(str(exc) or type(exc).__name__) from None


class Search:
    """One alias of a regex rule: a hit within ``TIMEOUT``; a timeout is a miss, warned per rule."""

    def __init__(
        self, rule: str, source: str, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rule = rule
        self._pattern = compile_pattern(source)
        self._clock = clock
        self._warned_at: float | None = None
        self._unwarned = 0

    def __call__(self, text: str) -> bool:
        """Whether the pattern occurs in ``text``; False for over-long texts and timeouts."""
        if len(text) > MAX_TEXT:
            return False
        try:
            return self._pattern.search(text, timeout=TIMEOUT) is not None
        except TimeoutError:
            self._timed_out()
            return False

    def _timed_out(self) -> None:
        now = self._clock()
        if self._warned_at is not None and now - self._warned_at < WARN_EVERY:
            self._unwarned += 1
            return
        more = f" ({self._unwarned} more since the last warning)" if self._unwarned else ""
        logger.warning(
            "rule {}: regex gave up after {:.0f} ms, the text goes to the next rule{}; "
            "simplify the pattern (nested repeats backtrack)",
            shown(self.rule),
            TIMEOUT * 1000,
            more,
        )
        self._warned_at, self._unwarned = now, 0


@dataclass(frozen=True, slots=True)
class Shape:
    """What a pattern's source shows without compiling it."""

    depth: int  # deepest group nesting
    nested: bool  # a repeated group that holds an unbounded repeat: (a+)+, (\w+\s?)*


def _shape(source: str) -> Shape:
    open_groups: list[bool] = []  # per open group: it holds an unbounded repeat
    atomic: list[bool] = []  # per open group: it is atomic
    depth, nested, i = 0, False, 0
    closed: bool | None = None  # the group just closed (holds an unbounded repeat), else None
    while i < len(source):
        char = source[i]
        length, repeats, unbounded = _quantifier(source, i)
        if length:
            if closed is not None and repeats and closed:
                nested = True
            if unbounded and open_groups:
                open_groups[-1] = True
            i, closed = i + length, None
            continue
        closed = None
        if char == "\\":
            i += 2
            continue
        if char == "[":
            i = _class_end(source, i)
            continue
        if char == "(":
            open_groups.append(False)
            atomic.append(source.startswith("(?>", i))
            depth = max(depth, len(open_groups))
        elif char == ")" and open_groups:
            holds, is_atomic = open_groups.pop(), atomic.pop()
            closed = holds and not is_atomic  # an atomic group (?>...) gives nothing back
            if closed and open_groups:
                open_groups[-1] = True
        i += 1
    return Shape(depth, nested)


def _quantifier(source: str, i: int) -> tuple[int, bool, bool]:
    """(length, repeats more than once, unbounded) of a quantifier at ``i``; length 0: none."""
    char = source[i]
    if char in "*+":
        length = 1
        possessive = source[i + 1 : i + 2] == "+"
        if source[i + 1 : i + 2] in ("?", "+"):
            length = 2
        return length, True, not possessive
    if char == "?":
        return (2 if source[i + 1 : i + 2] in ("?", "+") else 1), False, False
    if char == "{":
        end = source.find("}", i)
        low, comma, high = source[i + 1 : end].partition(",")
        if end < 0 or not (low.strip().isdigit() or (comma and high.strip().isdigit())):
            return 0, False, False
        if high.strip() and not high.strip().isdigit():
            return 0, False, False
        most = int(high) if high.strip() else (None if comma else int(low))
        return end + 1 - i, most is None or most > 1, most is None
    return 0, False, False


def _class_end(source: str, i: int) -> int:
    """The index after the character class that opens at ``i``."""
    j = i + 1
    if source[j : j + 1] == "^":
        j += 1
    if source[j : j + 1] == "]":
        j += 1
    while j < len(source) and source[j] != "]":
        j += 2 if source[j] == "\\" else 1
    return j + 1


def risky(rules: Iterable[KeywordSettings]) -> list[str]:
    """Warnings for regex rules whose shape backtracks catastrophically (nested repeats)."""
    found = []
    for rule in rules:
        if rule.mode != "regex":
            continue
        for alias in rule.aliases:
            if _shape(alias).nested:
                found.append(
                    f"rule {shown(rule.name)}: {shown(alias)} repeats a group that itself "
                    f"repeats, which backtracks catastrophically on some texts; each try is cut "
                    f"off after {TIMEOUT * 1000:.0f} ms (then the next rule answers). Make the "
                    f"inner repeat possessive (\\w++) or the group atomic ((?>...))"
                )
    return found
