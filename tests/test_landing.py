"""The landing page over real sockets: who gets it, its headers, and that it never counts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bot.config import Settings, load_settings
from bot.links import LinkSigner
from tests.conftest import (
    BIG_NAME,
    DEMO_NAME,
    SECRET,
    Clock,
    LogCapture,
    RunningServer,
    write_config,
)
from tests.helpers.agents import ANDROID_CHROME, IPHONE_WECHAT, MINI_PROGRAM, WECOM

TELEGRAM = "TelegramBot (like TwitterBot)"


def link(clock: Clock, file: str = DEMO_NAME) -> str:
    """A fresh /d/ path signed as the server signs (same key, same clock)."""
    token, _ = LinkSigner([SECRET], 600, files=[DEMO_NAME, BIG_NAME], clock=clock).issue(file)
    return f"/d/{token}"


@pytest.fixture
def always(
    tmp_path: Path, files_dir: Path, serve: Callable[[Settings], RunningServer]
) -> RunningServer:
    return serve(load_settings(write_config(tmp_path, links={"landing": "always"})))


def is_landing(response_text: str) -> bool:
    return 'id="copy"' in response_text


@pytest.mark.parametrize(
    ("user_agent", "query", "landing"),
    [
        pytest.param(IPHONE_WECHAT, "", True, id="wechat"),
        pytest.param(WECOM, "", True, id="wecom"),
        pytest.param(IPHONE_WECHAT, "?dl=1", True, id="wechat-dl-still-guide"),
        pytest.param(TELEGRAM, "", True, id="preview-bot"),
        pytest.param(TELEGRAM, "?dl=1", False, id="preview-bot-dl"),
        pytest.param(MINI_PROGRAM, "", False, id="mini-program"),
        pytest.param(ANDROID_CHROME, "", False, id="chrome"),
        pytest.param(ANDROID_CHROME, "?dl=0", False, id="chrome-dl-0"),
    ],
)
def test_who_gets_the_landing_page(
    server: RunningServer, files_dir: Path, user_agent: str, query: str, landing: bool
) -> None:
    with server.client(headers={"User-Agent": user_agent}) as client:
        response = client.get(link(server.clock) + query)
    assert response.status_code == 200
    assert response.headers["vary"] == "User-Agent"
    if landing:
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert is_landing(response.text) and DEMO_NAME in response.text
        assert "content-disposition" not in response.headers
    else:
        assert response.content == (files_dir / DEMO_NAME).read_bytes()


def test_landing_headers_and_content(server: RunningServer, files_dir: Path) -> None:
    path = link(server.clock, BIG_NAME)
    server.clock.advance(100)
    with server.client(headers={"User-Agent": IPHONE_WECHAT}) as client:
        page = client.get(path)
        head = client.head(path)
    assert page.status_code == 200
    for name, value in {
        "cache-control": "no-store",
        "vary": "User-Agent",
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
        "x-robots-tag": "noindex",
    }.items():
        assert page.headers[name] == value
    assert "default-src 'none'" in page.headers["content-security-policy"]
    text = page.text
    assert 'data-left="500"' in text and "08:20" in text
    assert BIG_NAME in text and "3.1 MB" in text and "点右上角" in text
    assert f'data-url="http://127.0.0.1:8000{path}"' in text
    assert "<title>下载「安装包 v1.bin」· Download</title>" in text
    assert 'og:description" content="3.1 MB · 9 分钟内有效 · valid for 9 min"' in text
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-type"] == "text/html; charset=utf-8"


def test_landing_is_never_counted(server: RunningServer, logs: LogCapture) -> None:
    path = link(server.clock)
    with server.client() as client:
        for agent in (IPHONE_WECHAT, TELEGRAM, IPHONE_WECHAT):
            assert is_landing(client.get(path, headers={"User-Agent": agent}).text)
        client.head(path, headers={"User-Agent": IPHONE_WECHAT})
        served = client.get(path, headers={"User-Agent": ANDROID_CHROME})
    assert not is_landing(served.text)
    # The one real download's line lands after its response; by then any other would have too.
    assert len(logs.wait_for("download id=")) == 1
    assert len(logs.find("landing page id=")) == 4
    assert "agent=preview" in logs.find("landing page id=")[1]


def test_expired_link_in_wechat_gets_the_expired_page(server: RunningServer) -> None:
    path = link(server.clock)
    server.clock.advance(601)
    with server.client(headers={"User-Agent": IPHONE_WECHAT}) as client:
        response = client.get(path)
    assert response.status_code == 410 and "芝麻开门" in response.text
    assert not is_landing(response.text)


def test_always_mode_page_then_download(always: RunningServer, files_dir: Path) -> None:
    path = link(always.clock, BIG_NAME)
    with always.client(headers={"User-Agent": ANDROID_CHROME}) as client:
        page = client.get(path)
        file = client.get(path + "?dl=1")
        wechat = client.get(path + "?dl=1", headers={"User-Agent": IPHONE_WECHAT})
    assert is_landing(page.text) and 'href="?dl=1"' in page.text and 'id="guide"' not in page.text
    assert file.content == (files_dir / BIG_NAME).read_bytes()
    assert "attachment" in file.headers["content-disposition"]
    assert is_landing(wechat.text) and 'id="guide"' in wechat.text
