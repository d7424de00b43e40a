"""Triggers and match modes as tables: what a message asks for, and how a rule's text matches.

A new trigger is one ``TRIGGERS`` entry (plus a settings field when it needs a key of its own);
a new match mode is one ``MATCH_MODES`` entry. Routing, config validation, the rule book and
`bot check` all read these tables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from bot.keywords.patterns import Search

SCENE_PREFIX = "qrscene_"


class Routable(Protocol):
    """The fields routing looks at (``bot.wechat.Message`` has them)."""

    @property
    def type(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def event(self) -> str: ...
    @property
    def event_key(self) -> str: ...
    @property
    def content(self) -> str: ...
    @property
    def recognition(self) -> str: ...
    @property
    def scan_result(self) -> str: ...
    def at(self, path: str) -> str: ...  # a nested field by path, "Parent/Child" ("" if none)


@dataclass(frozen=True, slots=True)
class Index:
    """One way the book finds a rule: by the values of one ``[[keywords]]`` field."""

    field: str  # the KeywordSettings field that holds this index's values
    label: str  # how `bot check` shows one value: "menu {}" → "menu GET_SETUP"
    also: str | None = None  # an index tried next when this one finds nothing


# "match" is the text index: values folded, matched by the rule's mode (MATCH_MODES).
TEXT = "match"
INDEXES: dict[str, Index] = {
    TEXT: Index("match", "{}"),
    # A menu key, else the key read as a keyword (menus often use them).
    "click": Index("click", "menu {}", also=TEXT),
    "scene": Index("scene", "scene {}"),
}

# When no rule answers: the help text, the welcome, or ``success`` (nothing shown).
Fallback = Literal["help", "welcome", "silence"]


@dataclass(frozen=True, slots=True)
class Trigger:
    """One kind of message a rule can answer: where its value is, which index, what else."""

    index: str
    read: Callable[[Routable], str | None]  # None: this message is not this trigger after all
    fallback: Fallback = "silence"
    greeting: bool = False  # the welcome goes before the rule's answer (a new follower)
    unknown: str = ""  # logged (value, openid) when no rule has the value: a typo in a menu key


def _scene_of_subscribe(message: Routable) -> str:
    key = message.event_key
    return key.removeprefix(SCENE_PREFIX) if key.startswith(SCENE_PREFIX) else ""


_NO_SCENE = "QR scene {} matches no rule's scene openid={}: a typo in the QR code's scene?"
_SUBSCRIBE = Trigger("scene", _scene_of_subscribe, "welcome", greeting=True, unknown=_NO_SCENE)
# (MsgType, Event in lower case) → trigger. Voice counts only when WeChat recognised words.
TRIGGERS: dict[tuple[str, str], Trigger] = {
    ("text", ""): Trigger(TEXT, lambda m: m.content, "help"),
    ("voice", ""): Trigger(
        TEXT, lambda m: m.recognition if m.recognition.strip() else None, "help"
    ),
    ("event", "click"): Trigger(
        "click",
        lambda m: m.event_key,
        unknown="menu click key {} matches no rule's click or keyword openid={}: "
        "a typo in the menu's key?",
    ),
    ("event", "scan"): Trigger("scene", lambda m: m.event_key, unknown=_NO_SCENE),
    ("event", "scancode_waitmsg"): Trigger(TEXT, lambda m: m.scan_result, "help"),
    # wechatpy's names for "followed the account": plain, by a QR code, from a product page.
    ("event", "subscribe"): _SUBSCRIBE,
    ("event", "subscribe_scan"): _SUBSCRIBE,
    ("event", "subscribe_scan_product"): _SUBSCRIBE,
}
# What a follower sends that no rule can read: answered with [replies] other.
OTHER_TYPES = frozenset({"image", "voice", "video", "shortvideo", "location", "link", "file"})


def trigger_of(message: Routable) -> Trigger | None:
    """The trigger a message fires, if any (an unknown type or event fires none)."""
    return TRIGGERS.get((message.type, message.event if message.type == "event" else ""))


Matcher = Callable[[str], bool]
# mode → how one alias becomes a test on folded text (ValueError if it can't); exact: a lookup.
Fold = Callable[[str], str]
MatchCompiler = Callable[[str, str, Fold], Matcher]  # (rule name, alias, fold) → test


def _contains(rule: str, alias: str, fold: Fold) -> Matcher:
    needle = fold(alias)
    return lambda text: needle in text


def _regex(rule: str, alias: str, fold: Fold) -> Matcher:
    return Search(rule, alias)  # bounded in time and text length (bot.keywords.patterns)


MATCH_MODES: dict[str, MatchCompiler | None] = {
    "exact": None,
    "contains": _contains,
    "regex": _regex,
}
# Modes whose aliases are listed to followers in {keywords} (a regex reads badly there).
LISTED_MODES = frozenset({"exact", "contains"})
