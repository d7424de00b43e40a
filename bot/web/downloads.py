"""``GET``/``HEAD /d/{token}``: verify the link, admit the span asked, hand it to the Delivery."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from bot.delivery import Offer
from bot.delivery.accel import LEASE_HEADER, AccelDelivery, HandedOver
from bot.delivery.ranges import Span, span_for
from bot.delivery.slots import Slot
from bot.delivery.validators import last_modified
from bot.errors import RETRY_AFTER, FileMissing, LinkInvalid, RangeNotSatisfiable, ServerBusy
from bot.web.deps import ServicesDep, client_ip, get_services, raw_path, visit_of
from bot.web.filenames import content_disposition
from bot.web.landing import landing_page

router = APIRouter()

DOWNLOAD_HEADERS = {
    "Cache-Control": "private, no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
    "Vary": "User-Agent",
}


@router.api_route("/d/{token}", methods=["GET", "HEAD"], include_in_schema=False)
async def download(token: str, request: Request, services: ServicesDep) -> Response:
    """Serve the file behind a valid link; errors are mapped in ``bot.web.errors``."""
    raw = raw_path(request)
    if not raw.startswith(b"/d/"):
        raise HTTPException(404, "Not Found")  # /%64/<token>: not how a link is spelled
    with services.bad_tokens.guard(client_ip(request)):
        if b"%" in raw:  # /d/%57…: the token escaped, another URI for the same link
            raise LinkInvalid("percent-escaped token")
        link = services.signer.verify(token)
    # A stat, in a worker thread (a stalled disk must not stall the loop); it holds nothing a
    # cancellation would leave open, so asyncio's own executor does (anyio's hop cost 2x).
    loop = asyncio.get_running_loop()
    try:
        info = await loop.run_in_executor(None, services.catalog.open, link.file_key)
    except FileMissing as exc:
        exc.link_id = link.link_id  # recorded against the link (`bot audit` shows it)
        raise
    if (page := await landing_page(request, services, token, link, info)) is not None:
        return page
    headers = request.headers
    if services.delivery.whole_file:  # a URL to the whole file, whatever Range it is sent
        span = Span(0, info.size, info.size)
    else:
        if_range = headers.get("if-range")
        validators = (services.delivery.etag(info), last_modified(info)) if if_range else ("", "")
        try:
            span = span_for(request.method, headers.get("range"), if_range, *validators, info.size)
        except RangeNotSatisfiable as exc:
            raise RangeNotSatisfiable(exc.header, exc.size, info.key, link.link_id) from None
    # The gate first: a used-up or revoked link says so (410) rather than "busy".
    delivery, visit = services.delivery, visit_of(request)
    one_piece = span.length <= delivery.one_piece
    admission = await services.gate.admit(
        link, info, span, visit, handed_over=delivery.hands_over, one_piece=one_piece
    )
    slot: Slot | None = None
    if services.delivery.counts_slots and request.method != "HEAD":  # HEAD sends no bytes
        try:
            slot = services.slots.acquire(link.link_id)
        except BaseException:
            await services.gate.cancel(admission)
            raise
    transfer = services.gate.transfer(admission, slot.release if slot else lambda: None)
    offer = Offer(
        link.link_id,
        info,
        span,
        request.method,
        {**DOWNLOAD_HEADERS, "Content-Disposition": content_disposition(info.path.name)},
        admission.lease_id,
        link.expires_at.timestamp() - services.clock(),
    )
    return services.delivery.respond(offer, transfer)


def download_token(method: str, path: str) -> str:
    """The token of a ``GET``/``HEAD /d/<token>`` (the route's one path segment), else ""."""
    if method not in ("GET", "HEAD") or not path.startswith("/d/"):
        return ""
    token = path[3:]
    return "" if "/" in token else token


async def download_request(token: str, request: Request) -> Response:
    """The route above, called by ``BotApp`` without FastAPI's routing and dependencies."""
    return await download(token, request, get_services(request))


ACCEL_STEPS = ("/_accel/accepted", "/_accel/finished", "/_accel/refused")
SENT_HEADER = "X-Accel-Sent"  # nginx's $body_bytes_sent, on its post_action callback


def accel_step(method: str, path: str) -> str:
    """The step of nginx's ``/_accel/<step>`` callback (x-accel downloads), else ""."""
    return path.removeprefix("/_accel/") if method == "GET" and path in ACCEL_STEPS else ""


async def accel_request(step: str, request: Request) -> Response:
    """The callback below, called by ``BotApp`` without FastAPI's routing and dependencies."""
    return await accel_callback(step, request, get_services(request))


@router.get("/_accel/{step}", include_in_schema=False)
async def accel_callback(step: str, request: Request, services: ServicesDep) -> Response:
    """nginx's word on a span the bot handed over (docker/nginx.conf, x-accel mode only).

    ``accepted``: the ``auth_request`` of nginx configs from before #20 (a call per download,
    now dropped): a span the bot signed may go (403 otherwise: nginx sends nothing).
    ``finished``: its ``post_action``, once the transfer ended, whole or broken: end the lease
    counting the bytes nginx sent.
    ``refused``: its ``error_page``: return the lease, and answer with the bot's busy (or
    missing) page.
    """
    delivery = services.delivery
    if not isinstance(delivery, AccelDelivery) or f"/_accel/{step}" not in ACCEL_STEPS:
        raise HTTPException(404)
    value = request.headers.get(LEASE_HEADER, "")
    handed = HandedOver.verify(value, delivery.key) if value else None
    if step != "refused":
        if not value:
            return Response(status_code=204)  # a HEAD or an unlimited link: nothing to count
        if handed is None:
            raise HTTPException(403)  # not a span the bot handed over: nginx sends nothing
        if step == "finished":
            h, sent = handed, _bytes(request.headers.get(SENT_HEADER, ""))
            visit = visit_of(request)
            await services.gate.settle(
                h.link_id, h.lease_id, h.file, visit, h.status, sent=sent, span=h.sent
            )
        return Response(status_code=204)
    if handed is not None:
        settle = services.gate.settle(
            handed.link_id, handed.lease_id, "", visit_of(request), 0, sent=0
        )
        await services.gate.quietly(settle)
    link_id, file = (handed.link_id, handed.file) if handed else ("", "")
    if request.headers.get("x-accel-refused") == "404":
        raise FileMissing(file)
    raise ServerBusy("nginx refused the transfer", RETRY_AFTER, link_id)


def _bytes(value: str) -> int:
    """nginx's byte count from a header (anything else: 0, which counts nothing)."""
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 19 else 0
