"""What the owner's-page tests share: a password in the store, logging in, reading the pages."""

from __future__ import annotations

import asyncio
import html
import re
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import httpx

from bot.config import Settings
from bot.owner.password import Cost, hash_password
from bot.state import Store, store_from_url

T = TypeVar("T")

PASSWORD = "芝麻开门-owner-2027"
CHEAP = Cost(ln=10)  # the tests' hashes: the cost travels in the hash, the checks are the same
ROUTES = [  # every /admin route, and a path that is none of them
    ("GET", "/admin"),
    ("GET", "/admin?period=30d"),
    ("GET", "/admin/links"),
    ("GET", "/admin/links?q=o_a"),
    ("GET", "/admin/links/0123456789abcdef"),
    ("POST", "/admin/links/0123456789abcdef/revoke"),
    ("GET", "/admin/rules"),
    ("POST", "/admin/logout"),
    ("GET", "/admin/"),
    ("GET", "/admin/nothing/here"),
    ("HEAD", "/admin"),
    ("PUT", "/admin/rules"),
    ("DELETE", "/admin/links/0123456789abcdef"),
]


def on_store(
    settings: Settings, clock: Callable[[], float], work: Callable[[Store], Awaitable[T]]
) -> T:
    """Run ``work`` on a second connection to the server's store (as the CLI would), in a thread
    of its own: Playwright's sync API keeps an event loop running in the test's thread."""

    async def run() -> T:
        store = store_from_url(settings.state.url, clock=clock)
        await store.open()
        try:
            return await work(store)
        finally:
            await store.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()


def wait_for_attempts(settings: Settings, clock: Callable[[], float], count: int) -> None:
    """Attempts are written after their response ends: wait until ``count`` are in."""
    deadline = time.monotonic() + 10
    while len(on_store(settings, clock, lambda store: store.attempts_since(0))) < count:
        assert time.monotonic() < deadline, f"fewer than {count} attempts recorded"
        time.sleep(0.05)


def set_password(
    settings: Settings, clock: Callable[[], float], password: str | None = PASSWORD
) -> None:
    """Store the owner's password (None: forget it) as `bot admin-password` does."""
    hashed = None if password is None else hash_password(password, cost=CHEAP)
    on_store(settings, clock, lambda store: store.set_owner_password(hashed))


def login(client: httpx.Client, password: str = PASSWORD, **kwargs: Any) -> httpx.Response:
    """POST the login form as a browser would."""
    return client.post("/admin/login", data={"password": password}, **kwargs)


def csrf_of(page: str) -> str:
    """The CSRF token a page's forms carry."""
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, page[:500]
    return html.unescape(match.group(1))


def text_by_id(page: str, element_id: str) -> str:
    """The text inside the element with this id (no nested tags of the same name)."""
    match = re.search(rf'id="{element_id}"[^>]*>(.*?)</', page, re.S)
    assert match, element_id
    return html.unescape(re.sub(r"<[^>]+>", "", match.group(1))).strip()


def table_text(page: str, element_id: str) -> str:
    """The text of the table with this id, its cells separated by spaces."""
    match = re.search(rf'<table[^>]*id="{element_id}"[^>]*>(.*?)</table>', page, re.S)
    assert match, element_id
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", match.group(1))).split())


def value_by_id(page: str, element_id: str) -> str:
    """The data-value of the element with this id."""
    match = re.search(rf'id="{element_id}" data-value="([^"]*)"', page)
    assert match, element_id
    return match.group(1)
