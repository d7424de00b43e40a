"""Issue #21 item 10: the follower pages, judged at phone width in Debian's headless Chromium."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page

from bot.config import Settings, load_settings
from bot.errors import ObjectStoreUnavailable
from bot.web.pages import Pages
from bot.web.refusals import REFUSALS
from tests.conftest import BIG_NAME, DEMO_NAME, RunningServer, write_config
from tests.helpers.agents import ANDROID_CHROME, IPHONE_WECHAT
from tests.helpers.browser import PAGE_TIME, PHONE, SMALL, issue, screenshot
from tests.helpers.pages import LANDING, PAGES

pytestmark = pytest.mark.slow  # headless Chromium

EXPIRED = next(p.values[1] for p in PAGES if p.id == "expired")
# The phrase's line boxes: one distinct top means it sits on one line.
LINES_OF = """(needle) => {
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    const found = [];
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const at = node.textContent.indexOf(needle);
        if (at < 0) continue;
        const range = document.createRange();
        range.setStart(node, at);
        range.setEnd(node, at + needle.length);
        found.push(new Set([...range.getClientRects()].map(r => Math.round(r.top))).size);
    }
    return found;
}"""


def lines_of(page: Page, needle: str) -> list[int]:
    """How many lines each occurrence of ``needle`` on the page takes."""
    found: list[int] = page.evaluate(LINES_OF, needle)
    assert found, needle
    return found


@pytest.mark.parametrize("size", [PHONE, SMALL], ids=["390", "360"])
def test_beijing_time_and_keyword_chips_never_break_mid_word(
    phone: Callable[..., BrowserContext], size: dict[str, int]
) -> None:
    """（北京时间） and a keyword chip each stay on one line (the chip moves down whole)."""
    page = phone(ANDROID_CHROME, viewport=size).new_page()
    for keyword in ("芝麻开门", "芝麻开门领取资料"):
        page.set_content(Pages().render("expired", **{**EXPIRED, "keyword": keyword}))
        assert lines_of(page, "（北京时间）") == [1]
        assert lines_of(page, keyword) == [1, 1]  # the chip, and the English line's quote
        context = {"title": "链接已停用", "description": "d", "keyword": keyword}
        page.set_content(Pages().render("revoked", **context))
        assert lines_of(page, keyword) == [1, 1], keyword
    assert page.evaluate("document.documentElement.scrollWidth") <= size["width"]


def test_the_used_up_page_shows_no_check_mark() -> None:
    """A used-up link is not a success: no ✓, and no success green or warning orange."""
    context: dict[str, Any] = {"title": "t", "description": "d", "keyword": "k", "max_downloads": 3}
    icon = re.search(r'<svg class="icon".*?</svg>', Pages().render("exhausted", **context))
    assert icon, "the page lost its icon"
    assert "l3 3 6-7" not in icon.group(0)
    assert not {"#e6a23c", "#07c160"} & set(re.findall(r"#[0-9a-f]{6}", icon.group(0)))


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        pytest.param(316, "316 B", id="bytes"),
        pytest.param(3 * 1024 * 1024, "3.1 MB", id="megabytes"),
    ],
)
def test_sizes_read_as_a_phone_writes_them(size: int, shown: str) -> None:
    """ "316 Bytes" was Jinja's wording; a phone's file manager says 316 B."""
    html = Pages().render("landing", **{**LANDING, "size": size, "in_wechat": True})
    assert re.search(rf">{re.escape(shown)}\b", html) and "Bytes" not in html


def test_the_busy_page_is_not_shown_when_the_bucket_is_down(
    phone: Callable[..., BrowserContext],
) -> None:
    """A bucket that does not answer says so (and that the link still works), not "too many"."""
    row = REFUSALS[ObjectStoreUnavailable]
    exc = ObjectStoreUnavailable("object store unavailable (ConnectTimeoutError)", 30)
    context = {"title": row.title, "description": row.description, **row.context(exc, None)}
    html = Pages().render(row.page, **context)
    assert "下载人数较多" not in html and "Too many" not in html
    assert "存放文件的服务器暂时没有响应" in html and "30 秒" in html and "链接仍然有效" in html
    assert row.code != "too_many_downloads"
    page = phone(ANDROID_CHROME).new_page()
    page.set_content(html)
    screenshot(page, "unavailable-storage.png")


def test_after_the_countdown_the_page_leads_with_link_expired(
    server: RunningServer, phone: Callable[..., BrowserContext]
) -> None:
    """In WeChat, once the countdown ends the "open in browser" guide and copy button go."""
    page = phone(IPHONE_WECHAT).new_page()
    page.clock.install(time=PAGE_TIME)
    page.clock.pause_at(PAGE_TIME + 1000)
    page.goto(issue(server, "big"))
    assert page.locator("#guide").is_visible() and page.locator("#copy").is_visible()
    page.clock.run_for(601_000)
    assert not page.locator("#guide").is_visible() and not page.locator("#copy").is_visible()
    first = page.locator("h1, b").filter(visible=True).first.inner_text()
    assert first == "链接已过期", first
    screenshot(page, "landing-expired-wechat.png")


def test_a_use_limited_landing_page_says_how_many_downloads_are_left(
    tmp_path: Path,
    files_dir: Path,
    serve: Callable[[Settings], RunningServer],
    phone: Callable[..., BrowserContext],
) -> None:
    """A link for 3 downloads: the page says 3 left, then 2 after one download."""
    rules = [{"match": "芝麻开门", "file": DEMO_NAME, "max_downloads": 3}]
    rules += [{"match": "big", "file": BIG_NAME}]
    server = serve(load_settings(write_config(tmp_path, keywords=rules)))
    url = issue(server)
    page = phone(IPHONE_WECHAT).new_page()
    page.clock.install(time=PAGE_TIME)
    page.goto(url)
    assert page.locator("#downloads-left").inner_text() == "还可下载 3 次"
    assert "3 downloads left" in page.locator("body").inner_text()
    screenshot(page, "landing-limited.png")
    assert httpx.get(url, headers={"User-Agent": ANDROID_CHROME}, timeout=10).status_code == 200
    page.reload()
    assert page.locator("#downloads-left").inner_text() == "还可下载 2 次"
    page.goto(issue(server, "big"))  # unlimited: nothing to count down
    assert not page.locator("#downloads-left").count()
