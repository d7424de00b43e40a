"""Domain errors → HTTP answers: the only place status codes are chosen, as one table.

``REFUSALS`` maps each error class to its ``Refusal`` (status, code, page, the outcome the
download audit records, the log line); ``refuse`` is the one handler for all of them.
"""

from __future__ import annotations

from typing import cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from loguru import logger
from starlette.exceptions import HTTPException

from bot.logs.safe import escape_controls
from bot.logs.setup import redact
from bot.web.deps import client_ip, get_services, visit_of
from bot.web.refusals import REFUSALS, refusal_for

NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def wants_json(request: Request) -> bool:
    """True when the client asks for JSON rather than a page."""
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


async def refuse(request: Request, exc: Exception) -> Response:
    """The one handler: record a download refusal, log, answer with the page or plain text."""
    row, services = refusal_for(exc), get_services(request)
    context: dict[str, object] = {"title": row.title, "description": row.description}
    context.update(row.context(exc, services))
    visit, ago = visit_of(request), context.pop("ago_seconds", 0)
    # Gate.refused says False past the audit caps or the log-line cap: then no log line.
    if row.outcome is None:
        logged = services.gate.may_log()
    else:
        link_id, file = getattr(exc, "link_id", ""), getattr(exc, "file_key", "")
        logged = services.gate.refused(visit, row.outcome, row.status, link_id, file)
    if logged:
        line = row.log.format(
            exc=exc,
            ip=visit.ip,
            status=row.status,
            path=redact(request.url.path),
            path_len=len(request.url.path),
            ago=ago,
            link_id=getattr(exc, "link_id", "") or "-",
        )
        logger.log(row.level, line)
    headers = {**NO_STORE, **row.headers(exc)}
    if not row.page:
        why = f": {escape_controls(str(exc))[:200]}" if row.says_why else ""
        return PlainTextResponse(row.code + why, row.status, headers)
    retry_after = context.get("retry_after")
    if isinstance(retry_after, int) and retry_after:
        headers["Retry-After"] = str(retry_after)
    if wants_json(request):
        body = {"error": row.code, **{k: v for k, v in context.items() if isinstance(v, str | int)}}
        return JSONResponse(body, status_code=row.status, headers=headers)
    html = services.pages.render(row.page, **context)
    return HTMLResponse(html, status_code=row.status, headers=headers)


async def http_error(request: Request, exc: Exception) -> Response:
    exc = cast(HTTPException, exc)
    if get_services(request).gate.may_log():  # a flood of 404s: lines capped per second
        path, ip = redact(request.url.path), client_ip(request)
        logger.warning("http {} {} {} ip={}", exc.status_code, request.method, path, ip)
    headers = {**NO_STORE, **(exc.headers or {})}
    return PlainTextResponse(str(exc.detail), exc.status_code, headers)


async def bad_request(request: Request, exc: Exception) -> Response:
    if get_services(request).gate.may_log():
        path = redact(request.url.path)
        logger.warning("bad request ip={} path={}: {}", client_ip(request), path, exc)
    return PlainTextResponse("bad request", 400, NO_STORE)


def install_error_handlers(app: FastAPI) -> None:
    """Register the table's handler for every listed error, and the framework's own two."""
    for cls in REFUSALS:
        app.add_exception_handler(cls, refuse)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, bad_request)
