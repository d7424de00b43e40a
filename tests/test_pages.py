"""Every follower page: small, self-contained, bilingual, with a title and a chat preview."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bot.web.pages import Pages
from bot.web.refusals import REFUSALS, Refusal

LANDING = {
    "title": "下载「使用说明.txt」· Download",
    "description": "10 分钟内有效 · valid for 10 min",
    "filename": "使用说明.txt",
    "size": 3 * 1024 * 1024,
    "seconds_left": 600,
    "url": "https://files.example.com/d/abc.def",
    "keyword": "芝麻开门",
}
# One context per page, as bot.web.refusals and bot.web.landing pass them (see each template's header).
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
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def pages() -> Pages:
    return Pages()


@pytest.mark.parametrize(("name", "context"), PAGES)
def test_page_is_small_self_contained_and_bilingual(
    pages: Pages, name: str, context: dict[str, Any]
) -> None:
    html = pages.render(name, **context)
    assert len(html.encode()) < 20 * 1024
    assert f"<title>{context['title']}</title>" in html
    assert f'<meta property="og:title" content="{context["title"]}">' in html
    assert f'<meta property="og:description" content="{context["description"]}">' in html
    assert 'name="viewport" content="width=device-width' in html
    # No external assets: no stylesheet or script files, fonts, imports or remote images.
    for pattern in (
        r"<link\b",
        r"<script[^>]+src=",
        r"<img\b",
        r"@import",
        r"@font-face",
        r"url\(",
    ):
        assert not re.search(pattern, html, re.IGNORECASE), pattern
    english = re.findall(r'class="en"[^>]*>([^<]+)', html)
    assert english and all(re.search(r"[A-Za-z]{3}", line) for line in english)
    body = html.split("<body", 1)[1]
    assert CJK.search(body)


@pytest.mark.parametrize(
    ("name", "context", "needles"),
    [
        pytest.param(
            "expired", PAGES[2].values[1], ["芝麻开门", "2027-01-15 16:10"], id="expired-keyword"
        ),
        pytest.param(
            "exhausted", PAGES[5].values[1], ["芝麻开门", "3 次", "3 downloads"], id="exhausted"
        ),
        pytest.param("busy", PAGES[7].values[1], ["30 秒", "30 seconds", "重试"], id="busy-retry"),
        pytest.param(
            "landing",
            {**LANDING, "in_wechat": True},
            [
                "点右上角",
                "在浏览器打开",
                "Open in Browser",
                "3.1 MB",
                "10:00",
                "复制链接",
                LANDING["url"],
            ],
            id="landing-guide",
        ),
    ],
)
def test_page_says_what_matters(
    pages: Pages, name: str, context: dict[str, Any], needles: list[str]
) -> None:
    html = pages.render(name, **context)
    for needle in needles:
        assert needle in html, needle


def test_landing_shows_download_button_only_outside_wechat(pages: Pages) -> None:
    in_wechat = pages.render("landing", **LANDING, in_wechat=True)
    browser = pages.render("landing", **LANDING, in_wechat=False)
    assert 'href="?dl=1"' not in in_wechat and 'id="guide"' in in_wechat
    assert 'href="?dl=1"' in browser and 'id="guide"' not in browser


def test_landing_escapes_names(pages: Pages) -> None:
    html = pages.render(
        "landing", **{**LANDING, "filename": '<script>alert("x")</script>.txt'}, in_wechat=True
    )
    assert "<script>alert" not in html and "&lt;script&gt;" in html


def test_refusal_rows_name_their_fields() -> None:
    with pytest.raises(TypeError):
        Refusal(404, "file_missing", "missing")  # type: ignore[misc]
    row = Refusal(status=404, code="file_missing", page="missing")
    assert (row.status, row.code, row.page, row.outcome) == (404, "file_missing", "missing", None)
    assert all(400 <= row.status < 600 and row.code for row in REFUSALS.values())
