"""The rule table, compiled once at load: folding, exact lookups, contains/regex in file order."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.patterns import Search

if TYPE_CHECKING:
    from bot.rule_settings import KeywordSettings

# Trimmed from both ends after NFKC (which already turned ！？，．～　 into their ASCII forms).
_EDGES = re.compile(r"^[\s。.!?~,、…]+|[\s。.!?~,、…]+$")
TAP = '<a href="weixin://bizmsgmenu?msgmenucontent={kw}&msgmenuid={n}">{kw}</a>'


def fold(text: str) -> str:
    """What matching compares: NFKC (full-width → half-width), case-folded, edges trimmed."""
    return _EDGES.sub("", unicodedata.normalize("NFKC", text).casefold())


Matcher = Callable[[str], bool]


def _matchers(rule: KeywordSettings) -> list[Matcher]:
    """One test per alias for contains and regex rules (exact rules use the lookup)."""
    if rule.mode == "contains":
        return [_contains(fold(a)) for a in rule.aliases]
    if rule.mode == "regex":
        return [Search(rule.name, a) for a in rule.aliases]  # bounded in time and length
    return []


def _contains(needle: str) -> Matcher:
    return lambda text: needle in text


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


class RuleBook:
    """Finds the rule for a text, a menu key or a QR scene; built once per (re)load."""

    def __init__(self, rules: Iterable[KeywordSettings]) -> None:
        self.rules = [Rule(r, *r.window) for r in rules]
        self._exact: dict[str, Rule] = {}
        self._others: list[tuple[Rule, list[Matcher]]] = []
        self._clicks: dict[str, Rule] = {}
        self._scenes: dict[str, Rule] = {}
        for rule in self.rules:
            s = rule.settings
            for alias in s.aliases if s.mode == "exact" else ():
                self._exact.setdefault(fold(alias), rule)
            if s.mode != "exact":
                self._others.append((rule, _matchers(s)))
            if s.click:
                self._clicks.setdefault(s.click, rule)
            if s.scene:
                self._scenes.setdefault(s.scene, rule)

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

    def for_click(self, key: str) -> Rule | None:
        """The rule of a menu button's EventKey."""
        return self._clicks.get(key)

    def for_scene(self, scene: str) -> Rule | None:
        """The rule of a param-QR code's scene."""
        return self._scenes.get(scene)

    def listing(self, *, tappable: bool) -> str:
        """``{keywords}`` in welcome and help: the first alias of each text rule (not regexes)."""
        names = [
            r.settings.aliases[0]
            for r in self.rules
            if r.settings.aliases and r.settings.mode != "regex"
        ]
        if not names:
            return "（暂无）"
        if tappable:
            names = [TAP.format(kw=name, n=n) for n, name in enumerate(names, 1)]
        return "\n".join(f"· {name}" for name in names)
