"""One context per follower page, as bot.web.errors and bot.web.landing pass them."""

from __future__ import annotations

import pytest

LANDING = {
    "title": "下载「使用说明.txt」· Download",
    "description": "10 分钟内有效 · valid for 10 min",
    "filename": "使用说明.txt",
    "size": 3 * 1024 * 1024,
    "seconds_left": 600,
    "url": "https://files.example.com/d/abc.def",
    "keyword": "芝麻开门",
}

# One context per page, as bot.web.errors and bot.web.landing pass them (see each template's header).
PAGES = [
    pytest.param("landing", {**LANDING, "in_wechat": True}, id="landing-wechat"),
    pytest.param("landing", {**LANDING, "in_wechat": False}, id="landing-browser"),
    pytest.param(
        "expired",
        {
            "title": "下载链接已过期 · Link expired",
            "description": "请重新发送关键词 芝麻开门",
            "expired_at": "2027-01-15 16:10",
            "expired_at_utc": "2027-01-15 08:10",
            "ago": "3 分钟",
            "keyword": "芝麻开门",
        },
        id="expired",
    ),
    pytest.param("invalid", {"title": "链接无效 · Invalid link", "description": "d"}, id="invalid"),
    pytest.param("missing", {"title": "文件暂时不可用", "description": "d"}, id="missing"),
    pytest.param(
        "exhausted",
        {
            "title": "下载次数已用完 · Used up",
            "description": "d",
            "keyword": "芝麻开门",
            "max_downloads": 3,
        },
        id="exhausted",
    ),
    pytest.param(
        "revoked",
        {"title": "链接已停用 · Revoked", "description": "d", "keyword": ""},
        id="revoked",
    ),
    pytest.param(
        "busy", {"title": "请稍后再试 · Busy", "description": "d", "retry_after": 30}, id="busy"
    ),
    pytest.param(
        "throttled",
        {"title": "请求过于频繁 · Too many requests", "description": "d", "retry_after": 42},
        id="throttled",
    ),
    pytest.param(
        "unavailable", {"title": "请稍后再试 · Try again", "description": "d"}, id="unavailable"
    ),
    pytest.param("landing", {**LANDING, "in_wechat": False, "on_desktop": True}, id="landing-pc"),
    pytest.param(
        "pickup", {"title": "提取码取文件", "description": "d", "action": "/k"}, id="pickup"
    ),
    pytest.param(
        "pickup",
        {"title": "提取码不对或已过期", "description": "d", "action": "/k", "wrong": True},
        id="pickup-wrong",
    ),
    pytest.param(
        "home",
        {"title": "文件下载", "description": "d", "account": "芝麻", "codes": True, "action": "/k"},
        id="home",
    ),
    pytest.param(
        "home",
        {"title": "文件下载", "description": "d", "account": "", "codes": False},
        id="home-nc",
    ),
]
