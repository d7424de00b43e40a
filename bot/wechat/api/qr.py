"""Parameter QR codes: the ``qrcode/create`` request, checked, and the code drawn as a PNG."""

from __future__ import annotations

import io
from typing import Any

import segno

from bot.wechat.api.errors import RequestRefused

MAX_EXPIRE_SECONDS = 2_592_000  # 30 days, WeChat's longest temporary code
MIN_EXPIRE_SECONDS = 60  # ...and its default, the shortest useful one
MAX_SCENE = 64


def qrcode_request(scene: str, expire_seconds: int | None) -> dict[str, Any]:
    """The JSON body for a QR_STR_SCENE (temporary) or QR_LIMIT_STR_SCENE (None) code."""
    if not 1 <= len(scene) <= MAX_SCENE:
        raise RequestRefused(
            "scene", f"is {len(scene)} characters", f"use 1 to {MAX_SCENE} characters"
        )
    info = {"scene": {"scene_str": scene}}
    if expire_seconds is None:
        return {"action_name": "QR_LIMIT_STR_SCENE", "action_info": info}
    if not MIN_EXPIRE_SECONDS <= expire_seconds <= MAX_EXPIRE_SECONDS:
        raise RequestRefused(
            "expire_seconds",
            f"is {expire_seconds}",
            f"a temporary code lives {MIN_EXPIRE_SECONDS} s to 30 days ({MAX_EXPIRE_SECONDS} s);"
            " use a permanent code for longer",
        )
    return {"expire_seconds": expire_seconds, "action_name": "QR_STR_SCENE", "action_info": info}


def render_png(url: str, *, scale: int = 10, border: int = 4) -> bytes:
    """``url`` (from ``qrcode/create``) as a QR code PNG, scannable by WeChat."""
    code = segno.make(url, error="m", micro=False)
    out = io.BytesIO()
    code.save(out, kind="png", scale=scale, border=border)
    return out.getvalue()
