"""What the owner's-page tests share: a password in the store, logging in, reading the pages."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import httpx

from bot.config import Settings
from bot.owner.password import Cost, hash_password
from bot.state import Store
from tests.conftest import Clock, RunningServer
from tests.helpers.stores import link_id, with_store
from tests.helpers.webhook import link_of, post, text_of

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

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(with_store, settings, work, clock).result()


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


FOLLOWERS = ("o_a", "o_b", "o_c", "o_d")


IDS: dict[str, str] = {}  # link path → link id, noted as each link is issued


def ask(server: RunningServer, msg_id: str, user: str, content: str = "芝麻开门") -> str:
    """A follower sends a keyword; the path of the link in the reply."""
    reply = post(server.url, msg_id=msg_id, timestamp=server.clock(), user=user, content=content)
    path = link_of(text_of(reply))
    IDS[path] = link_id(path, server.clock)
    return path


def scripted_day(server: RunningServer, clock: Clock, owner: httpx.Client) -> dict[str, str]:
    """16:00-20:10 Beijing time: pushes, whole and partial downloads, and every kind of refusal."""
    paths: dict[str, str] = {}
    with server.client() as phone:
        paths["a1"] = ask(server, "d1", "o_a")
        assert phone.get(paths["a1"]).status_code == 200  # a whole download
        paths["a2"] = ask(server, "d2", "o_b")
        assert phone.head(paths["a2"]).status_code == 200  # a look, never counted
        clock.advance(3600)
        paths["b1"] = ask(server, "d3", "o_a", "big")
        assert phone.get(paths["b1"]).status_code == 200
        clock.advance(1)  # Redis orders attempts of the same instant by their content
        assert phone.get(paths["b1"]).status_code == 410  # used up (one download)
        clock.advance(3600)
        paths["b2"] = ask(server, "d4", "o_c", "big")
        assert phone.get(paths["b2"], headers={"Range": "bytes=100-"}).status_code == 206
        clock.advance(3600)
        paths["a3"] = ask(server, "d5", "o_c")
        clock.advance(601)
        assert phone.get(paths["a3"]).status_code == 410  # expired
        assert phone.get("/d/garbage").status_code == 403
        assert phone.get("/d/more-garbage").status_code == 403
        clock.advance(3000)
        paths["a4"] = ask(server, "d6", "o_d")
        story = f"/admin/links/{IDS[paths['a4']]}"
        token = csrf_of(owner.get(story).text)
        assert owner.post(story + "/revoke", data={"csrf": token}).status_code == 303
        assert phone.get(paths["a4"]).status_code == 410  # revoked
    wait_for_attempts(server.settings, clock, 9)
    return paths
