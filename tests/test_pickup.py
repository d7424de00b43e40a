"""Issue #14: pick-up codes, /k, the home page and WeChat for Windows/Mac, over real sockets."""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.codes import ALPHABET, LENGTH, link_template, mask, new_code, normalize, reserve
from bot.config import Settings, load_settings
from bot.links import LinkSigner
from bot.logs.setup import redact
from bot.state import Store
from tests.conftest import (
    BIG_NAME,
    DEMO_NAME,
    SECRET,
    Clock,
    LogCapture,
    RedisServer,
    RunningServer,
    Start,
    write_config,
)
from tests.helpers.agents import ANDROID_CHROME, IPHONE_WECHAT, MAC_WECHAT, WINDOWS_WECHAT
from tests.helpers.pickup import PICKUP_LINE, WRONG, issue
from tests.helpers.processes import bot_on
from tests.helpers.stores import with_store
from tests.helpers.webhook import link_path, push_fields, reply_of, reply_text, send

LIMITED: list[dict[str, Any]] = [
    {"match": "芝麻开门", "file": DEMO_NAME},
    {"match": "Big", "file": BIG_NAME, "max_downloads": 1},
]


@pytest.fixture
def boot(start: Start) -> Start:  # conftest's fixture, on SQLite and on Redis
    """A running bot on this test's store (every test using it runs on both backends)."""
    return start


def pick_up(server: RunningServer, code: str) -> httpx.Response:
    with server.client() as client:
        return client.get(f"/k/{code}")


# --- what was seen ----------------------------------------------------------------------------


def test_seen_1_the_phone_reply_carries_a_short_code_a_computer_can_use(
    boot: Start, files_dir: Path
) -> None:
    """Issue #14 seen 1: the reply's link is ~100 characters; now a 6-character code works too."""
    server = boot()
    path, code = issue(server)
    assert all(c in ALPHABET for c in code) and len(code) == LENGTH
    with server.client() as client:
        typed = client.get(f"/k/{code.lower()}")
        form = client.get("/k", params={"code": f" {code[:3]}-{code[3:].lower()} "})
        file = client.get(typed.headers["location"])
    for response in (typed, form):
        assert response.status_code == 302
        assert response.headers["location"] == path
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["referrer-policy"] == "no-referrer"
    assert file.content == (files_dir / DEMO_NAME).read_bytes()


def test_seen_2_the_home_page_explains_itself(
    tmp_path: Path, files_dir: Path, serve: Callable[[Settings], RunningServer]
) -> None:
    """Issue #14 seen 2: ``http://host/`` was a bare "Not Found"."""
    settings = load_settings(write_config(tmp_path, server={"account_name": "芝麻小站"}))
    server = serve(settings)
    with server.client() as client:
        page = client.get("/")
        head = client.head("/")
    assert page.status_code == 200 and head.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "芝麻小站" in page.text and "发送关键词" in page.text
    assert 'action="/k"' in page.text and 'name="code"' in page.text


@pytest.mark.parametrize("agent", [WINDOWS_WECHAT, MAC_WECHAT], ids=["windows", "mac"])
def test_seen_3_wechat_on_a_computer_gets_guidance_for_that_window(
    server: RunningServer, files_dir: Path, agent: str
) -> None:
    """Issue #14 seen 3: WeChat for Windows/Mac got the phone's "点右上角 ···" guide."""
    path, _ = issue(server)
    with server.client(headers={"User-Agent": agent}) as client:
        page = client.get(path)
        file = client.get(path + "?dl=1")
    assert page.status_code == 200
    assert "点右上角" not in page.text and 'id="guide"' not in page.text
    assert 'id="desktop-guide"' in page.text and "默认浏览器" in page.text
    assert 'href="?dl=1"' in page.text
    assert file.content == (files_dir / DEMO_NAME).read_bytes()


# --- the code's life --------------------------------------------------------------------------


def test_a_code_lives_exactly_as_long_as_its_link(boot: Start, clock: Clock) -> None:
    server = boot()
    path, code = issue(server)
    clock.advance(599)
    assert pick_up(server, code).headers["location"] == path
    clock.advance(1)
    gone = pick_up(server, code)
    assert gone.status_code == 404 and WRONG in gone.text
    assert 'name="code"' in gone.text  # the box again, to try another code


def test_use_limits_hold_through_the_code(boot: Start, files_dir: Path) -> None:
    limited = [{**LIMITED[1], "reply": "{url}\\n电脑下载：打开 {pickup_url} 输入提取码 {code}"}]
    server = boot(keywords=[LIMITED[0], *limited])
    _, code = issue(server, "big")
    with server.client(follow_redirects=True) as client:
        first = client.get(f"/k/{code}")
        second = client.get(f"/k/{code}")
    assert first.content == (files_dir / BIG_NAME).read_bytes()
    assert second.status_code == 410 and "下载次数已用完" in second.text


