"""Debian's headless Chromium for the browser tests (never a downloaded one), and page sizes."""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.conftest import RunningServer
from tests.helpers.paths import ROOT
from tests.helpers.webhook import link_path, reply_text, send

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
DESKTOP = {"width": 1280, "height": 800}
SMALL = {"width": 360, "height": 640}
# `make test` leaves docs/ as committed: Chromium's bytes differ between machines and a link's
# story shows random link ids. `make screenshots` writes into docs/screenshots (the README).
SCREENSHOTS = Path(os.environ.get("BOT_SCREENSHOTS") or ROOT / ".screenshots")
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


def screenshot(page: Page, name: str, size: dict[str, int] = PHONE) -> Path:
    """Save a 390x844 (or ``size``) screenshot into ``SCREENSHOTS`` (the README shows them)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=path)
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    assert (width, height) == (size["width"], size["height"])
    return path


def issue(server: RunningServer, keyword: str = "芝麻开门") -> str:
    return server.url + link_path(reply_text(send(server, content=keyword)))
