"""Disk streaming: the bot reads the file and sends it, paced, counting what the client took.

After each chunk the response waits on the server's flow control (uvicorn's ``send`` returns
once the transport's buffer has room), so a slow client holds one read. What counts as sent is
what the client's kernel acknowledged, where the server says (``Acks``, from ``bot serve``'s
protocol on Linux): bytes still queued in the server's buffers when a download breaks are not
spent, and a whole span counts only once its last byte is acknowledged. Bytes the client's
kernel acknowledged but its app never read cannot be told apart: they count (at most the
client's receive buffer). Without ``Acks`` what passed flow control counts (at most one chunk
and the kernel's send buffer ahead).

Where the server offers ASGI's zero-copy send (``bot serve``'s protocol, ``bot.web.edge``), a
span over ZEROCOPY_MIN goes from the page cache to the socket (sendfile), never read into Python
(#20); only its last byte is read ahead, and goes out once the file is found unchanged.
"""

from __future__ import annotations

import asyncio
import mimetypes
import time

import anyio
from fastapi.responses import Response
from loguru import logger
from starlette.types import Message, Receive, Scope, Send

from bot.config import Settings
from bot.delivery import Offer, Transfer
from bot.delivery.catalog import FileInfo
from bot.delivery.reading import ACKS, ZEROCOPY, Acks, Reader
from bot.delivery.slots import READ_MAX, READ_MIN, DownloadSlots, Pacer, ReadBudget, paced_chunk
from bot.delivery.validators import last_modified, stream_etag
from bot.errors import FileMissing, TransferAborted
from bot.logs.intended import cut_short
from bot.state.base import Outcome

_WAIT_FOR_CLIENT: Message = {"type": "http.response.body", "body": b"", "more_body": True}
ACK_POLL = (0.001, 0.05)  # seconds between looks at the acknowledged bytes: first, at most
# Spans longer than this go out zero-copy where the server offers it; shorter ones in one read
# and one write. A zero-copy span's last TAIL bytes are read ahead (on the loop from the page
# cache, else in a worker thread) and sent once the file is found unchanged.
ZEROCOPY_MIN, TAIL = 64 * 1024, 1


