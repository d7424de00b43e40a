"""Domain errors → HTTP answers: the only place status codes are chosen."""

from __future__ import annotations

from datetime import UTC
from typing import cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from loguru import logger
from starlette.exceptions import HTTPException

from bot.errors import (
    BodyRefused,
    BodyTimeout,
    BodyTooLarge,
    CodeUnknown,
    DownloadRefused,
    EncryptionRequired,
    FileMissing,
    LinkBusy,
    LinkExhausted,
    LinkExpired,
    LinkInvalid,
    LinkRevoked,
    MessageError,
    SignatureError,
    StoreUnavailable,
    TooManyBadTokens,
)
from bot.logs import redact
from bot.pickup import PATH as PICKUP_PATH
from bot.replies import CHINA
from bot.web.deps import client_ip, get_services

NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
RETRY_AFTER = 30  # seconds, when the store does not answer


def wants_json(request: Request) -> bool:
    """True when the client asks for JSON rather than a page."""
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _page(
    request: Request,
    status: int,
    error: str,
    page: str,
    *,
    retry_after: int = 0,
    **context: object,
) -> Response:
    """The error as JSON or as a page; ``retry_after`` also goes out as the Retry-After header."""
    headers = {**NO_STORE, "Retry-After": str(retry_after)} if retry_after else NO_STORE
    if retry_after:
        context["retry_after"] = retry_after
    if wants_json(request):
        body = {"error": error, **{k: v for k, v in context.items() if isinstance(v, str | int)}}
        return JSONResponse(body, status_code=status, headers=headers)
    html = get_services(request).pages.render(page, **context)
    return HTMLResponse(html, status_code=status, headers=headers)


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} 秒"
    if seconds < 3600:
        return f"{seconds // 60} 分钟"
    if seconds < 86400:
        return f"{seconds // 3600} 小时"
    return f"{seconds // 86400} 天"


async def link_expired(request: Request, exc: Exception) -> Response:
    exc = cast(LinkExpired, exc)
    services = get_services(request)
    ago = services.clock() - exc.expired_at.timestamp()
    services.metrics.expired.inc()
    logger.warning(
        "expired link id={} file={!r} expired {}s ago ip={}",
        exc.link_id,
        exc.file_key,
        int(ago),
        client_ip(request),
    )
    await services.gate.refused(request, "expired", 410, exc.link_id, exc.file_key)
    keyword = services.keyword_for_file.get(exc.file_key, "")
    return _page(
        request,
        410,
        "link_expired",
        "expired",
        title="下载链接已过期 · Link expired",
        description=f"请重新发送关键词 {keyword}".strip(),
        expired_at=exc.expired_at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M"),
        expired_at_utc=exc.expired_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
        expires_at=exc.expired_at.isoformat(),
        ago=_ago(ago),
        keyword=keyword,
    )


async def link_invalid(request: Request, exc: Exception) -> Response:
    logger.warning(
        "bad token ({}) ip={} path_len={}", exc, client_ip(request), len(request.url.path)
    )
    get_services(request).metrics.bad_tokens.inc()
    await get_services(request).gate.refused(request, "bad_token", 403)
    return _page(
        request,
        403,
        "link_invalid",
        "invalid",
        title="链接无效 · Invalid link",
        description="请重新发送关键词获取链接",
    )


async def code_unknown(request: Request, exc: Exception) -> Response:
    exc = cast(CodeUnknown, exc)
    logger.warning("wrong pick-up code {} ip={}", exc.shown, client_ip(request))
    return _page(
        request,
        404,
        "code_unknown",
        "pickup",
        title="提取码不对或已过期 · Wrong code",
        description="请回到公众号重新获取",
        wrong=True,
        action=PICKUP_PATH,
    )


async def file_missing(request: Request, exc: Exception) -> Response:
    exc = cast(FileMissing, exc)
    logger.error("file missing file={!r} ip={}", exc.file_key, client_ip(request))
    await get_services(request).gate.refused(request, "missing", 404, file=exc.file_key)
    return _page(
        request,
        404,
        "file_missing",
        "missing",
        title="文件暂时不可用 · File unavailable",
        description="请稍后重新发送关键词",
    )


async def too_many_bad_tokens(request: Request, exc: Exception) -> Response:
    exc = cast(TooManyBadTokens, exc)
    logger.warning("too many bad tokens ip={} retry_after={}s", exc.ip, exc.retry_after)
    return _page(
        request,
        429,
        "too_many_requests",
        "throttled",
        title="请求过于频繁 · Too many requests",
        description="请稍后再试",
        retry_after=exc.retry_after,
    )


