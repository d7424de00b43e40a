"""The refusal table: for each domain error, its status, code, page, audit outcome and log line."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from bot.clock import CHINA
from bot.codes import PATH as PICKUP_PATH
from bot.errors import (
    RETRY_AFTER,
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
    LinkHeld,
    LinkInvalid,
    LinkRevoked,
    MalformedRange,
    MessageError,
    ObjectStoreUnavailable,
    RangeNotSatisfiable,
    ServerBusy,
    SignatureError,
    StoreUnavailable,
    TooManyBadTokens,
)
from bot.state import Outcome
from bot.web.deps import Services

Context = Callable[[Any, Services], dict[str, object]]


def _none(exc: Any, services: Services) -> dict[str, object]:
    return {}


@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal:
    """How one kind of error is answered (fields by name only: rows read as records)."""

    status: int
    code: str  # the JSON ``error`` (or the plain-text body when there is no page)
    page: str = ""  # the template; "" for a plain-text answer (webhook, bodies, ranges)
    outcome: Outcome | None = None  # a download refusal: recorded by ``Gate.refused``
    title: str = ""
    description: str = ""
    log: str = "{exc}"  # formatted with exc, ip and status
    level: str = "WARNING"
    context: Context = field(default=_none)  # more page context from the error
    headers: Callable[[Any], dict[str, str]] = field(default=lambda exc: {})
    # A plain-text answer says why after its code (`bot simulate` shows it): only for errors
    # whose text never holds a secret (the webhook's: a signature, a timestamp, the XML).
    says_why: bool = False


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} 秒"
    if seconds < 3600:
        return f"{seconds // 60} 分钟"
    if seconds < 86400:
        return f"{seconds // 3600} 小时"
    return f"{seconds // 86400} 天"


def _expired(exc: LinkExpired, services: Services) -> dict[str, object]:
    services.metrics.expired.inc()
    ago = services.clock() - exc.expired_at.timestamp()
    keyword = services.keyword_to_send(exc.keyword, exc.file_key)
    return {
        "description": f"请重新发送关键词 {keyword}".strip(),
        "expired_at": exc.expired_at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M"),
        "expired_at_utc": exc.expired_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
        "expires_at": exc.expired_at.isoformat(),
        "ago": _ago(ago),
        "keyword": keyword,
        "ago_seconds": int(ago),
    }


def _bad_token(exc: LinkInvalid, services: Services) -> dict[str, object]:
    services.metrics.bad_tokens.inc()
    return {}


def _used_up(exc: LinkExhausted | LinkRevoked, services: Services) -> dict[str, object]:
    limit = exc.limit if isinstance(exc, LinkExhausted) else 0
    return {
        "keyword": services.keyword_to_send(exc.keyword, exc.file_key),
        "max_downloads": limit,
    }


def _wrong_code(exc: CodeUnknown, services: Services) -> dict[str, object]:
    return {"wrong": True, "action": PICKUP_PATH}


def _retry(exc: TooManyBadTokens | DownloadRefused, services: Services) -> dict[str, object]:
    return {"retry_after": exc.retry_after}


def _store(exc: StoreUnavailable, services: Services) -> dict[str, object]:
    return {"retry_after": RETRY_AFTER}


def _storage(exc: ObjectStoreUnavailable, services: Services) -> dict[str, object]:
    return {"retry_after": exc.retry_after, "storage": True}


_CLOSE = {"Connection": "close"}  # the rest of the body is never read
_LINK_OFF = "请重新发送关键词获取新的链接"
_WEBHOOK = "webhook rejected {status} ip={ip}: {exc}"
_BODY = "body refused {status} ip={ip} path={path}: {exc}"
_BUSY = "download refused {status} id={exc.link_id} ({exc.reason}) ip={ip}"


def _busy(status: int) -> Refusal:
    """The busy page: a link or the server has no download slot free."""
    return Refusal(
        status=status,
        code="too_many_downloads",
        page="busy",
        outcome=Outcome.BUSY,
        title="下载人数较多 · Busy",
        description="请稍后再试",
        log=_BUSY,
        context=_retry,
    )


REFUSALS: dict[type[Exception], Refusal] = {
    LinkExpired: Refusal(
        status=410,
        code="link_expired",
        page="expired",
        outcome=Outcome.EXPIRED,
        title="下载链接已过期 · Link expired",
        log="expired link id={exc.link_id} file={exc.file_key!r} expired {ago}s ago ip={ip}",
        context=_expired,
    ),
    LinkInvalid: Refusal(
        status=403,
        code="link_invalid",
        page="invalid",
        outcome=Outcome.BAD_TOKEN,
        title="链接无效 · Invalid link",
        description="请重新发送关键词获取链接",
        log="bad token ({exc}) ip={ip} path_len={path_len}",
        context=_bad_token,
    ),
    CodeUnknown: Refusal(  # a wrong pick-up code at /k: no link, so no audit row
        status=404,
        code="code_unknown",
        page="pickup",
        outcome=None,
        title="提取码不对或已过期 · Wrong code",
        description="请回到公众号重新获取",
        log="wrong pick-up code {exc.shown} ip={ip}",
        context=_wrong_code,
    ),
    FileMissing: Refusal(
        status=404,
        code="file_missing",
        page="missing",
        outcome=Outcome.MISSING,
        title="文件暂时不可用 · File unavailable",
        description="请稍后重新发送关键词",
        log="file missing file={exc.file_key!r} ip={ip}",
        level="ERROR",
    ),
    LinkExhausted: Refusal(
        status=410,
        code="link_exhausted",
        page="exhausted",
        outcome=Outcome.EXHAUSTED,
        title="下载次数已用完 · Link used up",
        description=_LINK_OFF,
        log="{exc} id={exc.link_id} file={exc.file_key!r} ip={ip}",
        context=_used_up,
    ),
    LinkRevoked: Refusal(
        status=410,
        code="link_revoked",
        page="revoked",
        outcome=Outcome.REVOKED,
        title="链接已停用 · Link switched off",
        description=_LINK_OFF,
        log="{exc} id={exc.link_id} file={exc.file_key!r} ip={ip}",
        context=_used_up,
    ),
    StoreUnavailable: Refusal(
        status=503,
        code="unavailable",
        page="unavailable",
        outcome=Outcome.UNAVAILABLE,
        title="请稍后再试 · Try again shortly",
        description="暂时无法确认下载次数，请稍后再打开这个链接",
        log="download id={link_id} refused, {exc}",
        level="ERROR",
        context=_store,
    ),
    LinkHeld: Refusal(  # a lease in flight (a dead worker's, until it lapses): temporary
        status=503,
        code="link_in_use",
        page="busy",
        outcome=Outcome.HELD,
        title="链接正在下载中 · Link in use",
        description="这个链接的下载还没有结束，请稍后再试",
        log=_BUSY,
        context=_retry,
    ),
    LinkBusy: _busy(429),  # this link has its share of slots
    ServerBusy: _busy(503),  # every slot is taken
    ObjectStoreUnavailable: Refusal(  # the bucket is down: not "too many people"
        status=503,
        code="storage_unavailable",
        page="unavailable",
        outcome=Outcome.UNAVAILABLE,
        title="暂时无法下载 · Try again shortly",
        description="存放文件的服务器暂时没有响应，请稍后再试",
        log="download id={link_id} refused {status}: {exc}",
        level="ERROR",
        context=_storage,
    ),
    TooManyBadTokens: Refusal(
        status=429,
        code="too_many_requests",
        page="throttled",
        outcome=Outcome.THROTTLED,
        title="请求过于频繁 · Too many requests",
        description="请稍后再试",
        log="too many bad tokens ip={exc.ip} retry_after={exc.retry_after}s",
        context=_retry,
    ),
    RangeNotSatisfiable: Refusal(
        status=416,
        code="range not satisfiable",
        outcome=Outcome.BAD_RANGE,
        log="download refused {status} ({exc}) ip={ip}",
        headers=lambda exc: {"Content-Range": f"bytes */{exc.size}"},
    ),
    MalformedRange: Refusal(
        status=400,
        code="bad range",
        outcome=Outcome.BAD_RANGE,
        log="download refused {status} ({exc}) ip={ip}",
    ),
    SignatureError: Refusal(status=403, code="forbidden", log=_WEBHOOK, says_why=True),
    EncryptionRequired: Refusal(status=403, code="forbidden", log=_WEBHOOK, says_why=True),
    MessageError: Refusal(status=400, code="bad request", log=_WEBHOOK, says_why=True),
    BodyTooLarge: Refusal(status=413, code="body refused", log=_BODY, headers=lambda exc: _CLOSE),
    BodyTimeout: Refusal(status=408, code="body refused", log=_BODY, headers=lambda exc: _CLOSE),
    BodyRefused: Refusal(status=400, code="body refused", log=_BODY, headers=lambda exc: _CLOSE),
}


def refusal_for(exc: Exception) -> Refusal:
    """The table's row for this error (its class, or the nearest base class listed)."""
    for cls in type(exc).__mro__:
        if cls in REFUSALS:
            return REFUSALS[cls]
    raise KeyError(type(exc).__name__)
