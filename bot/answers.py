"""One answer per message: WeChat's retries get the first reply, quotas hold, links are recorded."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from loguru import logger

from bot.config import KeywordSettings
from bot.errors import StoreUnavailable
from bot.links import Clock, Link
from bot.metrics import Metrics
from bot.pickup import PickupCodes, mask, reserve
from bot.replies import Responder, quota_text
from bot.routing import SendLink, SendText
from bot.state import LinkRecord, Reply, Store, bounded
from bot.wechat import Message

T = TypeVar("T")
REPLY_TTL = 60.0  # WeChat retries for about 15 s; the issue asks for at least 30 s
DEADLINE = 4.5  # WeChat gives up after 5 s
STORE_TIMEOUT = 1.0  # one store call; a few of them still fit in the deadline
POLL_SECONDS = 0.05
MARGIN = 0.2  # kept back from the deadline for sealing and sending the reply


class Replies(Protocol):
    """Where a retry reads the first attempt's answer: the store, or ``LocalReplies``."""

    async def read_reply(self, key: str) -> Reply | None: ...


class LocalReplies:
    """This process's memory of replies: the fallback when the store does not answer."""

    def __init__(self) -> None:
        # One ttl for all, so insertion order is expiry order: expired entries leave from the front.
        self._entries: OrderedDict[str, tuple[float, Reply]] = OrderedDict()

    async def claim_message(self, key: str, ttl: float) -> Reply | None:
        """None when first; else the remembered reply."""
        known = await self.read_reply(key)
        if known is None:
            self.put(key, Reply(done=False), ttl)
        return known

    async def read_reply(self, key: str) -> Reply | None:
        """The remembered reply, if it has not expired."""
        entry = self._entries.get(key)
        return entry[1] if entry and entry[0] > time.monotonic() else None

    def put(self, key: str, reply: Reply, ttl: float) -> None:
        """Remember a reply for ``ttl`` seconds, forgetting the expired ones."""
        now = time.monotonic()
        entries = self._entries
        while entries and next(iter(entries.values()))[0] <= now:
            entries.popitem(last=False)
        entries[key] = (now + ttl, reply)
        entries.move_to_end(key)


@dataclass(frozen=True, slots=True)
class Draft:
    """What the first attempt at a message answers: text, and the link it carries if any."""

    text: str | None
    record: LinkRecord | None = None
    expires: str = ""
    code: str = ""  # the pick-up code reserved for the link, if any
    store_down: bool = False  # reserving the code found the store unavailable


