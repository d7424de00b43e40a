"""Wrong pick-up codes, counted per guesser and server-wide (``PickupCodes.try_code``): the
values a try gives and the rule both backends apply, over buckets of a sliding window."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GuessLimits:
    """Wrong pick-up codes allowed per ``window`` seconds: from one guesser (0: no limit), and
    from everyone before the server is under pressure (0: never)."""

    per_guesser: int
    server: int
    window: float = 60.0


@dataclass(frozen=True, slots=True)
class CodeFound:
    """``try_code``: the code is live; its link's token and id."""

    token: str
    link_id: str


@dataclass(frozen=True, slots=True)
class CodeWrong:
    """``try_code``: no live code is this one; counted against the guesser and the server."""


@dataclass(frozen=True, slots=True)
class GuessRefused:
    """``try_code``: the guesser may not guess now; nothing was looked up or counted."""

    retry_at: float  # when the guesser's oldest wrong code in the window leaves it


Tried = CodeFound | CodeWrong | GuessRefused
GUESS_BUCKETS = 6  # a window is counted in this many buckets (a sliding minute in 10 s steps)


def guess_buckets(now: float, window: float) -> tuple[list[int], float]:
    """The buckets a window counts now (oldest first), and their width in seconds."""
    width = window / GUESS_BUCKETS
    current = int(now // width)
    return list(range(current - GUESS_BUCKETS + 1, current + 1)), width


def guess_refusal(
    buckets: list[int], mine: list[int], everyone: int, limits: GuessLimits, width: float
) -> GuessRefused | None:
    """``try_code``'s rule, from the guesser's count per bucket and everyone's total."""
    wrong = sum(mine)
    over = bool(limits.per_guesser) and wrong >= limits.per_guesser
    pressed = bool(limits.server) and everyone >= limits.server and wrong > 0
    if not (over or pressed):
        return None
    oldest = next(b for b, n in zip(buckets, mine, strict=True) if n)
    return GuessRefused((oldest + GUESS_BUCKETS) * width)
