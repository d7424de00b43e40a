"""``GET``/``HEAD /d/{token}``: verify the link, then stream the file from disk."""

from __future__ import annotations

import mimetypes
import unicodedata
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import Response
from loguru import logger
from starlette.types import Message, Receive, Scope, Send

from bot.slots import Slot
from bot.web.delivery import PacedFileResponse, accel_response, take_slot
from bot.web.deps import ServicesDep, client_ip
from bot.web.gate import Admission
from bot.web.landing import landing_page

router = APIRouter()

DOWNLOAD_HEADERS = {
    "Cache-Control": "private, no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
    "Vary": "User-Agent",
}

Finished = Callable[[int, int, bool], Awaitable[None]]


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


class TrackedFileResponse(PacedFileResponse):
    """A FileResponse that reports its status, bytes sent and completion when it ends."""

    def __init__(self, *args: Any, on_finish: Finished, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_finish = on_finish
        self.ignore_range = False  # True: send the whole file with 200 whatever Range asks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        status, sent, complete = 0, 0, False

        async def tap(message: Message) -> None:
            nonlocal status, sent, complete
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
                complete = complete or not message.get("more_body", False)
            await send(message)

        if self.ignore_range:
            scope = {**scope, "headers": [h for h in scope["headers"] if h[0].lower() != b"range"]}
        try:
            await super().__call__(scope, receive, tap)
        finally:
            with anyio.CancelScope(shield=True):  # a disconnect must still free the claim
                await self._on_finish(status, sent, complete)


@router.api_route("/d/{token}", methods=["GET", "HEAD"], include_in_schema=False)
async def download(token: str, request: Request, services: ServicesDep) -> Response:
    """Serve the file behind a valid link; errors are mapped in ``bot.web.errors``."""
    with services.bad_tokens.guard(client_ip(request)):
        link = services.signer.verify(token)
    info = await anyio.to_thread.run_sync(services.catalog.open, link.file_key)
    if (page := landing_page(request, services, token, link, info)) is not None:
        await services.gate.check(link, info)  # a revoked or used-up link shows that instead
        return page
    x_accel = services.settings.files.delivery == "x-accel"
    slot: Slot | None = None
    ip, agent = client_ip(request), request.headers.get("user-agent", "-")
    range_header = request.headers.get("range", "-")
    admission: Admission | None = None

    async def finished(status: int, sent: int, complete: bool) -> None:
        if slot is not None:
            slot.release()
        logger.info(
            "download id={} file={!r} ip={} ua={!r} range={} status={} bytes={} complete={}",
            link.link_id,
            info.key,
            ip,
            agent[:200],
            range_header[:100],
            status,
            sent,
            complete,
        )
        services.metrics.downloads.labels(str(status)).inc()
        services.metrics.bytes_sent.inc(sent)
        if admission is not None:
            await services.gate.finish(admission, status, sent, complete)

    media_type = mimetypes.guess_type(info.key)[0] or "application/octet-stream"
    headers = {
        **DOWNLOAD_HEADERS,
        "Content-Disposition": content_disposition(info.path.name),
    }
    if services.s3 is not None:  # object storage: the bucket sends the bytes (bot.delivery.s3)
        admission = await services.gate.admit(link, info, request, None)
        try:
            answer = await services.s3.respond(
                info, {**headers, "Content-Type": media_type}, request.method
            )
        except BaseException:
            await services.gate.cancel(admission)
            raise
        redirected = answer.status_code == 302
        await finished(answer.status_code, info.size if redirected else 0, True)
        return answer
    response = TrackedFileResponse(
        info.path,
        stat_result=info.stat,
        media_type=media_type,
        headers=headers,
        on_finish=finished,
        file_key=info.key,
        rate=services.settings.limits.rate_bytes_per_second,
        slots=services.slots,
    )
    # The gate first: a used-up or revoked link says so (410) rather than "busy".
    admission = await services.gate.admit(link, info, request, response)
    if not x_accel:  # in x-accel mode nginx's limit_conn counts (see docker/nginx.conf)
        try:
            slot = take_slot(services.slots, link.link_id, request.method)
        except BaseException:
            await services.gate.cancel(admission)
            raise
    response.ignore_range = admission.whole
    if x_accel:
        # Counted when handed over (nginx's access log has the bytes); nginx honours Range.
        await finished(200, 0, True)
        return accel_response(info, headers, services.settings)
    return response
