"""Use limits, revocation and the audit trail around one download (the store keeps the counts)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from fastapi import Request
from loguru import logger
from starlette.datastructures import Headers
from starlette.responses import FileResponse, MalformedRangeHeader, RangeNotSatisfiable

from bot.catalog import FileInfo
from bot.config import Settings
from bot.errors import LinkExhausted, LinkRevoked, StoreUnavailable
from bot.links import Clock, Link
from bot.state import Attempt, Grant, Store, bounded
from bot.web.deps import client_ip

T = TypeVar("T")
STORE_TIMEOUT = 2.0
COUNTS_KEPT_AFTER_EXPIRY = 3600.0
Kind = Literal["start", "resume", "none"]


def download_limits(settings: Settings) -> dict[str, int]:
    """File → downloads per link; a file named by several keywords gets the strictest limit."""
    limits: dict[str, int] = {}
    for keyword in settings.keywords:
        limit = (
            settings.links.max_downloads if keyword.max_downloads is None else keyword.max_downloads
        )
        known = limits.get(keyword.file)
        limits[keyword.file] = limit if not known else min(known, limit or known)
    return limits


def request_kind(method: str, headers: Headers, response: FileResponse | None, size: int) -> Kind:
    """``start``: the response sends byte 0; ``resume``: it starts later; ``none``: no body.

    ``response`` None: a redirect (s3), where the bucket, not the bot, answers If-Range.
    """
    if method == "HEAD":
        return "none"
    http_range, if_range = headers.get("range"), headers.get("if-range")
    if http_range is None:
        return "start"
    # Starlette's own parser and If-Range test, so the kind matches what FileResponse then sends.
    if if_range is not None and response is not None and not response._should_use_range(if_range):
        return "start"
    try:
        ranges = FileResponse._parse_range_header(http_range, size)
    except (MalformedRangeHeader, RangeNotSatisfiable):
        # The bot answers 400/416 itself; a redirect hands the bucket the whole object anyway.
        return "none" if response is not None else "start"
    return "resume" if ranges and min(start for start, _ in ranges) > 0 else "start"


@dataclass(frozen=True, slots=True)
class Visit:
    """Who asked, as the audit trail records it."""

    ip: str
    user_agent: str
    range: str

    @classmethod
    def of(cls, request: Request) -> Visit:
        """The visit behind a request (header values cut to a sane length)."""
        headers = request.headers
        return cls(
            client_ip(request), headers.get("user-agent", "")[:200], headers.get("range", "")[:100]
        )


class Gate:
    """Decides whether a download may go ahead and records how it ended."""

    def __init__(self, store: Store, limits: dict[str, int], clock: Clock = time.time) -> None:
        self._store = store
        self._limits = limits
        self._clock = clock
        self._pending: set[asyncio.Task[None]] = set()

    async def admit(
        self, link: Link, info: FileInfo, request: Request, response: FileResponse | None
    ) -> Admission:
        """Admission for one request; LinkRevoked, LinkExhausted or StoreUnavailable otherwise."""
        kind = request_kind(request.method, request.headers, response, info.size)
        limit = self._limits.get(info.key, 0)
        admission = Admission(link, info.key, Visit.of(request), counts=kind == "start")
        if limit == 0:
            try:
                revoked = (await self._ask(self._store.usage(link.link_id), link)).revoked
            except StoreUnavailable as exc:
                logger.error("revocation of {} unchecked (no use limit): {}", link.link_id, exc)
                revoked = False
            if revoked:
                raise LinkRevoked(link.link_id, info.key)
            return admission
        if kind != "start":
            usage = await self._ask(self._store.usage(link.link_id), link)
            if usage.revoked:
                raise LinkRevoked(link.link_id, info.key)
            if kind == "none" or usage.active or usage.completed:
                return admission  # never counted: HEAD, 400/416, or a resume of a counted download
            # A resume with nothing counted could piece the file together uncounted: serve it
            # whole (RFC 9110 lets a server ignore Range) as a counted download instead.
            admission.counts = admission.whole = True
        keep = link.expires_at.timestamp() - self._clock() + COUNTS_KEPT_AFTER_EXPIRY
        grant = await self._ask(self._store.claim_download(link.link_id, limit, keep), link)
        if grant is Grant.REVOKED:
            raise LinkRevoked(link.link_id, info.key)
        if grant is Grant.EXHAUSTED:
            raise LinkExhausted(link.link_id, info.key, limit)
        admission.claimed = True
        return admission

    async def check(self, link: Link, info: FileInfo) -> None:
        """LinkRevoked or LinkExhausted for a link that could not download; claims nothing."""
        try:
            usage = await bounded(self._store.usage(link.link_id), STORE_TIMEOUT)
        except StoreUnavailable as exc:
            logger.error("state of {} unchecked for its landing page: {}", link.link_id, exc)
            return
        limit = self._limits.get(info.key, 0)
        if usage.revoked:
            raise LinkRevoked(link.link_id, info.key)
        # A download in flight holds its slot until its count lands: treat it as taken.
        if limit and usage.completed + usage.active >= limit:
            raise LinkExhausted(link.link_id, info.key, limit)

    async def refused(
        self, request: Request, outcome: str, status: int, link_id: str = "", file: str = ""
    ) -> None:
        """Record a refused request (expired, bad token, exhausted…) in the audit trail."""
        visit = Visit.of(request)
        attempt = Attempt(
            self._clock(), outcome, link_id, file, visit.ip, visit.user_agent, visit.range, status
        )
        self._later(self._store.record_attempt(attempt))

    async def finish(self, admission: Admission, status: int, sent: int, complete: bool) -> None:
        """Count or free the claim, then record the attempt."""
        a, v = admission, admission.visit
        # 302: a redirect to the bucket (s3 delivery) hands the whole object over.
        counted = a.counts and complete and status in (200, 206, 302)
        if a.claimed:
            await self.quietly(self._store.end_download(a.link.link_id, counted))
        attempt = Attempt(
            self._clock(),
            "served",
            a.link.link_id,
            a.file,
            v.ip,
            v.user_agent,
            v.range,
            status,
            sent,
            complete,
            counted,
        )
        self._later(self._store.record_attempt(attempt))

    async def cancel(self, admission: Admission) -> None:
        """Give back the claim of a download refused after admission (too busy to serve)."""
        if admission.claimed:
            await self.quietly(self._store.end_download(admission.link.link_id, False))

    def _later(self, call: Coroutine[Any, Any, None]) -> None:
        """An audit write off the answer's path (the store thread batches them); see ``drain``."""
        task = asyncio.create_task(self.quietly(call))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        """Wait for audit writes still under way (at shutdown, before the store closes)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def quietly(self, call: Awaitable[None]) -> None:
        """Await a store write; a failure is logged, never raised."""
        try:
            await bounded(call, STORE_TIMEOUT)
        except StoreUnavailable as exc:
            logger.error("state write lost: {}", exc)

    async def _ask(self, call: Awaitable[T], link: Link) -> T:
        try:
            return await bounded(call, STORE_TIMEOUT)
        except StoreUnavailable as exc:
            raise StoreUnavailable(exc.reason, link.link_id, link.file_key) from None


@dataclass(slots=True)
class Admission:
    """A download let through: whether it holds a claim, may count, and is served whole."""

    link: Link
    file: str
    visit: Visit
    counts: bool
    claimed: bool = False
    whole: bool = False
