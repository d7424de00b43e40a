"""Message → action: keyword, subscribe, help or silence (pure, table-driven)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bot.config import KeywordSettings, RepliesSettings


class Routable(Protocol):
    """The fields routing looks at (``bot.wechat.Message`` has them)."""

    @property
    def type(self) -> str: ...
    @property
    def event(self) -> str: ...
    @property
    def content(self) -> str: ...


@dataclass(frozen=True, slots=True)
class SendLink:
    """Answer with a fresh link to this keyword's file."""

    keyword: KeywordSettings


@dataclass(frozen=True, slots=True)
class SendText:
    """Answer with fixed text."""

    text: str


@dataclass(frozen=True, slots=True)
class Silence:
    """Answer ``success``: WeChat shows nothing and stops retrying."""


Action = SendLink | SendText | Silence
# wechatpy's names for "followed the account": plain, by scanning a QR code, from a product page.
SUBSCRIBE_EVENTS = frozenset({"subscribe", "subscribe_scan", "subscribe_scan_product"})


def normalize(text: str) -> str:
    """Trim, and fold Latin letters so ``OPEN`` matches ``open``."""
    return text.strip().casefold()


class Router:
    """Built once from the configured keywords and replies."""

    def __init__(self, keywords: list[KeywordSettings], replies: RepliesSettings) -> None:
        self._table = {normalize(k.match): k for k in keywords}
        listing = "\n".join(f"· {k.match}" for k in keywords) or "（暂无）"
        self._welcome = SendText(replies.welcome.format(keywords=listing))
        self._help = SendText(replies.help.format(keywords=listing))

    def route(self, message: Routable) -> Action:
        """The action for one incoming message or event."""
        if message.type == "text":
            keyword = self._table.get(normalize(message.content))
            return SendLink(keyword) if keyword else self._help
        if message.type == "event" and message.event in SUBSCRIBE_EVENTS:
            return self._welcome
        return Silence()