class DiskResponse(Response):
    """Sends one span of a file: the status line waits for the first read (a vanished file is
    still a 404), reads wait for the client, a client that takes nothing for ``send_timeout``
    seconds is cut off, and every end is reported to the transfer."""

    def __init__(
        self,
        offer: Offer,
        transfer: Transfer,
        *,
        rate: int = 0,
        budget: ReadBudget | None = None,
        send_timeout: float = 60.0,
        renew_every: float = 10.0,
    ) -> None:
        info, span = offer.info, offer.span
        headers = {
            **offer.headers,
            "content-type": mimetypes.guess_type(info.key)[0] or "application/octet-stream",
            "content-length": str(span.length),
            "accept-ranges": "bytes",
            "etag": stream_etag(info),
            "last-modified": last_modified(info),
        }
        if span.partial:
            headers["content-range"] = span.content_range()
        super().__init__(status_code=206 if span.partial else 200, headers=headers)
        self.offer, self.transfer = offer, transfer
        self._rate, self._timeout, self._renew_every = rate, send_timeout, renew_every
        self._budget = budget or ReadBudget(READ_MAX)
        self._taken = 0  # bytes of the span that passed flow control (see the module's docstring)
        self._acks: Acks | None = None
        self._base: int | None = None  # the connection's bytes written before the span's first
        self._want = piece(rate)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._acks = scope.get(ACKS)
        zerocopy = (
            ZEROCOPY in scope.get("extensions", {})
            and not self._rate
            and self.offer.span.length > ZEROCOPY_MIN
        )

        async def timed(message: Message) -> None:
            # No progress for send_timeout: cut off. asyncio's timeout: anyio's fail_after (a
            # cancel scope) cost ~5x more, on every chunk.
            async with asyncio.timeout(self._timeout):
                await send(message)

        out: Send = _paced(timed, self._rate) if self._rate else timed
        status, outcome = 0, Outcome.ABORTED
        try:
            outcome = await self._send(receive, out, zerocopy)
            status = self.status_code
        except TimeoutError:
            outcome = Outcome.STALLED
        except FileMissing:
            outcome = Outcome.MISSING  # before the status line: the 404 handler records it
            raise
        finally:
            sent = self._counted(outcome)
            if outcome in _CUT_OFF:
                cut_short()  # every way this ends short is logged (here, or by its cause)
            if outcome in (Outcome.STALLED, Outcome.CHANGED, Outcome.LAPSED):
                status = self.status_code
                logger.warning(
                    "download of {!r} cut off ({}) after {} bytes",
                    self.offer.info.key,
                    _REASONS[outcome],
                    sent,
                )
            with anyio.CancelScope(shield=True):  # a disconnect must still end the lease
                await self.transfer.finished(status, sent, outcome)

    def _counted(self, outcome: Outcome) -> int:
        """What the ended response counts as sent (see the comments)."""
        acks = self._acks
        if acks is None or self._base is None or outcome not in _CUT_OFF or acks.gone():
            return self._sent()  # served, or the client hung up: what it acknowledged
        # Cut off by the server while the client listens: the close still delivers what the
        # kernel and the transport hold, so that counts; but a silent client's connection is
        # reset instead (its window is shut: nothing moves while it is), dropping the unsent.
        if outcome is Outcome.STALLED:
            acks.abort()
            return self._sent()
        return max(0, min(self.offer.span.length, acks.written() - self._base))

    def _sent(self) -> int:
        """Bytes of the span that count as sent: acknowledged, or (without Acks) taken."""
        if self._acks is None:
            return self._taken
        if self._base is None:  # no status line sent
            return 0
        return max(0, min(self.offer.span.length, self._acks.acked() - self._base))

    async def _start(self, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        if self._acks is not None:
            self._base = self._acks.written()

    async def _send(self, receive: Receive, send: Send, zerocopy: bool) -> Outcome:
        span, info = self.offer.span, self.offer.info
        reader = Reader(info.path, span, info.identity)
        if self.offer.method == "HEAD" or reader.done:
            await self._start(send)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return Outcome.SERVED
        if zerocopy:
            try:
                return await self._send_aside(reader, send)
            finally:
                reader.close()
        budget, floor = self._budget, min(READ_MIN, self._want)
        # A span that fits in one read (``piece``) goes out in one piece, outside the budget: the
        # budget is for big files, whose slow clients would otherwise each hold a full read for
        # minutes.
        held = 0 if span.length <= self._want else budget.take(self._want, floor)
        ended = Outcome.ABORTED
        try:
            try:  # the status line waits for the first read: a vanished file is still a 404
                first = await anyio.to_thread.run_sync(reader.read, held or span.length)
            except (OSError, TransferAborted):
                raise FileMissing(info.key) from None
            await self._start(send)
            if reader.done:  # one read held it all: no task, no wait (most small files)
                return await self._last(send, first)
            async with anyio.create_task_group() as group:

                async def stream() -> None:
                    nonlocal held, ended
                    chunk, renewed = first, time.monotonic()
                    try:
                        while True:
                            if reader.done:
                                ended = await self._last(send, chunk)
                                break
                            body = {"type": "http.response.body", "body": chunk}
                            await send({**body, "more_body": True})
                            # Returns once the client has taken most of the last chunk (the
                            # server's flow control): only then read the next, so a slow client
                            # holds one read, and what is counted is what the client took.
                            await send(_WAIT_FOR_CLIENT)
                            self._taken += len(chunk)
                            if time.monotonic() - renewed >= self._renew_every:
                                renewed = time.monotonic()
                                if not await self.transfer.progress(self._sent()):
                                    ended = Outcome.LAPSED
                                    break
                            budget.give(held)
                            held = 0
                            held = budget.take(self._want, floor)
                            chunk = await anyio.to_thread.run_sync(reader.read, held)
                    except TimeoutError:
                        ended = Outcome.STALLED
                    except TransferAborted:
                        ended = Outcome.CHANGED
                    group.cancel_scope.cancel()

                group.start_soon(stream)
                while (await receive())["type"] != "http.disconnect":
                    pass
                group.cancel_scope.cancel()  # the client hung up: stop reading
        finally:
            budget.give(held)
            reader.close()
        if ended is Outcome.ABORTED and self._sent() >= span.length:
            return Outcome.SERVED  # gone after acknowledging every byte
        return ended

    async def _send_aside(self, reader: Reader, send: Send) -> Outcome:
        """The span with no copy in Python (the server's zero-copy send: page cache to socket),
        all but its tail; then the tail, read first, once the file is found unchanged (#20)."""
        try:  # the status line waits for the first read: a vanished file is still a 404
            tail = reader.cached_tail(TAIL)  # on the loop; from the disk in a worker thread
            if tail is None:
                tail = await anyio.to_thread.run_sync(reader.tail, TAIL)
        except (OSError, TransferAborted):
            raise FileMissing(self.offer.info.key) from None
        await self._start(send)
        renewed = time.monotonic()
        try:
            while reader.left > TAIL:
                count = min(self._want, reader.left - TAIL)
                at = reader.offset
                piece = {"type": ZEROCOPY, "file": reader.fileno(), "offset": at, "count": count}
                await send({**piece, "more_body": True})
                reader.passed(count)
                self._taken += count
                if time.monotonic() - renewed >= self._renew_every:
                    renewed = time.monotonic()
                    if not await self.transfer.progress(self._sent()):
                        return Outcome.LAPSED
        except TimeoutError:
            raise  # stalled (an OSError too)
        except TransferAborted:
            return Outcome.CHANGED
        except OSError as exc:  # the file ended, or the connection closed, during a piece
            if reader.changed():
                return Outcome.CHANGED
            if isinstance(exc, ConnectionError) and self._acks is not None:
                self._acks.abort()  # broken by the client: what it acknowledged is final
            return Outcome.ABORTED
        return await self._last(send, tail)

    async def _last(self, send: Send, chunk: bytes) -> Outcome:
        """The last chunk, once the whole span is noted in the store; never without that."""
        # A count the store cannot take (full disk, stalled Redis, a lapsed lease) ends the
        # response without its last bytes: the client sees a broken download it can resume,
        # never a whole copy the link did not count. Noted first, a client holding every byte
        # finds the count in even if the store fails after. With Acks the response then ends
        # once the client's kernel acknowledged every byte, counting only what it acknowledged.
        with anyio.CancelScope(shield=True):
            # Without Acks the span counts now (one trip, #20); with them it is only noted and
            # the finish counts what the client's kernel acknowledged (#19).
            whole = self._taken + len(chunk)
            if not await self.transfer.progress(whole, final=True, count=self._acks is None):
                logger.warning(
                    "download of {!r} cut off before its last {} bytes: its count could not"
                    " be recorded",
                    self.offer.info.key,
                    len(chunk),
                )
                return Outcome.ABORTED
            self._taken += len(chunk)
            if self._acks is None:
                await self.transfer.finished(self.status_code, self._taken, Outcome.SERVED)
        if self._acks is None:
            await send({"type": "http.response.body", "body": chunk, "more_body": False})
            return Outcome.SERVED
        # The response stays open until acknowledged (a Connection: close would end it at once).
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
        ended = await self._acknowledged(self._acks)
        if ended is Outcome.SERVED:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        return ended

    async def _acknowledged(self, acks: Acks) -> Outcome:
        """SERVED once the whole span is acknowledged; ABORTED if lost, STALLED if stuck first."""
        # Stuck: nothing more acknowledged for send_timeout seconds.
        pause, seen, since = ACK_POLL[0], -1, time.monotonic()
        while (sent := self._sent()) < self.offer.span.length:
            if acks.gone():
                return Outcome.ABORTED
            if sent > seen:
                seen, since = sent, time.monotonic()
            elif time.monotonic() - since >= self._timeout:
                return Outcome.STALLED
            await acks.pause(pause)
            pause = min(pause * 2, ACK_POLL[1])
        return Outcome.SERVED


def piece(rate: int) -> int:
    """The most one read takes (a paced download reads less at a time)."""
    return paced_chunk(rate, READ_MAX) if rate else READ_MAX


_CUT_OFF = {Outcome.STALLED, Outcome.CHANGED, Outcome.LAPSED, Outcome.ABORTED}
_REASONS = {
    Outcome.STALLED: "the client took nothing for [limits] send_timeout",
    Outcome.CHANGED: "the file changed during the download",
    Outcome.LAPSED: "its lease lapsed",
}


def _paced(send: Send, rate: int) -> Send:
    """``send`` that holds a download to ``rate`` bytes per second."""
    pacer = Pacer(rate, time.monotonic())

    async def paced(message: Message) -> None:
        if message["type"] == "http.response.body":
            wait = pacer.delay(len(message.get("body", b"")), time.monotonic())
            if wait > 0:
                await anyio.sleep(wait)
        await send(message)

    return paced


class DiskDelivery:
    """``[files] delivery = "direct"``: the bot streams files itself."""

    counts_slots = True
    whole_file = False
    hands_over = False

    def __init__(self, rate: int, budget: ReadBudget, send_timeout: float, renew_every: float):
        self._rate, self._budget = rate, budget
        self.one_piece = piece(rate)  # one read, one send: the claim notes it whole
        self._send_timeout, self._renew_every = send_timeout, renew_every

    def etag(self, info: FileInfo) -> str:
        """The ETag a DiskResponse sends."""
        return stream_etag(info)

    def respond(self, offer: Offer, transfer: Transfer) -> Response:
        """A streamed response of the offer's span."""
        return DiskResponse(
            offer,
            transfer,
            rate=self._rate,
            budget=self._budget,
            send_timeout=self._send_timeout,
            renew_every=self._renew_every,
        )


def build(settings: Settings, slots: DownloadSlots) -> DiskDelivery:
    """The direct mode, from ``[limits]`` and ``[links]``."""
    return DiskDelivery(
        settings.limits.rate_bytes_per_second,
        slots.reads,
        settings.limits.send_timeout,
        settings.links.claim_lease_seconds / 3,
    )
