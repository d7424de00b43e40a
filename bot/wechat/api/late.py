"""The reply that missed WeChat's 5 s, sent as a 客服消息: once per message, within its quota.

The push was answered ``success`` in time; ``bot.answers`` hands the unfinished answer here. When
it is ready and this attempt owns the message, one claim in the store (``LateSends``) decides
that it is sent at most once across retries, workers and instances, within WeChat's quota for
the trigger, and makes every retry of the message answer ``success`` from then on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger

from bot.errors import BotError, StoreUnavailable
from bot.state import STORE_TIMEOUT, LateSends, SendClaim, SendQuota, bounded
from bot.wechat.api.errors import AccountLacksAPI, CustomMessageRefused, InvalidMedia
from bot.wechat.replies import ImageReply, ReplyValue

if TYPE_CHECKING:
    from bot.wechat import Message
    from bot.wechat.api.client import WeChatAPI
    from bot.wechat.api.media import Pictures

MESSAGE = SendQuota("message", 5, 48 * 3600.0)  # after a follower's message: 5 within 48 h
EVENT = SendQuota("event", 3, 60.0)  # after a click (or scancode), scan or subscribe: 3 a minute
# The events after which WeChat lets the bot send (wechatpy's names); other events open none.
EVENT_QUOTAS = dict.fromkeys(
    (
        "click",
        "scancode_push",
        "scancode_waitmsg",
        "scan",
        "subscribe",
        "subscribe_scan",
        "subscribe_scan_product",
    ),
    EVENT,
)
UNAVAILABLE = frozenset({45015})  # with 48001 (AccountLacksAPI): 客服 is off for this account
DRAIN_SECONDS = 15.0  # on shutdown, late replies still being answered get this long


def quota_of(message: Message) -> SendQuota | None:
    """WeChat's 客服 quota for what the follower did (None: it allows no 客服 message)."""
    return MESSAGE if message.type != "event" else EVENT_QUOTAS.get(message.event)


@dataclass(frozen=True, slots=True)
class Answered:
    """What one attempt at a message came to: its reply, and whether it may go by 客服."""

    reply: ReplyValue
    owner: bool = False  # this attempt claimed the message (a retry only repeats its answer)
    links: tuple[str, ...] = ()  # the ids of the links the reply carries (for the log)
    picture: Path | None = None  # an image reply's file (uploaded again if WeChat refuses it)


class LateReplies:
    """Sends the answers ``bot.answers`` could not give in time, each as one 客服消息."""

    def __init__(
        self, api: WeChatAPI, store: LateSends, pictures: Pictures, *, reply_ttl: float
    ) -> None:
        self._api, self._store, self._pictures, self._ttl = api, store, pictures, reply_ttl
        self.available = True  # False once WeChat says the account can't send them
        self._tasks: set[asyncio.Task[None]] = set()

    def follow(self, message: Message, work: Awaitable[Answered]) -> None:
        """Send ``work``'s answer once it is ready (its push was answered ``success``)."""
        task = asyncio.ensure_future(self._after(message, work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _after(self, message: Message, work: Awaitable[Answered]) -> None:
        try:
            answered = await work
        except Exception as exc:  # the webhook would have logged it: nobody else will
            logger.error("late answer to {} failed: {!r}", message.dedup_key, exc)
            return
        await self.send(message, answered)

    async def send(self, message: Message, answered: Answered) -> bool:
        """Send the answer by 客服 if this attempt should; True when it went."""
        key, reply = message.dedup_key, answered.reply
        body = reply.custom()  # how each reply kind goes as a 客服消息 (``ReplyValue.custom``)
        if not answered.owner or body is None:  # a retry's, or success: nothing to send
            return False
        if not await self._claim(message):
            return False
        try:
            await self._send(message.source, body, answered.picture)
        except (AccountLacksAPI, CustomMessageRefused) as exc:
            self._unavailable(exc)
            logger.error("late reply to {} lost: {}", key, exc)
            return False
        except (BotError, OSError) as exc:
            logger.error("late reply to {} lost: {}", key, exc)
            return False
        links = ",".join(answered.links) or "-"
        logger.info(
            "late reply to {} sent by 客服 ({}): openid={} links={}",
            key,
            reply.kind,
            message.source,
            links,
        )
        return True

    async def _claim(self, message: Message) -> bool:
        """The one send of this message's reply, within the follower's quota (else logged)."""
        key, quota = message.dedup_key, quota_of(message)
        if quota is None:
            logger.warning("late reply to {} not sent: {} opens no 客服 window", key, message.event)
            return False
        try:
            claim = await bounded(
                self._store.claim_send(key, self._ttl, message.source, quota), STORE_TIMEOUT
            )
        except StoreUnavailable as exc:
            logger.error("late reply to {} not sent: can't claim it (sent once): {}", key, exc)
            return False
        if claim is SendClaim.SENT:
            logger.info("late reply to {}: already sent by another attempt", key)
        elif claim is SendClaim.OVER_QUOTA:
            logger.warning(
                "late reply to {} not sent: openid={} had {} 客服 messages within {:g} s of a {}",
                key,
                message.source,
                quota.limit,
                quota.window,
                quota.name,
            )
        return claim is SendClaim.GRANTED

    def _unavailable(self, exc: AccountLacksAPI | CustomMessageRefused) -> None:
        """48001 or 45015: this account can't send 客服消息; answer as before from now on."""
        if self.available and (isinstance(exc, AccountLacksAPI) or exc.errcode in UNAVAILABLE):
            self.available = False
            logger.warning(
                "客服消息 are not available ({}): an answer that misses WeChat's 5 s is answered"
                " as before (from this process's memory if the store is slow)",
                exc,
            )

    async def _send(self, openid: str, body: dict[str, Any], picture: Path | None) -> None:
        """Send one 客服消息; an image WeChat lost (40007) is uploaded again, once."""
        try:
            await self._api.send_custom(openid, body)
        except InvalidMedia:
            if picture is None:
                raise
            logger.warning(
                "media {} refused (40007): uploading it again", body["image"]["media_id"]
            )
            renewed = ImageReply(await self._pictures.renew(picture)).custom()
            await self._api.send_custom(openid, renewed)

    async def drain(self, seconds: float = DRAIN_SECONDS) -> None:
        """On shutdown: let late replies being answered finish for ``seconds``, then stop them."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=seconds)
        for task in pending:
            task.cancel()
        if pending:
            logger.warning("{} late replies not sent: the server stopped", len(pending))