class Answerer:
    """Wraps the responder with dedup, the hourly quota and the link record, within a deadline."""

    def __init__(
        self,
        responder: Responder,
        store: Store,
        *,
        per_hour: int,
        clock: Clock = time.time,
        deadline: float = DEADLINE,
        metrics: Metrics | None = None,
        codes: PickupCodes | None = None,
    ) -> None:
        self._metrics = metrics or Metrics()
        self._codes = codes
        self._responder = responder
        self._store = store
        self._per_hour = per_hour
        self._clock = clock
        self._deadline = deadline
        self._local = LocalReplies()

    async def answer(self, message: Message) -> str | None:
        """Reply text (None: ``success``), the same for every delivery of one message."""
        deadline = time.monotonic() + self._deadline
        key = message.dedup_key
        while True:
            draft = await self._draft(message, deadline)  # signed (and coded) before the claim
            replies, prior = await self._claim(key, draft, deadline)
            if prior is None:
                return self._issued(message, draft)
            if draft.code and self._codes is not None:  # this draft's link is never sent
                await self._quietly(self._codes.drop_code(draft.code), deadline)
            if isinstance(prior, float):
                return await self._refuse(message, prior, deadline)
            reply = await self._wait(key, prior, replies, deadline)
            if reply is not None:
                return reply.text
            if time.monotonic() + STORE_TIMEOUT > deadline:
                logger.warning("retry {}: first attempt gone, no time left: success", key)
                return None
            # The first attempt's claim is gone (expired, or lost with the store): answer it.

    async def _draft(self, message: Message, deadline: float) -> Draft:
        """The answer if this attempt is the first (routing, signing, a pick-up code)."""
        action = self._responder.route(message)
        if isinstance(action, SendText):
            return Draft(action.text)
        if not isinstance(action, SendLink):
            return Draft(None)
        keyword = action.keyword
        token, link = self._responder.issue(keyword)
        code: str | None = ""
        if self._wants(keyword):
            code = await self._pickup_code(token, link, deadline)
        text = self._responder.link_text(keyword, token, code or "")
        record = LinkRecord(
            link.link_id,
            message.source,
            keyword.match,
            keyword.file,
            link.issued_at.timestamp(),
            link.expires_at.timestamp(),
        )
        return Draft(text, record, link.expires_at.isoformat(), code or "", code is None)

    def _wants(self, keyword: KeywordSettings) -> bool:
        return self._codes is not None and self._responder.wants_code(keyword)

    async def _pickup_code(self, token: str, link: Link, deadline: float) -> str | None:
        """A stored pick-up code for the link; None (the reply goes without) if the store fails."""
        if self._codes is None:
            return ""
        try:
            return await self._bounded(reserve(self._codes, token, link), deadline)
        except StoreUnavailable as exc:
            logger.error("link {} goes without a pick-up code: {}", link.link_id, exc)
            return None

    async def _claim(
        self, key: str, draft: Draft, deadline: float
    ) -> tuple[Replies, Reply | float | None]:
        """Claim the message and, when first, record the link and the answer (one store trip)."""
        try:
            if draft.store_down:  # it just failed: a second wait would double the cost
                raise StoreUnavailable("it did not answer for the pick-up code")
            return self._store, await self._bounded(
                self._store.claim_and_record(
                    key, REPLY_TTL, draft.text, draft.record, self._per_hour
                ),
                deadline,
            )
        except StoreUnavailable as exc:
            logger.error("dedup of {} falls back to this process: {}", key, exc)
        prior = await self._local.claim_message(key, REPLY_TTL)
        if prior is None and draft.record is not None:
            logger.error(
                "link {} issued unrecorded, quota unchecked: store unavailable",
                draft.record.link_id,
            )
        return self._local, prior

    def _issued(self, message: Message, draft: Draft) -> str | None:
        """Log and count the link this attempt's answer carries."""
        self._remember(message.dedup_key, draft.text)
        link = draft.record
        if link is not None:
            logger.info(
                "link issued id={} keyword={!r} file={!r} openid={} expires={} code={}",
                link.link_id,
                link.keyword,
                link.file,
                message.source,
                draft.expires,
                mask(draft.code),
            )
            self._metrics.links_issued.labels(link.keyword).inc()
        return draft.text

    async def _refuse(self, message: Message, retry_at: float, deadline: float) -> str:
        """The quota refusal, remembered as the answer to this (claimed) message."""
        key = message.dedup_key
        logger.warning(
            "quota: openid={} had {} links in the last hour; next at {:.0f}",
            message.source,
            self._per_hour,
            retry_at,
        )
        text = quota_text(self._per_hour, retry_at, self._clock())
        self._remember(key, text)
        await self._quietly(self._store.save_reply(key, text, REPLY_TTL), deadline)
        return text

    def _remember(self, key: str, text: str | None) -> None:
        """Keep the answer in the process too, for retries while the store is down."""
        self._local.put(key, Reply(done=True, text=text), REPLY_TTL)

    async def _wait(
        self, key: str, prior: Reply, replies: Replies, deadline: float
    ) -> Reply | None:
        """The first attempt's reply; Reply(done=True) (success) at the deadline; None if gone."""
        reply: Reply | None = prior
        while reply is not None and not reply.done:
            if time.monotonic() + POLL_SECONDS + MARGIN >= deadline:
                logger.warning("retry {} still being answered at the deadline: success", key)
                return Reply(done=True)
            await asyncio.sleep(POLL_SECONDS)
            try:
                reply = await self._bounded(replies.read_reply(key), deadline)
            except StoreUnavailable as exc:
                logger.error("reading the reply to {} failed: {}", key, exc)
                reply = await self._local.read_reply(key) or reply
        return reply

    async def _bounded(self, call: Awaitable[T], deadline: float) -> T:
        return await bounded(call, min(STORE_TIMEOUT, deadline - time.monotonic() - MARGIN))

    async def _quietly(self, call: Awaitable[None], deadline: float) -> None:
        try:
            await self._bounded(call, deadline)
        except StoreUnavailable as exc:
            logger.error("{}", exc)
