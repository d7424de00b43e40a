"""The page a valid link shows instead of the file (WeChat's browser, previews, "always")."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from loguru import logger

from bot.delivery.catalog import FileInfo
from bot.links import Link, link_url
from bot.web.deps import Services, client_ip
from bot.web.pages import size_text
from bot.web.useragent import Agent, classify, wants_landing

# The page holds the link itself: never cached, never leaked through a Referer, never indexed.
LANDING_HEADERS = {
    "Cache-Control": "no-store",
    "Vary": "User-Agent",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
        "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}
DOWNLOAD_QUERY = "dl"


async def landing_page(
    request: Request, services: Services, token: str, link: Link, info: FileInfo
) -> Response | None:
    """The landing page when this client should get one, else None (serve the file).

    A revoked or used-up link shows that page instead (LinkRevoked, LinkExhausted).
    """
    agent = classify(request.headers.get("user-agent", ""))
    asked = request.query_params.get(DOWNLOAD_QUERY) == "1"
    if not wants_landing(agent, services.settings.links.landing, download_asked=asked):
        return None
    downloads_left = await services.gate.check(link, info)
    services.metrics.landing_pages.labels(agent.value).inc()
    logger.info(
        "landing page id={} file={!r} agent={} ip={}",
        link.link_id,
        info.key,
        agent.value,
        client_ip(request),
    )
    seconds_left = max(0, int(link.expires_at.timestamp() - services.clock()))
    minutes = max(1, (seconds_left + 59) // 60)
    name, size = info.path.name, size_text(info.size)
    html = services.pages.render(
        "landing",
        title=f"下载「{name}」· Download",
        description=f"{size} · {minutes} 分钟内有效 · valid for {minutes} min",
        filename=name,
        size=info.size,
        downloads_left=downloads_left,
        seconds_left=seconds_left,
        url=link_url(services.settings.server.public_url, token),
        keyword=services.keyword_to_send(link.keyword, info.key),
        in_wechat=agent is Agent.WECHAT,
        on_desktop=agent is Agent.DESKTOP,
    )
    return HTMLResponse(html, headers=LANDING_HEADERS)
