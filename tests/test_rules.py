"""Issue #11: rule table (pure): every mode, fold and trigger; reply values; rule validation."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from bot.config import KeywordSettings, RepliesSettings
from bot.keywords.book import fold
from bot.keywords.router import Give, Router
from bot.links import LinkSigner
from bot.wechat.replies import NewsReply, SuccessReply, TextReply, reply_from_json
from tests.helpers.messages import Msg

NOW = 1_800_000_000.0  # 2027-01-15 08:00 UTC = 16:00 Beijing time
FILES = ["a.txt", "setup.exe", "poster.pdf", "b.pdf"]
RULES = [
    KeywordSettings(match=["芝麻开门", "wine", "InstMsiW", "open"], file="a.txt"),
    KeywordSettings(match="安装", mode="contains", file="setup.exe"),
    KeywordSettings(match=r"^v\d+$", mode="regex", reply="版本说明见官网"),
    KeywordSettings(click="MENU_DOC", file="a.txt"),
    KeywordSettings(scene="poster", file="poster.pdf"),
    KeywordSettings(match="早鸟", file="a.txt", active_from="2027-01-16 09:00"),
    KeywordSettings(match="限时", file="a.txt", active_until="2027-01-15 15:59"),
    KeywordSettings(
        match="开放中",
        file="a.txt",
        active_from="2027-01-15 15:00",
        active_until="2027-01-15 17:00",
    ),
    KeywordSettings(match="营业时间", reply="每天 9:00-18:00"),
    KeywordSettings(match="卡片", file="b.pdf", style="news", picurl="https://x.example/p.png"),
    KeywordSettings(match="链接", file="b.pdf", style="anchor"),
    KeywordSettings(match="全部", files=["a.txt", "b.pdf"]),
    KeywordSettings(match="文档", mode="contains", file="b.pdf"),  # after 安装: file order
]
REPLIES = RepliesSettings(welcome="欢迎！", help="试试：{keywords}", other="收到啦")


def router(replies: RepliesSettings = REPLIES, rules: list[KeywordSettings] = RULES) -> Router:
    signer = LinkSigner(["k" * 32], 600, files=FILES, clock=lambda: NOW)
    return Router(rules, replies, signer, "https://files.example.com", clock=lambda: NOW)


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        pytest.param("芝麻开门。", "芝麻开门", id="full-stop"),
        pytest.param("\u3000芝麻开门！", "芝麻开门", id="ideographic-space-and-bang"),
        pytest.param("ＯＰＥＮ", "open", id="full-width-latin"),
        pytest.param("Ｖ１２", "v12", id="full-width-digits"),
        pytest.param(" wine?? ", "wine", id="ascii-punctuation"),
        pytest.param("芝麻开门～…", "芝麻开门", id="tilde-ellipsis"),
        pytest.param("，、芝麻，开门．", "芝麻,开门", id="inner-kept"),
    ],
)
def test_fold(text: str, folded: str) -> None:
    """Issue #11 seen 4: NFKC, case-fold, edges trimmed of whitespace and the listed punctuation."""
    assert fold(text) == folded