async def link_used_up(request: Request, exc: Exception) -> Response:
    exc = cast(LinkExhausted | LinkRevoked, exc)
    revoked = isinstance(exc, LinkRevoked)
    services = get_services(request)
    logger.warning("{} id={} file={!r} ip={}", exc, exc.link_id, exc.file_key, client_ip(request))
    outcome = "revoked" if revoked else "exhausted"
    await services.gate.refused(request, outcome, 410, exc.link_id, exc.file_key)
    return _page(
        request,
        410,
        f"link_{outcome}",
        outcome,
        title="链接已停用 · Link switched off" if revoked else "下载次数已用完 · Link used up",
        description="请重新发送关键词获取新的链接",
        keyword=services.keyword_for_file.get(exc.file_key, ""),
        max_downloads=0 if revoked else cast(LinkExhausted, exc).limit,
    )


async def store_unavailable(request: Request, exc: Exception) -> Response:
    exc = cast(StoreUnavailable, exc)
    logger.error("download id={} refused, {}", exc.link_id or "-", exc)
    await get_services(request).gate.refused(request, "unavailable", 503, exc.link_id, exc.file_key)
    return _page(
        request,
        503,
        "unavailable",
        "unavailable",
        title="请稍后再试 · Try again shortly",
        description="暂时无法确认下载次数，请稍后再打开这个链接",
        retry_after=RETRY_AFTER,
    )


async def download_refused(request: Request, exc: Exception) -> Response:
    exc = cast(DownloadRefused, exc)
    status = 429 if isinstance(exc, LinkBusy) else 503
    logger.warning(
        "download refused {} id={} ({}) ip={}", status, exc.link_id, exc.reason, client_ip(request)
    )
    await get_services(request).gate.refused(request, "busy", status, exc.link_id)
    return _page(
        request,
        status,
        "too_many_downloads",
        "busy",
        title="下载人数较多 · Busy",
        description="请稍后再试",
        retry_after=exc.retry_after,
    )


async def webhook_refused(request: Request, exc: Exception) -> Response:
    status = 403 if isinstance(exc, SignatureError | EncryptionRequired) else 400
    logger.warning("webhook rejected {} ip={}: {}", status, client_ip(request), exc)
    return PlainTextResponse("forbidden" if status == 403 else "bad request", status, NO_STORE)


async def body_refused(request: Request, exc: Exception) -> Response:
    status = 413 if isinstance(exc, BodyTooLarge) else 408 if isinstance(exc, BodyTimeout) else 400
    logger.warning(
        "body refused {} ip={} path={}: {}", status, client_ip(request), request.url.path, exc
    )
    # The rest of the body is never read, so the connection cannot carry another request.
    return PlainTextResponse("body refused", status, {**NO_STORE, "Connection": "close"})


async def http_error(request: Request, exc: Exception) -> Response:
    exc = cast(HTTPException, exc)
    path = redact(request.url.path)
    logger.warning("http {} {} {} ip={}", exc.status_code, request.method, path, client_ip(request))
    headers = {**NO_STORE, **(exc.headers or {})}
    return PlainTextResponse(str(exc.detail), exc.status_code, headers)


async def bad_request(request: Request, exc: Exception) -> Response:
    logger.warning("bad request ip={} path={}: {}", client_ip(request), request.url.path, exc)
    return PlainTextResponse("bad request", 400, NO_STORE)


def install_error_handlers(app: FastAPI) -> None:
    """Register every domain-error → response mapping."""
    app.add_exception_handler(LinkExpired, link_expired)
    app.add_exception_handler(LinkInvalid, link_invalid)
    app.add_exception_handler(CodeUnknown, code_unknown)
    app.add_exception_handler(FileMissing, file_missing)
    app.add_exception_handler(LinkExhausted, link_used_up)
    app.add_exception_handler(LinkRevoked, link_used_up)
    app.add_exception_handler(StoreUnavailable, store_unavailable)
    app.add_exception_handler(DownloadRefused, download_refused)
    app.add_exception_handler(SignatureError, webhook_refused)
    app.add_exception_handler(MessageError, webhook_refused)
    app.add_exception_handler(EncryptionRequired, webhook_refused)
    app.add_exception_handler(BodyRefused, body_refused)
    app.add_exception_handler(TooManyBadTokens, too_many_bad_tokens)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, bad_request)