@pytest.mark.slow
def test_bot_link_prints_a_code_that_works(
    tmp_path: Path, files_dir: Path, serve: Callable[[Settings], RunningServer], clock: Clock
) -> None:
    clock.now = time.time()  # `bot link` runs on the real clock
    config = write_config(tmp_path)
    result = bot_on(config, "link", "芝麻开门")
    assert result.returncode == 0, result.stderr
    match = re.search(r"pick-up code ([A-Z0-9]{6}) at http://127.0.0.1:8000/k", result.stderr)
    assert match, result.stderr
    server = serve(load_settings(config))  # another process, the same store
    found = pick_up(server, match.group(1))
    assert found.status_code == 302 and found.headers["location"] == link_path(result.stdout)


STYLES: list[dict[str, Any]] = [
    {"match": "全部", "files": [DEMO_NAME, BIG_NAME]},
    {"match": "链接", "file": DEMO_NAME, "style": "anchor"},
    {"match": "卡片", "file": BIG_NAME, "style": "news", "description": "提取码 {code}"},
    {"match": "图文", "file": BIG_NAME, "style": "news"},
]
CARDS = {"from_user": "o_follower_cards"}  # test_takeover's MsgIds: not to meet test_http's


def test_every_link_of_a_rule_and_every_style_gets_its_code(boot: Start, logs: LogCapture) -> None:
    """Issues #11 × #14: two files give two codes, each to its own link; anchor replies and news
    cards carry codes too; a card that names no {code} reserves none."""
    server = boot(keywords=STYLES, limits={"links_per_user_per_hour": 0})
    text = reply_text(send(server, content="全部"))
    codes = [code for _, code in PICKUP_LINE.findall(text)]
    paths = re.findall(r"/d/[A-Za-z0-9_.\-]+", text)
    assert len(paths) == 2 and len(set(codes)) == 2
    assert [pick_up(server, code).headers["location"] for code in codes] == paths
    anchor = reply_text(send(server, content="链接"))
    assert anchor.startswith('<a href="') and anchor.count("提取码") == 1
    (found,) = PICKUP_LINE.findall(anchor)
    assert pick_up(server, found[1]).headers["location"] == link_path(anchor)
    (card,) = reply_of(push_fields(server, encrypt=False, content="卡片", **CARDS)).articles
    shown = re.fullmatch(r"提取码 ([A-Z0-9]{6})", card["description"])
    assert shown, card["description"]
    assert pick_up(server, shown.group(1)).headers["location"] == link_path(card["url"])
    (plain,) = reply_of(push_fields(server, encrypt=False, content="图文", **CARDS)).articles
    assert "提取码" not in plain["description"]
    assert logs.find("keyword='图文'")[0].endswith("code=-")


@pytest.mark.slow
def test_a_hung_store_costs_one_wait_and_the_reply_goes_without_a_code(
    tmp_path: Path,
    files_dir: Path,
    serve: Callable[[Settings], RunningServer],
    own_redis: RedisServer,
    logs: LogCapture,
) -> None:
    server = serve(load_settings(write_config(tmp_path, state={"url": own_redis.url()})))
    own_redis.process.send_signal(signal.SIGSTOP)
    began = time.monotonic()
    text = reply_text(send(server, content="芝麻开门"))
    elapsed = time.monotonic() - began
    assert "/d/" in text and "提取码" not in text
    assert logs.find("goes without a pick-up code", level="ERROR")
    assert logs.find("falls back to this process", level="ERROR")
    assert elapsed < 3.0  # one bounded wait (~1 s), not one per store call


def test_a_retry_gets_the_same_code(server: RunningServer) -> None:
    first = reply_text(send(server, content="芝麻开门", msg_id="777"))
    again = reply_text(send(server, content="芝麻开门", msg_id="777"))
    assert first == again and PICKUP_LINE.search(first)


def test_codes_off_reply_without_the_line_and_no_box(
    tmp_path: Path, files_dir: Path, serve: Callable[[Settings], RunningServer]
) -> None:
    server = serve(load_settings(write_config(tmp_path, links={"pickup_codes": False})))
    text = reply_text(send(server, content="芝麻开门"))
    assert "提取码" not in text and "/d/" in text
    with server.client() as client:
        assert client.get("/k").status_code == 404
        assert client.get("/k/ABCDEF").status_code == 404
        home = client.get("/")
    assert home.status_code == 200 and 'name="code"' not in home.text


def test_the_box_page(server: RunningServer) -> None:
    with server.client() as client:
        page = client.get("/k")
        empty = client.get("/k", params={"code": "  "})
    assert page.status_code == 200 and empty.status_code == 200
    assert 'action="/k"' in page.text and 'name="code"' in page.text and WRONG not in page.text
    assert "form-action 'self'" in page.headers["content-security-policy"]


# --- guessing: tests/test_guessing.py (#19 item 7) -------------------------------------------


