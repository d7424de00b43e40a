"""Keyword/event routing table."""

from __future__ import annotations

import pytest

from bot.config import KeywordSettings, RepliesSettings
from bot.keywords.router import Give, Router
from bot.links import LinkSigner
from bot.wechat.replies import SuccessReply, TextReply
from tests.helpers.messages import Msg

ROUTER = Router(
    [
        KeywordSettings(match="芝麻开门", file="a.txt"),
        KeywordSettings(match="Setup", file="setup.exe"),
    ],
    RepliesSettings(welcome="欢迎！{keywords}", help="试试：{keywords}"),
    LinkSigner(["k" * 32], 600, files=["a.txt", "setup.exe"]),
    "https://files.example.com",
)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        pytest.param(Msg("text", "芝麻开门"), "a.txt", id="exact"),
        pytest.param(Msg("text", "  芝麻开门\n"), "a.txt", id="trimmed"),
        pytest.param(Msg("text", "setup"), "setup.exe", id="latin-lower"),
        pytest.param(Msg("text", "SETUP"), "setup.exe", id="latin-upper"),
        pytest.param(Msg("text", "芝麻开门吧"), "help", id="longer-is-help"),
        pytest.param(Msg("text", ""), "help", id="empty-is-help"),
        pytest.param(Msg("event", event="subscribe"), "welcome", id="subscribe"),
        pytest.param(Msg("event", event="subscribe_scan"), "welcome", id="subscribe-by-qr-code"),
        pytest.param(Msg("event", event="unsubscribe"), None, id="unsubscribe"),
        pytest.param(Msg("event", event="click"), None, id="click"),
        pytest.param(Msg("image"), None, id="image"),
        pytest.param(Msg("location"), None, id="location"),
        pytest.param(Msg("brand_new_type"), None, id="unknown-type"),
    ],
)
def test_route(message: Msg, expected: str | None) -> None:
    action = ROUTER.route(message)
    if expected is None:
        assert isinstance(action, SuccessReply)
    elif expected == "help":
        assert action == TextReply("试试：· 芝麻开门\n· Setup")
    elif expected == "welcome":
        assert action == TextReply("欢迎！· 芝麻开门\n· Setup")
    else:
        assert isinstance(action, Give)
        assert action.keyword.file == expected
