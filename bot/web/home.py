"""``/``: what this server is, and the pick-up box when codes are on."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from bot.codes import PATH
from bot.web.deps import PagesDep, SettingsDep
from bot.web.pickup import PAGE_HEADERS, PickupDesk

router = APIRouter()


@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
async def home(request: Request, settings: SettingsDep, pages: PagesDep) -> HTMLResponse:
    """The home page."""
    desk: PickupDesk = request.app.state.pickup
    account = settings.server.account_name
    html = pages.render(
        "home",
        title=f"{account or '公众号'} · 文件下载 · Downloads",
        description="在公众号发送关键词获取下载链接 · Send a keyword to the official account",
        account=account,
        codes=desk.codes is not None,
        action=PATH,
    )
    return HTMLResponse(html, headers=PAGE_HEADERS)
