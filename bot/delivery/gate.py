"""Use limits, revocation and leases around one download (the store keeps the counts).

The gate sees values only (the link, the file, the span, a ``Visit``), never a request or a
response. How each request ended is written down by ``delivery.records``: every refusal goes
through ``refused`` (one audit row and one metric), every response through ``served``.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from loguru import logger

from bot.clock import Clock
from bot.delivery.auditcap import RefusalCap
from bot.delivery.auditwriter import AuditWriter
from bot.delivery.catalog import FileInfo
from bot.delivery.ranges import Span
from bot.delivery.records import Records, Visit
from bot.errors import LinkExhausted, LinkHeld, LinkRevoked, StoreUnavailable
from bot.links import Link
from bot.metrics import Metrics
from bot.state import STORE_TIMEOUT, Claim, Grant, Outcome, Store, bounded

T = TypeVar("T")
VOID_TIMEOUT = 60.0  # how long a late claim's cancellation may wait for a stalled store
COUNTS_KEPT_AFTER_EXPIRY = 3600.0
# A span handed to nginx holds its lease until nginx reports how it ended (docker/nginx.conf's
# post_action): long enough for a follower at this rate, and never past an hour. A transfer
# still running then counts whole (nginx gives no word in between).
HANDOVER_FLOOR = 64 * 1024  # bytes a second
HANDOVER_MAX = 3600.0
# A delivery that fails before the status line (file gone, bucket down) ends its transfer so.
REFUSED_LATER = frozenset({Outcome.MISSING, Outcome.UNAVAILABLE})


@dataclass(slots=True)
class Admission:
    """A download let through: its span and, for a use-limited link, the lease it holds."""

    link: Link
    file: str
    visit: Visit
    span: Span
    lease_id: str = ""
    noted: bool = False  # the claim noted the whole span: its final note needs no store trip
    counted: bool | None = None  # set once the lease ended before the response did (its count)


class Gate:
    """Decides whether a download may go ahead, keeps its lease alive and records how it ended."""

    def __init__(
        self,
        store: Store,
        clock: Clock = time.time,
        *,
        metrics: Metrics | None = None,
        lease_seconds: float = 30.0,
        cap: RefusalCap | None = None,
        audit: AuditWriter | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._metrics = metrics or Metrics()
        self.lease_seconds = lease_seconds
        self._pending: set[asyncio.Task[None]] = set()
        self.records = Records(
            self._metrics,
            cap or RefusalCap(0, clock=clock),
            audit or AuditWriter(store, clock=clock, metrics=self._metrics),
            clock,
        )
        self.refused, self.may_log = self.records.refused, self.records.may_log

    async def admit(
        self,
        link: Link,
        info: FileInfo,
        span: Span,
        visit: Visit,
        *,
        handed_over: bool = False,
        one_piece: bool = False,
    ) -> Admission:
        """Admission for one request; LinkRevoked, LinkExhausted or StoreUnavailable otherwise.

        ``handed_over``: another server sends the span (nginx): its lease lasts as long as a
        slow follower takes (``handover_lease``) and ends when nginx reports (``settle``); if
        nginx never does, the whole span counts. The answer needs no second store write (#20).
        ``one_piece``: the bot sends it in one piece: the claim notes it whole (no final note).
        """
        limit = link.max_downloads  # signed into its token (0: none)
        admission = Admission(link, info.key, visit, span)
        if limit == 0:
            try:
                revoked = (await self._ask(self._store.usage(link.link_id), link)).revoked
            except StoreUnavailable as exc:
                logger.error("revocation of {} unchecked (no use limit): {}", link.link_id, exc)
                revoked = False
            if revoked:
                raise LinkRevoked(link.link_id, info.key, keyword=link.keyword)
            return admission
        if visit.method == "HEAD" or span.length == 0:  # sends no bytes: never needs a lease
            usage = await self._ask(self._store.usage(link.link_id), link)
            if usage.revoked:
                raise LinkRevoked(link.link_id, info.key, keyword=link.keyword)
            if usage.completed >= limit:
                raise LinkExhausted(link.link_id, info.key, limit, keyword=link.keyword)
            return admission
        keep = link.expires_at.timestamp() - self._clock() + COUNTS_KEPT_AFTER_EXPIRY
        lease_id = secrets.token_hex(8)
        claim = Claim(
            link.link_id,
            lease_id,
            span.start,
            span.end,
            info.size,
            limit,
            self.handover_lease(span.length) if handed_over else self.lease_seconds,
            keep,
            handed_over,
            one_piece and not handed_over,
        )
        try:
            grant = await self._ask(self._store.claim(claim), link)
        except StoreUnavailable:
            # The claim may still reach the store after this answer (a stalled Redis, a locked
            # SQLite file): the release queued behind it voids it; failing that, it lapses.
            self._later(self._store.release(link.link_id, lease_id, 0), VOID_TIMEOUT)
            raise
        if grant is Grant.REVOKED:
            raise LinkRevoked(link.link_id, info.key, keyword=link.keyword)
        if grant is Grant.EXHAUSTED:
            raise LinkExhausted(link.link_id, info.key, limit, keyword=link.keyword)
        if grant is Grant.HELD:  # free again once the lease ends or lapses
            retry = math.ceil(self.lease_seconds)
            raise LinkHeld(link.link_id, info.key, retry, keyword=link.keyword)
        admission.lease_id, admission.noted = lease_id, claim.noted
        return admission

    async def check(self, link: Link, info: FileInfo) -> int | None:
        """Downloads left (None: unlimited, or the store did not say); LinkRevoked or
        LinkExhausted for a link that could not download. Claims nothing."""
        try:
            usage = await bounded(self._store.usage(link.link_id), STORE_TIMEOUT)
        except StoreUnavailable as exc:
            logger.error("state of {} unchecked for its landing page: {}", link.link_id, exc)
            return None
        limit = link.max_downloads  # signed into its token (0: none)
        if usage.revoked:
            raise LinkRevoked(link.link_id, info.key, keyword=link.keyword)
        if limit and usage.completed >= limit:
            raise LinkExhausted(link.link_id, info.key, limit, keyword=link.keyword)
        # A download in flight holds its lease until its count lands: not free, not gone.
        if limit and usage.completed + usage.active >= limit:
            retry = math.ceil(self.lease_seconds)
            raise LinkHeld(link.link_id, info.key, retry, keyword=link.keyword)
        return limit - usage.completed - usage.active if limit else None

    def transfer(
        self, admission: Admission, on_end: Callable[[], None] = lambda: None
    ) -> LeaseTransfer:
        """The gate's side of the response that sends this admission."""
        return LeaseTransfer(self, admission, on_end)

    async def finish(self, admission: Admission, status: int, sent: int, outcome: Outcome) -> None:
        """End the lease (counting what was sent), then record the attempt."""
        a, v = admission, admission.visit
        counted = bool(a.counted)
        if a.lease_id and a.counted is None:
            try:
                release = self._store.release(a.link.link_id, a.lease_id, sent)
                counted = await bounded(release, STORE_TIMEOUT)
            except StoreUnavailable as exc:  # retried: a lease lapses with its last report
                logger.error("state write lost (retried for {:.0f}s): {}", VOID_TIMEOUT, exc)
                self._later(self._release_later(a.link.link_id, a.lease_id, sent), VOID_TIMEOUT)
        if outcome in REFUSED_LATER:
            return  # nothing was sent; the error handler records the refusal (``refused``)
        complete = outcome is Outcome.SERVED and v.method != "HEAD" and sent >= a.span.length
        if not a.lease_id and complete and a.span.start == 0 and a.span.end == a.span.size:
            counted = True  # an unlimited link: a whole-file response served to its end
        self.records.served(a.link.link_id, a.file, v, status, sent, complete, outcome, counted)

    def handover_lease(self, length: int) -> float:
        """Seconds a span handed to nginx holds its lease: a slow follower's transfer time."""
        return self.lease_seconds + min(length / HANDOVER_FLOOR, HANDOVER_MAX)

    async def settle(
        self,
        link_id: str,
        lease_id: str,
        file: str,
        visit: Visit,
        status: int,
        *,
        sent: int,
        span: int = 0,
    ) -> bool:
        """End a lease another server (nginx) was handed, counting the ``sent`` bytes of its
        ``span`` it reported (``span`` 0: it refused, sent nothing, and the refusal's handler
        records it); True when that completed a copy. StoreUnavailable when not noted."""
        sent = max(0, min(sent, span))
        counted = await bounded(self._store.release(link_id, lease_id, sent), STORE_TIMEOUT)
        if not span:
            return counted
        complete = sent >= span
        outcome = Outcome.SERVED if complete else Outcome.ABORTED
        self.records.served(link_id, file, visit, status, sent, complete, outcome, counted)
        return counted

    async def renew(
        self, admission: Admission, sent: int, *, final: bool = False, count: bool = True
    ) -> bool:
        """Keep a running download's lease; False when it lapsed (the download must stop).

        ``final``: ``sent`` is the whole span, before its last bytes go out; False unless the
        store took it. With ``count`` the lease ends now, counting it (one store trip for the
        count and the finish, #20): ``finish`` then only records the attempt. Without (the
        client's acknowledgements decide, #19) it is noted: the lease counts the span even if
        its release is lost, and ``finish`` counts what was acknowledged.
        """
        if not admission.lease_id:
            return True
        if final and count:
            return await self._count(admission, sent)
        if final and admission.noted and sent >= admission.span.length:
            return True  # the claim noted the whole span already
        try:
            renewal = self._store.renew(
                admission.link.link_id, admission.lease_id, sent, self.lease_seconds
            )
            return await bounded(renewal, STORE_TIMEOUT)
        except StoreUnavailable as exc:
            logger.error("lease of {} not renewed: {}", admission.link.link_id, exc)
            return not final  # the next renewal tells; the lease may lapse meanwhile

    async def _count(self, admission: Admission, sent: int) -> bool:
        """End the lease counting ``sent``, before the last bytes go; False when not recorded."""
        try:
            release = self._store.release(admission.link.link_id, admission.lease_id, sent)
            admission.counted = await bounded(release, STORE_TIMEOUT)
        except StoreUnavailable as exc:
            logger.error("count of {} not recorded: {}", admission.link.link_id, exc)
            return False
        return True

    async def cancel(self, admission: Admission) -> None:
        """Give back the lease of a download refused after admission (too busy to serve)."""
        if admission.lease_id:
            await self.quietly(self._store.release(admission.link.link_id, admission.lease_id, 0))

    async def _release_later(self, link_id: str, lease_id: str, sent: int) -> None:
        """Retry a release lost to a store fault until it lands (``_later`` bounds the time).

        A release pops its lease before lapsed ones are settled, so one that lands after the
        lease's time still counts ``sent``, the bytes really sent, not the last renewal's.
        """
        pause = 0.05
        while True:
            try:
                await bounded(self._store.release(link_id, lease_id, sent), STORE_TIMEOUT)
                logger.info("count of {} recorded after a store fault: {} bytes", link_id, sent)
                return
            except StoreUnavailable:
                await asyncio.sleep(pause)
                pause = min(pause * 2, 1.0)

    def _later(self, call: Coroutine[Any, Any, object], seconds: float = STORE_TIMEOUT) -> None:
        """A store write off the answer's path (the store thread batches them); see ``drain``."""
        task = asyncio.create_task(self.quietly(call, seconds))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        """Wait for audit writes still under way (at shutdown, before the store closes)."""
        await self.records.drain()
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def quietly(self, call: Awaitable[object], seconds: float = STORE_TIMEOUT) -> None:
        """Await a store write; a failure is logged, never raised."""
        try:
            await bounded(call, seconds)
        except StoreUnavailable as exc:
            logger.error("state write lost: {}", exc)

    async def _ask(self, call: Awaitable[T], link: Link) -> T:
        try:
            return await bounded(call, STORE_TIMEOUT)
        except StoreUnavailable as exc:
            raise StoreUnavailable(exc.reason, link.link_id, link.file_key) from None


@dataclass(slots=True)
class LeaseTransfer:
    """``bot.delivery.Transfer`` for one admission: renews its lease, ends it once."""

    gate: Gate
    admission: Admission
    on_end: Callable[[], None]
    _ended: bool = field(default=False)

    async def progress(self, sent: int, *, final: bool = False, count: bool = True) -> bool:
        """Renew the lease with the bytes sent so far."""
        return await self.gate.renew(self.admission, sent, final=final, count=count)

    async def finished(self, status: int, sent: int, outcome: Outcome) -> None:
        """Free the slot, end the lease, record the attempt (once)."""
        if self._ended:
            return
        self._ended = True
        self.on_end()
        await self.gate.finish(self.admission, status, sent, outcome)
