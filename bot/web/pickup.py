"""``/k``: the pick-up box; a typed code → 302 to its link, where every download rule applies."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from loguru import logger
from starlette.exceptions import HTTPException

from bot.codes import PATH, guesser, mask, normalize
from bot.errors import CodeUnknown, TooManyBadTokens
from bot.state import (
    STORE_TIMEOUT,
    CodeFound,
    GuessLimits,
    GuessRefused,
    PickupCodes,
    bounded,
)
from bot.web.deps import Services, ServicesDep, client_ip, raw_path

MAX_TYPED = 32  # longer input is a wrong code, never looked up
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
}
REDIRECT_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}

router = APIRouter()


@dataclass(frozen=True, slots=True)
class PickupDesk:
    """What ``/k`` needs: the code keeper (None: codes are off) and the limits on wrong codes."""

    codes: PickupCodes | None
    limits: GuessLimits


def _desk(request: Request) -> PickupDesk:
    desk: PickupDesk = request.app.state.pickup
    return desk


async def _open_desk(request: Request) -> PickupDesk:
    desk = _desk(request)
    if desk.codes is None:
        raise HTTPException(404, "Not Found")
    return desk


DeskDep = Annotated[PickupDesk, Depends(_open_desk)]


def box_page(services: Services) -> HTMLResponse:
    """The pick-up page: one box, one button (``bot.web.errors`` renders the wrong-code one)."""
    html = services.pages.render(
        "pickup",
        title="提取码取文件 · Pick-up code",
        description="输入公众号回复里的提取码 · Enter the code from the official account's reply",
        action=PATH,
    )
    return HTMLResponse(html, headers=PAGE_HEADERS)


@router.get(PATH, include_in_schema=False)
async def pickup(
    request: Request, services: ServicesDep, desk: DeskDep, code: str = ""
) -> Response:
    """The box; with ``?code=…`` (the box's form) the same answer as ``/k/{code}``."""
    if raw_path(request) != PATH.encode():
        raise HTTPException(404, "Not Found")  # /%6B: one spelling only
    if not code.strip():
        return box_page(services)
    return await _redirect(request, services, desk, code)


@router.get(PATH + "/{code}", include_in_schema=False)
async def pickup_code(
    code: str, request: Request, services: ServicesDep, desk: DeskDep
) -> Response:
    """A typed ``/k/CODE``: 302 to the code's link."""
    if not raw_path(request).startswith(PATH.encode() + b"/"):
        raise HTTPException(404, "Not Found")  # /%6B/CODE (a code typed full-width may be escaped)
    return await _redirect(request, services, desk, code)


async def _redirect(request: Request, services: Services, desk: PickupDesk, typed: str) -> Response:
    ip, codes = client_ip(request), desk.codes
    if codes is None:
        raise HTTPException(404, "Not Found")
    # One step in the store, shared by every worker and instance: only wrong codes count, per
    # guesser and server-wide; a guesser over its limit (or, under server-wide pressure, one
    # that guessed wrong in the last minute) is refused before any lookup. A right code from
    # anyone else always resolves, whoever else is guessing.
    code = normalize(typed) if len(typed) <= MAX_TYPED else None
    tried = await bounded(codes.try_code(code or "", guesser(ip), desk.limits), STORE_TIMEOUT)
    if isinstance(tried, GuessRefused):
        raise TooManyBadTokens(ip, max(1, math.ceil(tried.retry_at - services.clock())))
    if not isinstance(tried, CodeFound):
        raise CodeUnknown(mask(code or typed.strip()))
    logger.info("pick-up code {} -> link id={} ip={}", mask(code or ""), tried.link_id, ip)
    return RedirectResponse(f"/d/{tried.token}", status_code=302, headers=REDIRECT_HEADERS)
