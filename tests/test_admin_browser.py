"""The owner's pages in real headless Chromium at 390 and 1280 px: log in (and a wrong password),
the overview, a link's story and its Revoke button; screenshots for the README."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from bot.config import Settings, load_settings
from tests.conftest import Clock, RunningServer, write_config
from tests.helpers.admin import IDS, PASSWORD, ask, login, scripted_day, set_password
from tests.helpers.agents import ANDROID_CHROME
from tests.helpers.browser import DESKTOP, PHONE, SCREENSHOTS
from tests.helpers.stores import LIMITED

pytestmark = pytest.mark.slow  # headless Chromium

WINDOWS_CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
SIZES = [pytest.param(PHONE, id="390"), pytest.param(DESKTOP, id="1280")]


@pytest.fixture
def day(
    tmp_path: Path, files_dir: Path, serve: Callable[[Settings], RunningServer], clock: Clock
) -> Iterator[tuple[RunningServer, dict[str, str]]]:
    """A bot with an owner's password, after the scripted day of test_admin_pages."""
    config = write_config(tmp_path, keywords=LIMITED, server={"account_name": "芝麻小站"})
    server = serve(load_settings(config))
    set_password(server.settings, clock)
    with server.client() as owner:
        assert login(owner).status_code == 303
        paths = scripted_day(server, clock, owner)
    yield server, paths


@pytest.fixture
def opened(browser: Browser) -> Iterator[Callable[[dict[str, int]], Page]]:
    """A new page in a browser the size of a phone (390 px, touch) or a computer (1280 px)."""
    contexts: list[BrowserContext] = []

    def _open(size: dict[str, int]) -> Page:
        phone = size == PHONE
        context = browser.new_context(
            user_agent=ANDROID_CHROME if phone else WINDOWS_CHROME,
            viewport=size,
            device_scale_factor=1,
            is_mobile=phone,
            has_touch=phone,
            locale="zh-CN",
        )
        contexts.append(context)
        return context.new_page()

    yield _open
    for context in contexts:
        context.close()


def shot(page: Page, name: str, size: dict[str, int]) -> None:
    """A full-page screenshot into ``SCREENSHOTS`` (the README shows it); never wider."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=path, full_page=True)
    width, _ = struct.unpack(">II", path.read_bytes()[16:24])
    assert width == size["width"]


def fits(page: Page, size: dict[str, int]) -> None:
    """Readable at this width: no sideways scrolling, text of at least 14 px, 44 px targets."""
    layout = page.evaluate(
        """() => ({
            scroll: document.documentElement.scrollWidth,
            small: [...document.querySelectorAll('td, p, b, span, a, button, summary')]
                .filter(e => e.offsetParent !== null && e.textContent.trim())
                .map(e => parseFloat(getComputedStyle(e).fontSize)).filter(s => s < 12).length,
            targets: [...document.querySelectorAll('main a, main button, summary, input')]
                .filter(e => e.offsetParent !== null && e.type !== 'hidden')
                .map(e => [e.id || e.textContent.trim().slice(0, 20), e.getBoundingClientRect().height]),
        })"""
    )
    assert layout["scroll"] <= size["width"]
    assert layout["small"] == 0
    for target, height in layout["targets"]:
        assert height >= 44, target


def log_in(page: Page, server: RunningServer, password: str = PASSWORD) -> None:
    page.locator("#password").fill(password)
    page.locator("#login").click()


@pytest.mark.parametrize("size", SIZES)
def test_login_wrong_password_overview_and_a_links_story(
    day: tuple[RunningServer, dict[str, str]],
    opened: Callable[[dict[str, int]], Page],
    size: dict[str, int],
) -> None:
    server, paths = day
    width = size["width"]
    page = opened(size)
    elsewhere: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(server.url) else elsewhere.append(r.url))

    page.goto(server.url + "/admin/links")  # no session: the login page
    expect(page).to_have_url(server.url + "/admin/login")
    fits(page, size)
    shot(page, f"admin-login-{width}.png", size)
    log_in(page, server, "not the password")
    expect(page.locator("#problem")).to_contain_text("密码不对")
    shot(page, f"admin-wrong-{width}.png", size)

    log_in(page, server)
    expect(page).to_have_url(server.url + "/admin")
    expect(page.locator("#n-links")).to_have_text("6")
    expect(page.locator("#n-downloads")).to_have_text("2")
    assert page.evaluate("document.cookie") == ""  # HttpOnly: no script can read the session
    chart = page.locator("#chart").bounding_box()
    assert chart and chart["width"] > 200 and chart["height"] > 60
    tiles = [t.bounding_box() for t in page.locator(".tile").all()]
    rows = len({round(t["y"]) for t in tiles if t})
    assert rows == (3 if size == PHONE else 1)  # two a row on a phone, five on a computer
    fits(page, size)
    shot(page, f"admin-overview-{width}.png", size)

    page.locator("#tab-links").click()
    page.locator("#q").fill(IDS[paths["b1"]])
    page.locator("#find").click()
    expect(page.locator("#link-id")).to_have_text(IDS[paths["b1"]])
    expect(page.locator("#attempts tbody tr")).to_have_count(2)
    fits(page, size)
    shot(page, f"admin-link-{width}.png", size)

    page.locator("#tab-rules").click()
    expect(page.locator("#rules")).to_contain_text("芝麻开门")
    fits(page, size)
    shot(page, f"admin-rules-{width}.png", size)
    assert elsewhere == []  # nothing from a CDN, or from anywhere else


def test_revoke_button_and_log_out(
    day: tuple[RunningServer, dict[str, str]], opened: Callable[[dict[str, int]], Page]
) -> None:
    server, _ = day
    fresh = ask(server, "r1", "o_e")
    page = opened(PHONE)
    page.goto(server.url + "/admin/login")
    log_in(page, server)
    page.goto(f"{server.url}/admin/links/{IDS[fresh]}")
    revoke = page.locator("#revoke")
    assert not revoke.is_visible()  # folded away until asked for
    page.locator("#revoke-open").click()
    revoke.click()
    expect(page.locator("#revoked")).to_be_visible()
    with server.client(headers={"Accept": "application/json"}) as phone:
        refused = phone.get(fresh)
    assert (refused.status_code, refused.json()["error"]) == (410, "link_revoked")
    page.locator("#logout").click()
    expect(page).to_have_url(server.url + "/admin/login")
    page.goto(server.url + "/admin")
    expect(page).to_have_url(server.url + "/admin/login")
