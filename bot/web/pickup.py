"""``/k``: the pick-up box; a typed code → 302 to its link, where every download rule applies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from loguru import logger
from starlette.exceptions import HTTPException

from bot.codes import PATH, mask, normalize
from bot.delivery.throttle import BadTokenLimit
from bot.errors import CodeUnknown
from bot.state import STORE_TIMEOUT, PickupCodes, bounded
from bot.web.deps import Services, ServicesDep, client_ip

SERVER = "server"  # the one key of the server-wide wrong-code window
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
    """What ``/k`` needs: the code keeper (None: codes are off) and the server-wide cap."""

    codes: PickupCodes | None
    cap: BadTokenLimit


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
    if not code.strip():
        return box_page(services)
    return await _redirect(request, services, desk, code)


@router.get(PATH + "/{code}", include_in_schema=False)
async def pickup_code(
    code: str, request: Request, services: ServicesDep, desk: DeskDep
) -> Response:
    """A typed ``/k/CODE``: 302 to the code's link."""
    return await _redirect(request, services, desk, code)


async def _redirect(request: Request, services: Services, desk: PickupDesk, typed: str) -> Response:
    ip, codes = client_ip(request), desk.codes
    if codes is None:
        raise HTTPException(404, "Not Found")
    # A wrong code counts against the address (with bad tokens) and against the server-wide cap.
    # Past either, no code is looked up, the right one neither: a guess must not be able to win.
    services.bad_tokens.refuse_if_over(ip)
    desk.cap.refuse_if_over(SERVER)
    with services.bad_tokens.guard(ip), desk.cap.guard(SERVER):
        code = normalize(typed) if len(typed) <= MAX_TYPED else None
        found = await bounded(codes.resolve_code(code), STORE_TIMEOUT) if code else None
        if found is None:
            raise CodeUnknown(mask(code or typed.strip()))
    token, link_id = found
    logger.info("pick-up code {} -> link id={} ip={}", mask(code or ""), link_id, ip)
    return RedirectResponse(f"/d/{token}", status_code=302, headers=REDIRECT_HEADERS)