def test_codes_are_never_logged_in_full(server: RunningServer, logs: LogCapture) -> None:
    _, code = issue(server)
    pick_up(server, code)
    pick_up(server, "ZZZZZZ")
    lines = logs.messages()
    assert any(f"code={mask(code)}" in line for line in logs.find("link issued"))
    assert logs.find(f"pick-up code {mask(code)}") and logs.find("wrong pick-up code ZZ****")
    assert not [line for line in lines if code in line or "ZZZZZZ" in line]
    assert redact(f'"GET /k/{code} HTTP/1.1" 302') == f'"GET /k/{code[:2]}… HTTP/1.1" 302'
    assert redact(f"GET /k?code={code.lower()}") == f"GET /k?code={code[:2].lower()}…"


# --- both stores ------------------------------------------------------------------------------


def test_the_store_keeps_codes_until_their_link_expires(boot: Start, clock: Clock) -> None:
    settings = boot().settings
    now = clock()

    async def work(store: Store) -> list[Any]:
        codes: Any = store
        results = [
            await codes.put_code("K7QP3M", "token-1", "L1", now + 600),
            await codes.put_code("K7QP3M", "token-2", "L2", now + 600),  # live: never reused
            await codes.resolve_code("K7QP3M"),
            await codes.resolve_code("ABCDEF"),
        ]
        clock.advance(600)
        results += [
            await codes.resolve_code("K7QP3M"),
            await codes.put_code("K7QP3M", "token-3", "L3", now + 1200),  # expired: free again
            await codes.resolve_code("K7QP3M"),
        ]
        await codes.drop_code("K7QP3M")
        return [*results, await codes.resolve_code("K7QP3M")]

    assert with_store(settings, work, clock) == [
        True,
        False,
        ("token-1", "L1"),
        None,
        None,
        True,
        ("token-3", "L3"),
        None,
    ]


# --- the pure parts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "code"),
    [
        pytest.param("K7QP3M", "K7QP3M", id="as-sent"),
        pytest.param("k7qp3m", "K7QP3M", id="lower-case"),
        pytest.param(" k7q-p3m ", "K7QP3M", id="spaces-and-dash"),
        pytest.param("K7Q P3M", "K7QP3M", id="inner-space"),
        pytest.param("K7QP3", None, id="too-short"),
        pytest.param("K7QP3MM", None, id="too-long"),
        pytest.param("K0QP3M", None, id="zero-is-not-in-the-alphabet"),
        pytest.param("KOQP3M", None, id="letter-o-is-not-either"),
        pytest.param("K1QP3M", None, id="one"),
        pytest.param("KIQP3M", None, id="letter-i"),
        pytest.param("KLQP3M", None, id="letter-l"),
        pytest.param("提取码提取码", None, id="chinese"),
        pytest.param("", None, id="empty"),
    ],
)
def test_normalize(typed: str, code: str | None) -> None:
    assert normalize(typed) == code


def test_alphabet_and_fresh_codes() -> None:
    assert len(ALPHABET) == len(set(ALPHABET)) == 31
    assert not set("0O1IL") & set(ALPHABET)
    codes = {new_code() for _ in range(2000)}
    assert len(codes) > 1990 and all(normalize(c) == c for c in codes)
    assert new_code(lambda n: 0) == "AAAAAA"


def test_link_template_drops_code_lines_when_off() -> None:
    template = "下载：\n{url}\n电脑下载：打开 {pickup_url} 输入提取码 {code}"
    assert link_template(template, codes=True) == template
    assert link_template(template, codes=False) == "下载：\n{url}"


def test_reserve_tries_again_on_a_live_collision(clock: Clock) -> None:
    class Codes:
        def __init__(self) -> None:
            self.taken = {"AAAAAA"}

        async def put_code(self, code: str, token: str, link_id: str, expires_at: float) -> bool:
            if code in self.taken:
                return False
            self.taken.add(code)
            return True

        async def resolve_code(self, code: str) -> tuple[str, str] | None:
            return None

        async def drop_code(self, code: str) -> None:
            return None

    draws = iter([0] * 6 + [1] * 6)
    token, link = LinkSigner([SECRET], 600, files=[DEMO_NAME], clock=clock).issue(DEMO_NAME)
    code = asyncio.run(reserve(Codes(), token, link, randbelow=lambda n: next(draws)))
    assert code == "BBBBBB"


def test_phone_wechat_still_gets_the_phone_guide(server: RunningServer) -> None:
    path, _ = issue(server)
    with server.client() as client:
        phone = client.get(path, headers={"User-Agent": IPHONE_WECHAT})
        chrome = client.get(path, headers={"User-Agent": ANDROID_CHROME})
    assert 'id="guide"' in phone.text and 'id="desktop-guide"' not in phone.text
    assert "attachment" in chrome.headers["content-disposition"]
