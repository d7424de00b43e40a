"""Real headless Chromium (Debian's, never a downloaded one) driving the pages as a phone would."""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from bot.config import Settings, load_settings
from bot.web.pages import Pages
from tests.conftest import BIG_NAME, DEMO_NAME, RunningServer, write_config
from tests.test_http import link_path, reply_text, send
from tests.test_pages import PAGES
from tests.test_useragent import ANDROID_CHROME, IPHONE_WECHAT

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}
SMALL = {"width": 360, "height": 640}
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
PAGE_TIME = 1_800_000_000_000  # the page's own clock (ms), fixed so screenshots repeat exactly


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file():  # a missing browser is a failure, never a skip
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (make debs)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def phone(browser: Browser) -> Iterator[Callable[..., BrowserContext]]:
    """A new phone-sized browser context; closed after the test."""
    contexts: list[BrowserContext] = []

    def _open(user_agent: str, **kwargs: Any) -> BrowserContext:
        context = browser.new_context(
            user_agent=user_agent,
            viewport=kwargs.pop("viewport", PHONE),
            device_scale_factor=1,
            is_mobile=True,
            has_touch=True,
            locale="zh-CN",
            **kwargs,
        )
        contexts.append(context)
        return context

    yield _open
    for context in contexts:
        context.close()


