"""Real headless Chromium (Debian's, never a downloaded one) driving the pages as a phone would."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from playwright.sync_api import Error as PlaywrightError

from bot.config import Settings, load_settings
from bot.web.pages import Pages
from tests.conftest import BIG_NAME, DEMO_NAME, RunningServer, write_config
from tests.helpers.agents import ANDROID_CHROME, IPHONE_WECHAT, WINDOWS_WECHAT
from tests.helpers.browser import (
    DESKTOP,
    PAGE_TIME,
    PHONE,
    SMALL,
    issue,
    screenshot,
)
from tests.helpers.pages import PAGES
from tests.helpers.webhook import reply_text, send

pytestmark = pytest.mark.slow


def test_wechat_guide_countdown_and_copy(
    server: RunningServer, phone: Callable[..., BrowserContext]
) -> None:
    url = issue(server, "big")
    sent = url.replace(server.url, server.settings.server.public_url)
    context = phone(IPHONE_WECHAT)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    page = context.new_page()
    page.clock.install(time=PAGE_TIME)
    page.clock.pause_at(PAGE_TIME + 1000)  # the page's clock moves only by run_for (a loaded box)
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
    if name not in ("landing", "expired", "pickup", "home"):  # those have their own tests
        page.set_viewport_size(PHONE)
        screenshot(page, f"{name}.png")


# --- issue #14: the pick-up box, the home page, WeChat on a computer --------------------------

WINDOWS_CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"


@pytest.fixture
def computer(browser: Browser) -> Iterator[Callable[..., BrowserContext]]:
    """A new 1280x800 desktop browser context; closed after the test."""
    contexts: list[BrowserContext] = []

    def _open(user_agent: str = WINDOWS_CHROME) -> BrowserContext:
        context = browser.new_context(
            user_agent=user_agent,
            viewport=DESKTOP,
            device_scale_factor=1,
            locale="zh-CN",
            accept_downloads=True,
        )
        contexts.append(context)
        return context

    yield _open
    for context in contexts:
        context.close()


def pickup_code(server: RunningServer, keyword: str = "芝麻开门") -> str:
    match = re.search(r"输入提取码 ([A-Z0-9]{6})", reply_text(send(server, content=keyword)))
    assert match
    return match.group(1)


def type_code_and_download(page: Page, code: str, tmp_path: Path, files_dir: Path) -> None:
    """Type the code (as a person would, lower case) into the box, press the button, get the file."""
    page.locator("#code").fill(code.lower())
    with page.expect_download() as caught:
        page.locator("#get").click()
    assert caught.value.suggested_filename == DEMO_NAME
    caught.value.save_as(tmp_path / "saved")
    assert (tmp_path / "saved").read_bytes() == (files_dir / DEMO_NAME).read_bytes()


def test_pickup_box_on_a_computer_and_a_phone(
    server: RunningServer,
    files_dir: Path,
    tmp_path: Path,
    phone: Callable[..., BrowserContext],
    computer: Callable[..., BrowserContext],
) -> None:
    """Issue #14: the code typed into /k on a PC (1280 px) or a phone (390 px) gets the file."""
    for page, size, name in (
        (computer().new_page(), DESKTOP, "pickup-1280.png"),
        (phone(ANDROID_CHROME, accept_downloads=True).new_page(), PHONE, "pickup-390.png"),
    ):
        response = page.goto(server.url + "/k")
        assert response is not None and response.status == 200
        box, button = page.locator("#code").bounding_box(), page.locator("#get").bounding_box()
        assert box and button and box["height"] >= 44 and button["height"] >= 44
        assert page.evaluate("document.documentElement.scrollWidth") <= size["width"]
        screenshot(page, name, size)
        type_code_and_download(page, pickup_code(server), tmp_path, files_dir)


def test_wrong_code_in_the_browser(
    server: RunningServer, phone: Callable[..., BrowserContext]
) -> None:
    page = phone(ANDROID_CHROME).new_page()
    page.goto(server.url + "/k")
    page.locator("#code").fill("aaaaaa")
    page.locator("#get").click()
    expect(page.locator("#wrong")).to_have_text("提取码不对或已过期，请回到公众号重新获取")
    assert page.locator("#code").is_visible()
    screenshot(page, "pickup-wrong-390.png")


def test_home_page_on_a_computer_and_a_phone(
    tmp_path: Path,
    files_dir: Path,
    serve: Callable[[Settings], RunningServer],
    phone: Callable[..., BrowserContext],
    computer: Callable[..., BrowserContext],
) -> None:
    """Issue #14: / says what this is, names the account, and takes a code."""
    config = write_config(tmp_path, server={"account_name": "芝麻小站"})
    server = serve(load_settings(config))
    for page, size, name in (
        (computer().new_page(), DESKTOP, "home-1280.png"),
        (phone(ANDROID_CHROME, accept_downloads=True).new_page(), PHONE, "home-390.png"),
    ):
        response = page.goto(server.url + "/")
        assert response is not None and response.status == 200
        assert "芝麻小站" in page.title() and "发送关键词" in page.locator("#what").inner_text()
        assert page.evaluate("document.documentElement.scrollWidth") <= size["width"]
        screenshot(page, name, size)
        type_code_and_download(page, pickup_code(server), tmp_path, files_dir)


def test_wechat_for_windows_gets_its_own_page_and_the_file(
    server: RunningServer,
    files_dir: Path,
    tmp_path: Path,
    computer: Callable[..., BrowserContext],
) -> None:
    """Issue #14: WeChat for Windows gets guidance for its window and a download button."""
    page = computer(WINDOWS_WECHAT).new_page()
    page.clock.install(time=PAGE_TIME)
    page.goto(issue(server, "big"))
    assert page.locator("#desktop-guide").is_visible() and not page.locator("#guide").count()
    assert "点右上角" not in page.locator("body").inner_text()
    screenshot(page, "landing-wechat-desktop.png", DESKTOP)
    with page.expect_download() as caught:
        page.locator("#download").click()
    assert caught.value.suggested_filename == BIG_NAME
    caught.value.save_as(tmp_path / "saved")
    assert (tmp_path / "saved").read_bytes() == (files_dir / BIG_NAME).read_bytes()
