"""Issue #21: what a follower reads and an owner sees in the log (routing, welcome, help)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest

from bot.config import KeywordSettings, RepliesSettings
from bot.keywords.router import Give, Router
from bot.links import LinkSigner
from bot.wechat.replies import SuccessReply, TextReply
from tests.conftest import Clock, LogCapture
from tests.helpers.messages import Msg

NOW = 1_800_000_000.0  # 2027-01-15 16:00 Beijing time
RULES = [
    KeywordSettings(match="芝麻开门", file="a.txt"),
    KeywordSettings(click="MENU_DOC", file="a.txt"),
    KeywordSettings(scene="poster", file="a.txt"),
    KeywordSettings(match="限时", file="a.txt", active_until="2027-01-15 15:59"),
    KeywordSettings(match="年会", file="a.txt", active_until="2027-01-15 17:00"),
    KeywordSettings(match="早鸟", file="a.txt", active_from="2027-01-16 09:00"),
    KeywordSettings(
        match="旧活动", file="a.txt", active_until="2027-01-01 00:00", inactive_reply="已结束"
    ),
]
REPLIES = RepliesSettings(welcome="欢迎！\n{keywords}", help="{keywords}")


def router(clock: Clock, replies: RepliesSettings = REPLIES) -> Router:
    signer = LinkSigner(["k" * 32], 600, files=["a.txt"], clock=clock)
    return Router(RULES, replies, signer, "https://files.example.com", clock=clock)


def text_of(reply: object) -> str:
    assert isinstance(reply, TextReply), reply
    return reply.content


@pytest.mark.parametrize(
    ("message", "logged"),
    [
        pytest.param(Msg("event", event="click", event_key="MENU_DCO"), "'MENU_DCO'", id="click"),
        pytest.param(Msg("event", event="scan", event_key="postre"), "'postre'", id="scan"),
        pytest.param(
            Msg("event", event="subscribe", event_key="qrscene_postre"), "'postre'", id="subscribe"
        ),
    ],
)
def test_a_menu_key_or_scene_no_rule_has_is_logged(
    logs: LogCapture, message: Msg, logged: str
) -> None:
    """Item 6: an unknown CLICK key (or QR scene) still gets silence, but a warning names it."""
    r = router(Clock(NOW))
    assert not isinstance(r.route(Msg("event", event="click", event_key="MENU_DOC")), TextReply)
    assert not logs.messages("WARNING")
    r.route(message)
    warned = logs.messages("WARNING")
    assert len(warned) == 1 and logged in warned[0] and "o_follower" in warned[0], warned
    assert "typo" in warned[0]


def test_help_and_welcome_leave_out_rules_whose_window_ended() -> None:
    """Item 7: ended rules are not listed; one that ends while the bot runs drops out then."""
    clock = Clock(NOW)
    r = router(clock)
    listed = text_of(r.route(Msg("text", "没有这个")))
    assert listed.splitlines() == ["· 芝麻开门", "· 年会", "· 早鸟"]
    assert "限时" not in text_of(r.route(Msg("event", event="subscribe")))
    clock.advance(3600)  # 17:00: 年会 is over
    assert text_of(r.route(Msg("text", "没有这个"))).splitlines() == ["· 芝麻开门", "· 早鸟"]
    assert "年会" not in text_of(r.route(Msg("event", event="subscribe")))


def test_an_ended_window_says_it_ended() -> None:
    """Item 7: not "现在不在开放时间内（北京时间 至 …）"; an owner's own inactive_reply stays."""
    r = router(Clock(NOW))
    assert text_of(r.route(Msg("text", "限时"))) == "「限时」已于北京时间 2027-01-15 15:59 结束。"
    assert text_of(r.route(Msg("text", "旧活动"))) == "已结束"
    early = text_of(r.route(Msg("text", "早鸟")))
    assert early == "「早鸟」现在不在开放时间内（北京时间 2027-01-16 09:00 起）。"
    assert isinstance(r.route(Msg("text", "年会")), Give)


@pytest.mark.parametrize(
    "keyword",
    [
        pytest.param('Q&A "#1"', id="quote-amp-hash"),
        pytest.param("50% off?", id="percent-question"),
        pytest.param("a<b>c", id="angle-brackets"),
        pytest.param("芝麻 开门", id="chinese-and-space"),
    ],
)
def test_tappable_keywords_are_escaped_in_the_href(keyword: str) -> None:
    """Item 9: a keyword with `"`, `&` or `#` still taps as itself; the text is never markup."""
    rules = [KeywordSettings(match=keyword, reply="x")]
    signer = LinkSigner(["k" * 32], 600, files=[], clock=Clock(NOW))
    replies = RepliesSettings(help="{keywords}", tappable=True)
    r = Router(rules, replies, signer, "https://files.example.com", clock=Clock(NOW))
    line = text_of(r.route(Msg("text", "没有这个")))
    anchor = re.fullmatch(r'· <a href="([^"<>]*)">([^<>]*)</a>', line)
    assert anchor, line
    href = urlsplit(anchor.group(1))
    assert href.scheme == "weixin" and href.fragment == ""
    assert parse_qs(href.query) == {"msgmenucontent": [keyword], "msgmenuid": ["1"]}
    assert isinstance(r.route(Msg("event", event="click", event_key="nope")), SuccessReply)