def screenshot(page: Page, name: str) -> Path:
    """Save a 390x844 screenshot into docs/screenshots (shown in the README)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=path)
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    assert (width, height) == (PHONE["width"], PHONE["height"])
    return path


def issue(server: RunningServer, keyword: str = "芝麻开门") -> str:
    return server.url + link_path(reply_text(send(server, content=keyword)))


def test_wechat_guide_countdown_and_copy(
    server: RunningServer, phone: Callable[..., BrowserContext]
) -> None:
    url = issue(server, "big")
    sent = url.replace(server.url, server.settings.server.public_url)
    context = phone(IPHONE_WECHAT)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    page = context.new_page()
    page.clock.install(time=PAGE_TIME)
    response = page.goto(url)
    assert response is not None and response.status == 200
    guide = page.locator("#guide")
    assert guide.is_visible()
    assert "在浏览器打开" in guide.inner_text() and "Open in Browser" in guide.inner_text()
    arrow = page.locator(".arrow").bounding_box()
    assert arrow and arrow["y"] < 20 and arrow["x"] + arrow["width"] > PHONE["width"] - 20
    assert page.locator("#filename").inner_text() == BIG_NAME
    assert page.locator("#left").inner_text() == "10:00"
    screenshot(page, "landing-wechat.png")

    page.clock.run_for(61_000)
    assert page.locator("#left").inner_text() == "08:59"

    copy = page.locator("#copy")
    box = copy.bounding_box()
    assert box and box["height"] >= 44
    copy.click()
    expect(page.locator("#copied")).to_have_text(re.compile("^已复制"))
    assert page.evaluate("navigator.clipboard.readText()") == sent

    page.clock.run_for(540_000)
    assert page.locator("#left").inner_text() == "00:00"
    assert page.get_by_text("链接已过期").is_visible()


def test_copy_falls_back_when_the_clipboard_api_refuses(
    server: RunningServer, phone: Callable[..., BrowserContext]
) -> None:
    url = issue(server)
    context = phone(IPHONE_WECHAT)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    page = context.new_page()
    # Older WeChat browsers have no usable navigator.clipboard: make writeText refuse.
    page.add_init_script(
        "navigator.clipboard.writeText = () => Promise.reject(new Error('blocked'));"
    )
    page.goto(url)
    page.locator("#copy").click()
    expect(page.locator("#copied")).to_have_text(re.compile("^已复制"))
    sent = url.replace(server.url, server.settings.server.public_url)
    assert page.evaluate("navigator.clipboard.readText()") == sent


def test_copy_shows_the_link_when_nothing_can_copy(
    server: RunningServer, phone: Callable[..., BrowserContext]
) -> None:
    page = phone(IPHONE_WECHAT).new_page()
    page.add_init_script(
        "navigator.clipboard.writeText = () => Promise.reject(new Error('blocked'));"
        "document.execCommand = () => false;"
    )
    page.goto(issue(server))
    manual = page.locator("#manual")
    assert not manual.is_visible()
    page.locator("#copy").click()
    expect(manual).to_be_visible()
    assert "/d/" in manual.input_value()
    expect(page.locator("#copied")).to_contain_text("长按")


@pytest.mark.parametrize(
    ("keyword", "name"),
    [
        pytest.param("芝麻开门", DEMO_NAME, id="text"),
        pytest.param("big", BIG_NAME, id="3mb-binary"),
    ],
)
def test_android_chrome_downloads_with_chinese_name(
    server: RunningServer,
    files_dir: Path,
    phone: Callable[..., BrowserContext],
    tmp_path: Path,
    keyword: str,
    name: str,
) -> None:
    page = phone(ANDROID_CHROME, accept_downloads=True).new_page()
    url = issue(server, keyword)
    with page.expect_download() as caught:
        try:
            page.goto(url)
        except PlaywrightError as exc:  # navigation ends in a download, not a page
            assert "Download is starting" in exc.message
    download = caught.value
    assert download.suggested_filename == name
    download.save_as(tmp_path / "saved")
    assert (tmp_path / "saved").read_bytes() == (files_dir / name).read_bytes()


def test_always_mode_button_downloads(
    tmp_path: Path,
    files_dir: Path,
    serve: Callable[[Settings], RunningServer],
    phone: Callable[..., BrowserContext],
) -> None:
    server = serve(load_settings(write_config(tmp_path, links={"landing": "always"})))
    page = phone(ANDROID_CHROME, accept_downloads=True).new_page()
    page.clock.install(time=PAGE_TIME)
    page.goto(issue(server, "big"))
    button = page.locator("#download")
    assert button.is_visible() and not page.locator("#guide").count()
    screenshot(page, "landing-browser.png")
    with page.expect_download() as caught:
        button.click()
    assert caught.value.suggested_filename == BIG_NAME
    caught.value.save_as(tmp_path / "saved")
    assert (tmp_path / "saved").read_bytes() == (files_dir / BIG_NAME).read_bytes()


def test_expired_page_renders(server: RunningServer, phone: Callable[..., BrowserContext]) -> None:
    url = issue(server)
    server.clock.advance(601)
    page = phone(IPHONE_WECHAT).new_page()
    response = page.goto(url)
    assert response is not None and response.status == 410
    text = page.locator("body").inner_text()
    assert "下载链接已过期" in text and "芝麻开门" in text and "expired" in text
    assert page.title() == "下载链接已过期 · Link expired"
    screenshot(page, "expired.png")


@pytest.mark.parametrize(("name", "context"), PAGES)
def test_page_fits_a_small_phone(
    phone: Callable[..., BrowserContext], name: str, context: dict[str, Any]
) -> None:
    page = phone(ANDROID_CHROME, viewport=SMALL).new_page()
    page.set_content(Pages().render(name, **context))
    layout = page.evaluate(
        """() => ({
            scroll: document.documentElement.scrollWidth,
            font: parseFloat(getComputedStyle(document.body).fontSize),
            targets: [...document.querySelectorAll('a, button')]
                .filter(e => e.offsetParent !== null)
                .map(e => [e.id || e.textContent.trim(), e.getBoundingClientRect().height,
                           e.getBoundingClientRect().width]),
        })"""
    )
    assert layout["scroll"] <= SMALL["width"]  # no sideways scrolling at 360 px
    assert layout["font"] >= 16
    for target, height, width in layout["targets"]:
        assert height >= 44 and width >= 44, target
    if name not in ("landing", "expired"):
        page.set_viewport_size(PHONE)
        screenshot(page, f"{name}.png")