def link(file: str) -> tuple[str, str]:
    return ("link", file)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        pytest.param(Msg("text", "芝麻开门。"), link("a.txt"), id="seen-4-full-stop"),
        pytest.param(Msg("text", "ＯＰＥＮ"), link("a.txt"), id="seen-4-full-width"),
        pytest.param(Msg("text", "WINE"), link("a.txt"), id="alias-case"),
        pytest.param(Msg("text", "instmsiw"), link("a.txt"), id="alias-3"),
        pytest.param(Msg("text", "我要安装包"), link("setup.exe"), id="contains"),
        pytest.param(Msg("text", "安装文档"), link("setup.exe"), id="contains-file-order"),
        pytest.param(Msg("text", "说明文档"), link("b.pdf"), id="contains-second"),
        pytest.param(Msg("text", "V12"), ("text", "版本说明见官网"), id="regex-reply-only"),
        pytest.param(Msg("text", "v12a"), ("text", "help"), id="regex-anchored"),
        pytest.param(Msg("text", "营业时间？"), ("text", "每天 9:00-18:00"), id="faq"),
        pytest.param(Msg("text", "芝麻开门吧"), ("text", "help"), id="exact-is-exact"),
        pytest.param(Msg("text", "。"), ("text", "help"), id="only-punctuation"),
        pytest.param(
            Msg("voice", recognition="芝麻开门。"), link("a.txt"), id="seen-1-voice-recognition"
        ),
        pytest.param(Msg("voice", recognition=""), ("text", "收到啦"), id="voice-unrecognised"),
        pytest.param(Msg("voice", recognition="随便"), ("text", "help"), id="voice-unmatched"),
        pytest.param(
            Msg("event", event="click", event_key="MENU_DOC"), link("a.txt"), id="click-key"
        ),
        pytest.param(
            Msg("event", event="click", event_key="芝麻开门"),
            link("a.txt"),
            id="seen-2-click-keyword",
        ),
        pytest.param(Msg("event", event="click", event_key="NOPE"), None, id="click-unknown"),
        pytest.param(Msg("event", event="scan", event_key="poster"), link("poster.pdf"), id="scan"),
        pytest.param(Msg("event", event="scan", event_key="other"), None, id="scan-unknown"),
        pytest.param(
            Msg("event", event="subscribe_scan", event_key="qrscene_poster"),
            ("welcome+link", "poster.pdf"),
            id="seen-3-subscribe-by-poster",
        ),
        pytest.param(
            Msg("event", event="subscribe_scan", event_key="qrscene_unknown"),
            ("text", "欢迎！"),
            id="subscribe-unknown-scene",
        ),
        pytest.param(Msg("event", event="subscribe"), ("text", "欢迎！"), id="subscribe"),
        pytest.param(
            Msg("event", event="scancode_waitmsg", scan_result="wine"),
            link("a.txt"),
            id="scancode-waitmsg",
        ),
        pytest.param(Msg("event", event="scancode_push", scan_result="wine"), None, id="scan-push"),
        pytest.param(Msg("event", event="view", event_key="https://x"), None, id="view"),
        pytest.param(Msg("event", event="location"), None, id="location-event"),
        pytest.param(Msg("image"), ("text", "收到啦"), id="image-other"),
        pytest.param(Msg("video"), ("text", "收到啦"), id="video-other"),
        pytest.param(Msg("location"), ("text", "收到啦"), id="location-other"),
        pytest.param(Msg("link"), ("text", "收到啦"), id="link-other"),
        pytest.param(Msg("brand_new_type"), None, id="unknown-type"),
        pytest.param(Msg("text", "早鸟"), ("inactive", "2027-01-16 09:00 起"), id="not-yet"),
        pytest.param(  # issue #21 item 7: was "现在不在开放时间内（北京时间 至 …）"
            Msg("text", "限时"),
            ("text", "「限时」已于北京时间 2027-01-15 15:59 结束。"),
            id="ended",
        ),
        pytest.param(Msg("text", "开放中"), link("a.txt"), id="inside-window"),
    ],
)
def test_route(message: Msg, expected: tuple[str, str] | None) -> None:
    """Issue #11 rules: exact first, then contains/regex in file order; triggers; windows."""
    action = router().route(message)
    if expected is None:
        assert isinstance(action, SuccessReply)
        return
    kind, value = expected
    if kind == "link":
        assert isinstance(action, Give) and action.keyword.file_list == [value]
        assert action.greeting == ""
    elif kind == "welcome+link":
        assert isinstance(action, Give) and action.keyword.file_list == [value]
        assert action.greeting == "欢迎！"
    elif kind == "inactive":
        assert (
            isinstance(action, TextReply)
            and value in action.content
            and "开放时间" in action.content
        )
    elif value == "help":
        assert isinstance(action, TextReply) and action.content.startswith("试试：")
    else:
        assert action == TextReply(value)


def test_other_defaults_to_success() -> None:
    """Issue #11 deliver 2: [replies] other empty → images etc. get success."""
    assert isinstance(router(RepliesSettings()).route(Msg("image")), SuccessReply)


