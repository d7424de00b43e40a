"""``GET``/``HEAD /d/{token}``: verify the link, admit the span asked, hand it to the Delivery."""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import Response

from bot.delivery import Offer
from bot.delivery.disk import etag, last_modified
from bot.delivery.ranges import Span, span_for
from bot.delivery.slots import Slot
from bot.errors import RangeNotSatisfiable
from bot.web.deps import ServicesDep, client_ip, visit_of
from bot.web.landing import landing_page

router = APIRouter()

DOWNLOAD_HEADERS = {
    "Cache-Control": "private, no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
    "Vary": "User-Agent",
}


def content_disposition(filename: str) -> str:
    """RFC 6266 ``attachment`` with an ASCII ``filename`` fallback and a UTF-8 ``filename*``."""
    name = "".join(c for c in filename if unicodedata.category(c)[0] != "C")
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    ascii_name = "".join("_" if c in '"\\;' else c for c in ascii_name).strip()
    stem, dot, ext = ascii_name.rpartition(".")
    if not dot:
        stem, ext = ascii_name, ""
    if not stem.strip(" ._"):
        ascii_name = "download" + (f".{ext}" if ext else "")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


@router.api_route("/d/{token}", methods=["GET", "HEAD"], include_in_schema=False)
async def download(token: str, request: Request, services: ServicesDep) -> Response:
    """Serve the file behind a valid link; errors are mapped in ``bot.web.errors``."""
    with services.bad_tokens.guard(client_ip(request)):
        link = services.signer.verify(token)
    info = await anyio.to_thread.run_sync(services.catalog.open, link.file_key)
    if (page := landing_page(request, services, token, link, info)) is not None:
        await services.gate.check(link, info)  # a revoked or used-up link shows that instead
        return page
    headers = request.headers
    if services.delivery.whole_file:  # a URL to the whole file, whatever Range it is sent
        span = Span(0, info.size, info.size)
    else:
        if_range = headers.get("if-range")
        validators = (etag(info.stat), last_modified(info.stat)) if if_range else ("", "")
        try:
            span = span_for(request.method, headers.get("range"), if_range, *validators, info.size)
        except RangeNotSatisfiable as exc:
            raise RangeNotSatisfiable(exc.header, exc.size, info.key, link.link_id) from None
    # The gate first: a used-up or revoked link says so (410) rather than "busy".
    admission = await services.gate.admit(link, info, span, visit_of(request))
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
    )
    return services.delivery.respond(offer, transfer)
