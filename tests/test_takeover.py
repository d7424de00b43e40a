"""Issue #11 end to end: every trigger and style over a real server, plaintext and safe mode.

Replies are read back with wechatpy's own reply parser, to prove WeChat can read them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from wechatpy.replies import ArticlesReply
from wechatpy.replies import TextReply as WeChatText

from bot.config import load_settings
from tests.conftest import BIG_NAME, DEMO_NAME, Clock, RunningServer, write_config
from tests.helpers.webhook import push_fields, reply_of, urls

RULES: list[dict[str, Any]] = [
    {"match": ["芝麻开门", "open"], "file": DEMO_NAME},
    {"click": "MENU_BIG", "file": BIG_NAME},
    {"scene": "poster", "file": DEMO_NAME},
    {"match": "卡片", "file": BIG_NAME, "style": "news", "title": "安装包 {minutes}"},
    {"match": "链接", "file": DEMO_NAME, "style": "anchor"},
    {"match": "全部", "files": [DEMO_NAME, BIG_NAME]},
    {"match": "下载", "mode": "contains", "file": BIG_NAME},
    {"match": "早鸟", "file": DEMO_NAME, "active_from": "2030-01-01 00:00"},
    {"match": "营业时间", "reply": "每天 9:00-18:00"},
]
REPLIES = {"welcome": "欢迎关注！", "other": "收到，请发送关键词"}


@pytest.fixture
def takeover(
    tmp_path: Path, files_dir: Path, serve: Callable[..., RunningServer]
) -> Callable[[], RunningServer]:
    def start() -> RunningServer:
        return serve(load_settings(write_config(tmp_path, keywords=RULES, replies=REPLIES)))

    return start


def fetch(server: RunningServer, url: str) -> bytes:
    """The file behind a link (public_url is 127.0.0.1:8000; the test server listens elsewhere)."""
    response = httpx.get(server.url + url[url.index("/d/") :], timeout=10)
    assert response.status_code == 200, response.text
    return response.content


MODES = [pytest.param(False, id="plaintext"), pytest.param(True, id="safe-mode")]


@pytest.mark.parametrize("encrypt", MODES)
def test_seen_1_voice_recognition_gets_the_link(
    takeover: Callable[[], RunningServer], files_dir: Path, encrypt: bool
) -> None:
    """Issue #11 seen 1: a voice message recognised as "芝麻开门。" gets the link, not success."""
    server = takeover()
    reply = reply_of(
        push_fields(server, encrypt=encrypt, msg_type="voice", recognition="芝麻开门。")
    )
    assert isinstance(reply, WeChatText)
    [url] = urls(reply.content)
    assert fetch(server, url) == (files_dir / DEMO_NAME).read_bytes()


@pytest.mark.parametrize("encrypt", MODES)
@pytest.mark.parametrize(
    ("key", "name"),
    [
        pytest.param("芝麻开门", DEMO_NAME, id="keyword-as-key"),
        pytest.param("MENU_BIG", BIG_NAME, id="click-key"),
    ],
)
def test_seen_2_menu_click_gets_the_link(
    takeover: Callable[[], RunningServer], files_dir: Path, encrypt: bool, key: str, name: str
) -> None:
    """Issue #11 seen 2: a menu CLICK with EventKey 芝麻开门 (or a rule's click key) gets a link."""
    server = takeover()
    response = push_fields(server, encrypt=encrypt, msg_type="event", event="CLICK", event_key=key)
    [url] = urls(reply_of(response).content)
    assert fetch(server, url) == (files_dir / name).read_bytes()


@pytest.mark.parametrize("encrypt", MODES)
def test_seen_3_poster_subscribe_gets_welcome_and_link(
    takeover: Callable[[], RunningServer], encrypt: bool
) -> None:
    """Issue #11 seen 3: subscribing through a poster's QR code answers welcome + link at once."""
    server = takeover()
    event = {"msg_type": "event", "event": "subscribe", "event_key": "qrscene_poster"}
    reply = reply_of(push_fields(server, encrypt=encrypt, **event))
    assert reply.content.startswith("欢迎关注！\n\n") and len(urls(reply.content)) == 1
    scan = reply_of(
        push_fields(server, encrypt=encrypt, msg_type="event", event="SCAN", event_key="poster")
    )
    assert "欢迎" not in scan.content and len(urls(scan.content)) == 1


