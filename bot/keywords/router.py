"""Message → reply value: rules, triggers, welcome, help, other (pure; signs the links)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

from bot.clock import Clock
from bot.codes import PATH as PICKUP_PATH
from bot.codes import link_template
from bot.config import RepliesSettings
from bot.keywords.book import Rule, RuleBook, fold
from bot.keywords.patterns import shown
from bot.keywords.settings import (
    KeywordSettings,
    fixed_reply,
    inactive_text,
    joined,
    link_limit,
)
from bot.keywords.triggers import OTHER_TYPES, Fallback, Routable, trigger_of
from bot.links import Link, LinkSigner, link_url
from bot.state import LinkRecord
from bot.wechat.replies import NewsReply, ReplyValue, SuccessReply, TextReply


@dataclass(frozen=True, slots=True)
class Give:
    """A rule's files, to be answered with fresh links (after ``greeting``, e.g. the welcome).

    The one routed value that is not a reply yet: its links are signed, and their pick-up codes
    reserved, by ``bot.answers`` just before the claim.
    """

    keyword: KeywordSettings
    greeting: str = ""


@dataclass(frozen=True, slots=True)
class Picture:
    """A rule's image: answered with an ``ImageReply`` once WeChat holds it (by ``bot.answers``)."""

    path: Path


Routed = ReplyValue | Give | Picture


@dataclass(frozen=True, slots=True)
class Issued:
    """One fresh link: its token and URL, what it proves, and the record the audit trail keeps."""

    token: str
    url: str
    link: Link
    record: LinkRecord


@dataclass(frozen=True, slots=True)
class Draft:
    """The answer to a message if this attempt is the first: the reply and the links it carries."""

    reply: ReplyValue
    links: tuple[LinkRecord, ...] = ()
    codes: tuple[str, ...] = ()  # the pick-up codes reserved for ``links``, in order (or none)
    picture: Path | None = None  # an image reply's file (uploaded again if WeChat refuses it)


def normalize(text: str) -> str:
    """What matching compares (see ``bot.keywords.book.fold``)."""
    return fold(text)


class Router:
    """Built once per (re)load from the rules and replies; words the replies, signs the links."""

    def __init__(
        self,
        keywords: list[KeywordSettings],
        replies: RepliesSettings,
        signer: LinkSigner,
        public_url: str,
        *,
        max_downloads: int = 0,
        clock: Clock = time.time,
        files: Path = Path("files"),
    ) -> None:
        self._signer, self._public_url, self._clock = signer, public_url, clock
        self._files = files  # [files] dir: where an image rule's picture is
        self._pickup_url = public_url.rstrip("/") + PICKUP_PATH
        self._max_downloads = max_downloads  # [links] max_downloads, unless the rule says
        self.book = RuleBook(keywords)
        self._replies = replies
        self._other: ReplyValue = TextReply(replies.other) if replies.other else SuccessReply()
        self._worded_until = -1.0  # welcome and help are worded again once a window ends
        self._welcome = ""
        self._fallbacks: dict[Fallback, ReplyValue] = {}

    def route(self, message: Routable) -> Routed:
        """The reply (or the rule whose links answer) for one incoming message or event."""
        trigger = trigger_of(message)
        value = trigger.read(message) if trigger else None
        if trigger is None or value is None:
            return self._other if message.type in OTHER_TYPES else SuccessReply()
        self._word_listings(self._clock())
        rule = self.book.find(trigger.index, value) if value else None
        if rule is not None:
            return self._give(rule, greeting=self._welcome if trigger.greeting else "")
        if value and trigger.unknown:  # a menu key or QR scene no rule has: likely a typo
            logger.warning(trigger.unknown, shown(value), message.source)
        return self._fallbacks[trigger.fallback]

    def _word_listings(self, now: float) -> None:
        """Welcome and help list the rules whose window has not ended, as of ``now``."""
        if now < self._worded_until:
            return
        replies = self._replies
        listing = self.book.listing(tappable=replies.tappable, now=now)
        self._welcome = replies.welcome.format(keywords=listing)
        self._fallbacks = {
            "help": TextReply(replies.help.format(keywords=listing)),
            "welcome": TextReply(self._welcome),
            "silence": SuccessReply(),
        }
        self._worded_until = self.book.next_end(now)

    def _give(self, rule: Rule, greeting: str = "") -> Routed:
        s = rule.settings
        now = self._clock()
        if not rule.active(now):
            return TextReply(joined(greeting, inactive_text(s, ended=rule.ended(now))))
        if s.image:  # a picture carries no text: the greeting is left out
            return Picture(self._files / s.image)
        if not s.file_list:
            return fixed_reply(s, greeting)
        return Give(s, greeting)

    def draft(self, message: Routable) -> Draft:
        """The reply to one message, with fresh links (and no pick-up codes) where it has them."""
        routed = self.route(message)
        if isinstance(routed, Picture):
            raise TypeError("an image reply needs its media_id: bot.answers drafts it")
        return self.draft_of(routed, message.source)

    def draft_of(self, routed: ReplyValue | Give, openid: str) -> Draft:
        """The reply for a message already routed (links issued to ``openid``, without codes)."""
        if not isinstance(routed, Give):
            return Draft(routed)
        issued = self.issue(routed.keyword, openid)
        return Draft(self.word(routed, issued), tuple(i.record for i in issued))

    def issue(self, rule: KeywordSettings, openid: str) -> tuple[Issued, ...]:
        """Fresh links to the rule's files, each signed with the rule's name and its own limit."""
        limit = link_limit(rule, self._max_downloads)
        issued = []
        for name in rule.file_list:
            token, link = self._signer.issue(name, keyword=rule.name, max_downloads=limit)
            record = LinkRecord(
                link.link_id,
                openid,
                rule.name,
                name,
                link.issued_at.timestamp(),
                link.expires_at.timestamp(),
            )
            issued.append(Issued(token, link_url(self._public_url, token), link, record))
        return tuple(issued)

    @staticmethod
    def wants_code(rule: KeywordSettings) -> bool:
        """True when the rule's reply shows a pick-up code (``{code}`` in a template it uses)."""
        return any("{code}" in template for template in rule.link_templates.values())

    def word(self, action: Give, issued: Sequence[Issued], codes: Sequence[str] = ()) -> ReplyValue:
        """The reply carrying these links (and their pick-up codes, if any), in the rule's style.

        Without a code, the template lines naming ``{code}`` or ``{pickup_url}`` are left out.
        """
        rule, minutes = action.keyword, max(1, self._signer.ttl // 60)
        filled: list[dict[str, str]] = []
        for n, one in enumerate(issued):
            code = codes[n] if codes else ""
            names = {"url": one.url, "filename": one.link.file_key, "minutes": minutes}
            names |= {"code": code, "pickup_url": self._pickup_url}
            filled.append(
                {
                    key: link_template(template, codes=bool(code)).format(**names)
                    for key, template in rule.link_templates.items()
                }
            )
        if rule.style == "news":  # one file (checked at load)
            card = filled[0]
            return NewsReply(
                title=card["title"],
                description=joined(action.greeting, card["description"]),
                url=issued[0].url,
                pic_url=card["picurl"],
            )
        return TextReply(joined(action.greeting, *(piece["reply"] for piece in filled)))