def test_listing_and_tappable() -> None:
    """Issue #11 deliver 2: {keywords} lists text rules (not regexes); tappable makes links."""
    plain = router(RepliesSettings(help="{keywords}")).route(Msg("text", "?x"))
    assert isinstance(plain, TextReply)
    assert plain.content.splitlines()[:2] == ["· 芝麻开门", "· 安装"]
    assert "v\\d" not in plain.content and "MENU_DOC" not in plain.content
    tap = router(RepliesSettings(help="{keywords}", tappable=True)).route(Msg("text", "?x"))
    assert isinstance(tap, TextReply)
    assert tap.content.splitlines()[0] == (
        '· <a href="weixin://bizmsgmenu?msgmenucontent=芝麻开门&msgmenuid=1">芝麻开门</a>'
    )


def test_drafts_by_style() -> None:
    """Issue #11 styles: text, anchor, news (one card), files (one reply, a link each)."""
    r = router()
    text = r.draft(Msg("text", "wine"))
    assert (
        isinstance(text.reply, TextReply) and "https://files.example.com/d/" in text.reply.content
    )
    assert [(x.keyword, x.file, x.openid) for x in text.links] == [
        ("芝麻开门", "a.txt", "o_follower")
    ]
    anchor = r.draft(Msg("text", "链接")).reply
    assert isinstance(anchor, TextReply)
    assert anchor.content.startswith('<a href="https://files.example.com/d/')
    assert "」</a>" in anchor.content
    news = r.draft(Msg("text", "卡片"))
    assert isinstance(news.reply, NewsReply) and news.reply.title == "b.pdf"
    assert news.reply.url.startswith("https://files.example.com/d/")
    assert news.reply.pic_url == "https://x.example/p.png" and len(news.links) == 1
    both = r.draft(Msg("text", "全部"))
    assert isinstance(both.reply, TextReply) and both.reply.content.count("/d/") == 2
    assert [x.file for x in both.links] == ["a.txt", "b.pdf"]
    scene = r.draft(Msg("event", event="subscribe_scan", event_key="qrscene_poster")).reply
    assert isinstance(scene, TextReply) and scene.content.startswith("欢迎！\n\n")
    assert "poster.pdf" in scene.content and "/d/" in scene.content
    assert isinstance(r.draft(Msg("image")).reply, TextReply)
    assert isinstance(r.draft(Msg("brand_new_type")).reply, SuccessReply)


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(TextReply("链接 ]]> ok"), id="text"),
        pytest.param(NewsReply("标题", "说明", "https://x/d/t", "https://x/p.png"), id="news"),
        pytest.param(SuccessReply(), id="success"),
    ],
)
def test_reply_round_trips_through_json(reply: Any) -> None:
    """Issue #11 seam: the dedup memory keeps any reply kind as JSON, unaware of the kind."""
    assert reply_from_json(reply.to_json()) == reply


def test_reply_from_json_reads_old_plain_text_and_none() -> None:
    assert reply_from_json("第一次的回答") == TextReply("第一次的回答")
    assert reply_from_json(None) == SuccessReply()


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        pytest.param({"match": "(", "mode": "regex", "file": "a"}, "not a valid regex", id="regex"),
        pytest.param({"file": "a"}, "needs a trigger", id="no-trigger"),
        pytest.param({"match": "x"}, "gives nothing", id="nothing"),
        pytest.param({"match": "x", "file": "a", "files": ["b"]}, "not both", id="file-and-files"),
        pytest.param(
            {"match": "x", "reply": "r", "style": "news"}, "needs a file", id="news-no-file"
        ),
        pytest.param(
            {"match": "x", "files": ["a", "b"], "style": "news"}, "one link", id="news-two-files"
        ),
        pytest.param({"match": "x", "file": "a", "picurl": "/p.png"}, "absolute", id="picurl"),
        pytest.param({"match": "x", "file": "a", "active_from": "明天"}, "2026-12-01", id="window"),
        pytest.param(
            {
                "match": "x",
                "file": "a",
                "active_from": "2027-01-02 00:00",
                "active_until": "2027-01-01 00:00",
            },
            "before",
            id="window-order",
        ),
        pytest.param({"match": ["x", " "], "file": "a"}, "empty alias", id="empty-alias"),
    ],
)
def test_rule_refused(rule: dict[str, Any], message: str) -> None:
    """Issue #11: a bad rule is refused at load time."""
    with pytest.raises(ValidationError, match=message):
        KeywordSettings(**rule)