@pytest.mark.parametrize("encrypt", MODES)
@pytest.mark.parametrize("typed", ["芝麻开门。", "\u3000芝麻开门！", "ＯＰＥＮ"])
def test_seen_4_folded_text_gets_the_link(
    takeover: Callable[[], RunningServer], encrypt: bool, typed: str
) -> None:
    """Issue #11 seen 4: "芝麻开门。" typed, or full-width "ＯＰＥＮ", gets the link, not help."""
    reply = reply_of(push_fields(takeover(), encrypt=encrypt, content=typed))
    assert len(urls(reply.content)) == 1 and "没有找到" not in reply.content


@pytest.mark.parametrize("encrypt", MODES)
def test_styles_over_the_wire(
    takeover: Callable[[], RunningServer], files_dir: Path, encrypt: bool
) -> None:
    """Issue #11 styles: news card, anchor, files, contains, window, FAQ, scancode, other."""
    server = takeover()
    card = reply_of(push_fields(server, encrypt=encrypt, content="卡片"))
    assert isinstance(card, ArticlesReply) and len(card.articles) == 1
    article = card.articles[0]
    assert article["title"] == "安装包 10" and "分钟内有效" in article["description"]
    assert fetch(server, article["url"]) == (files_dir / BIG_NAME).read_bytes()
    anchor = reply_of(push_fields(server, encrypt=encrypt, content="链接")).content
    assert re.match(
        r'<a href="http://127\.0\.0\.1:\d+/d/[^"]+">点击下载「使用说明.txt」</a>', anchor
    )
    both = reply_of(push_fields(server, encrypt=encrypt, content="全部")).content
    assert [fetch(server, u) for u in urls(both)] == [
        (files_dir / DEMO_NAME).read_bytes(),
        (files_dir / BIG_NAME).read_bytes(),
    ]
    assert (
        len(urls(reply_of(push_fields(server, encrypt=encrypt, content="我想下载安装包")).content))
        == 1
    )
    early = reply_of(push_fields(server, encrypt=encrypt, content="早鸟")).content
    assert "开放时间" in early and "2030-01-01 00:00" in early and not urls(early)
    assert (
        reply_of(push_fields(server, encrypt=encrypt, content="营业时间")).content
        == "每天 9:00-18:00"
    )
    scanned = push_fields(
        server, encrypt=encrypt, msg_type="event", event="scancode_waitmsg", scan_result="open"
    )
    assert len(urls(reply_of(scanned).content)) == 1
    image = reply_of(push_fields(server, encrypt=encrypt, msg_type="image"))
    assert image.content == "收到，请发送关键词"
    silent = push_fields(
        server, encrypt=encrypt, msg_type="event", event="VIEW", event_key="https://x"
    )
    assert silent.text == "success"


@pytest.mark.parametrize("encrypt", MODES)
def test_same_msgid_from_two_followers_is_two_messages(
    takeover: Callable[[], RunningServer], encrypt: bool, clock: Clock
) -> None:
    """Issue #11 deliver 3: dedup key is account + sender + MsgId."""
    server = takeover()
    first = reply_of(
        push_fields(server, encrypt=encrypt, content="open", msg_id="77", from_user="oA")
    )
    other = reply_of(
        push_fields(server, encrypt=encrypt, content="营业时间", msg_id="77", from_user="oB")
    )
    assert len(urls(first.content)) == 1 and other.content == "每天 9:00-18:00"
    again = reply_of(
        push_fields(server, encrypt=encrypt, content="open", msg_id="77", from_user="oA")
    )
    assert again.content == first.content  # a retry still gets the first answer
    account = reply_of(
        push_fields(
            server, encrypt=encrypt, content="营业时间", msg_id="77", from_user="oA", to_user="gh_2"
        )
    )
    assert account.content == "每天 9:00-18:00"


def test_tappable_keywords_in_welcome(
    tmp_path: Path, files_dir: Path, serve: Callable[..., RunningServer]
) -> None:
    """Issue #11 deliver 2: `[replies] tappable` renders each keyword as a bizmsgmenu link."""
    replies = {**REPLIES, "welcome": "欢迎！{keywords}", "tappable": True}
    server = serve(load_settings(write_config(tmp_path, keywords=RULES, replies=replies)))
    welcome = reply_of(
        push_fields(server, encrypt=True, msg_type="event", event="subscribe")
    ).content
    assert welcome.splitlines()[0] == (
        '欢迎！· <a href="weixin://bizmsgmenu?msgmenucontent=芝麻开门&msgmenuid=1">芝麻开门</a>'
    )
    assert "msgmenucontent=下载&msgmenuid=" in welcome and "MENU_BIG" not in welcome
