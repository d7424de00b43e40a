"""``/favicon.ico``: every browser asks for it; answer with an icon, never a logged 404."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

# A download arrow in the bot's green, as SVG (browsers take an SVG favicon at this path).
ICON = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
    b'<rect width="16" height="16" rx="3" fill="#07c160"/>'
    b'<path d="M8 3v7M5 7l3 3 3-3M4 13h8" stroke="#fff" stroke-width="1.6" fill="none"/></svg>'
)

router = APIRouter(include_in_schema=False)


@router.get("/favicon.ico")
async def favicon() -> Response:
    """The icon, cached for a day."""
    return Response(ICON, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})
