"""Issue #17: a new trigger or match mode is one table entry, read by routing, config and `bot check`."""

from __future__ import annotations

import pytest

from bot.config import RepliesSettings
from bot.keywords import triggers
from bot.keywords.router import Give, Router
from bot.keywords.settings import KeywordSettings
from bot.keywords.table import triggers as trigger_label
from bot.links import LinkSigner
from bot.wechat.replies import TextReply
from tests.helpers.messages import Msg


def router(*rules: KeywordSettings) -> Router:
    signer = LinkSigner(["k" * 32], 600, files=["a.zip"])
    return Router(list(rules), RepliesSettings(help="help"), signer, "https://files.example.com")


def test_a_new_event_trigger_is_one_table_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    """subscribe_msg_popup_event, added as one TRIGGERS entry, reaches the rule of its scene."""
    popup = triggers.Trigger("scene", lambda m: m.event_key)
    monkeypatch.setitem(triggers.TRIGGERS, ("event", "subscribe_msg_popup_event"), popup)
    rule = KeywordSettings(scene="poster", file="a.zip")
    routed = router(rule).route(Msg("event", event="subscribe_msg_popup_event", event_key="poster"))
    assert isinstance(routed, Give) and routed.keyword.scene == "poster"


def test_a_new_match_mode_is_one_table_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A "prefix" mode, added to MATCH_MODES, is accepted by config and matched by the book."""

    def prefix(rule: str, alias: str, fold: triggers.Fold) -> triggers.Matcher:
        start = fold(alias)
        return lambda text: text.startswith(start)

    monkeypatch.setitem(triggers.MATCH_MODES, "prefix", prefix)
    rule = KeywordSettings(match="下载", mode="prefix", reply="好的")
    assert router(rule).route(Msg("text", "下载安装包")) == TextReply("好的")
    assert router(rule).route(Msg("text", "我要下载")) == TextReply("help")
    with pytest.raises(ValueError, match="mode must be one of exact, contains, regex, prefix"):
        KeywordSettings(match="x", mode="suffix", reply="y")


def test_check_labels_come_from_the_index_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """`bot check` names each keyed trigger by its index's label."""
    rule = KeywordSettings(match="芝麻开门", click="GET", scene="poster", file="a.zip")
    assert trigger_label(rule) == "芝麻开门 · menu GET · scene poster"
    monkeypatch.setitem(triggers.INDEXES, "click", triggers.Index("click", "菜单 {}"))
    assert trigger_label(rule) == "芝麻开门 · 菜单 GET · scene poster"
