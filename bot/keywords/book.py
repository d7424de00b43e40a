"""The rule book, compiled once at load: folding, exact lookups, other modes in file order."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.keywords.triggers import INDEXES, LISTED_MODES, MATCH_MODES, TEXT, Matcher

if TYPE_CHECKING:
    from bot.keywords.settings import KeywordSettings

# Trimmed from both ends after NFKC (which already turned ！？，．～　 into their ASCII forms).
_EDGES = re.compile(r"^[\s。.!?~,、…]+|[\s。.!?~,、…]+$")
TAP = '<a href="weixin://bizmsgmenu?msgmenucontent={href}&msgmenuid={n}">{kw}</a>'
# Percent-encoded in a tappable keyword's href (the rest, Chinese included, goes as typed).
_HREF_UNSAFE = frozenset("\"&#%<>'+=?\\`{}|^[] \t")


def fold(text: str) -> str:
    """What matching compares: NFKC (full-width → half-width), case-folded, edges trimmed."""
    return _EDGES.sub("", unicodedata.normalize("NFKC", text).casefold())


@dataclass(frozen=True, slots=True)
class Rule:
    """One configured rule with its window as epoch seconds."""

    settings: KeywordSettings
    active_from: float | None
    active_until: float | None

    def active(self, now: float) -> bool:
        """Inside ``active_from`` / ``active_until`` (Beijing time as configured)."""
        start, end = self.active_from, self.active_until
        return (start is None or now >= start) and (end is None or now < end)

    def ended(self, now: float) -> bool:
        """Past ``active_until``: over for good."""
        return self.active_until is not None and now >= self.active_until


class RuleBook:
    """Finds the rule for a text, a menu key or a QR scene; built once per (re)load."""

    def __init__(self, rules: Iterable[KeywordSettings]) -> None:
        self.rules = [Rule(r, *r.window) for r in rules]
        self._exact: dict[str, Rule] = {}
        self._others: list[tuple[Rule, list[Matcher]]] = []
        self._keyed: dict[str, dict[str, Rule]] = {name: {} for name in INDEXES if name != TEXT}
        for rule in self.rules:
            s = rule.settings
            compile_alias = MATCH_MODES[s.mode]
            if compile_alias is None:
                for alias in s.aliases:
                    self._exact.setdefault(fold(alias), rule)
            else:
                self._others.append((rule, [compile_alias(s.name, a, fold) for a in s.aliases]))
            for name, found in self._keyed.items():
                value = getattr(s, INDEXES[name].field)
                if value:
                    found.setdefault(value, rule)

    def find(self, index: str, value: str) -> Rule | None:
        """The rule an index holds for a value, then the index it falls back to."""
        found = self.for_text(value) if index == TEXT else self._keyed[index].get(value)
        also = INDEXES[index].also
        return found if found is not None or also is None else self.find(also, value)

    def for_text(self, text: str) -> Rule | None:
        """The rule a typed, recognised or scanned text triggers: exact first, then file order."""
        folded = fold(text)
        if not folded:
            return None
        found = self._exact.get(folded)
        if found is not None:
            return found
        for rule, tests in self._others:
            if any(test(folded) for test in tests):
                return rule
        return None

    def listing(self, *, tappable: bool, now: float) -> str:
        """``{keywords}`` in welcome and help: the first alias of each listed text rule whose
        window has not ended."""
        names = [
            r.settings.aliases[0]
            for r in self.rules
            if r.settings.aliases and r.settings.mode in LISTED_MODES and not r.ended(now)
        ]
        if not names:
            return "（暂无）"
        if tappable:
            names = [tap(name, n) for n, name in enumerate(names, 1)]
        return "\n".join(f"· {name}" for name in names)

    def next_end(self, now: float) -> float:
        """When the next window ends (the listing changes then); infinity if none will."""
        ends = [e for r in self.rules if (e := r.active_until) is not None and e > now]
        return min(ends, default=float("inf"))


def tap(keyword: str, n: int) -> str:
    """A keyword as a link that sends it when tapped (``[replies] tappable``)."""
    href = "".join(f"%{ord(c):02X}" if c in _HREF_UNSAFE or ord(c) < 32 else c for c in keyword)
    shown = keyword.replace("<", "＜").replace(">", "＞")  # never markup in the message
    return TAP.format(href=href, kw=shown, n=n)
