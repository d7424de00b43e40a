"""Issue #17: a new trigger, match mode or reply kind is one table entry (plus, for a reply kind,
its class), read by routing, config, the dedup memory, 客服 and `bot check`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from bot.config import RepliesSettings
from bot.keywords import settings as rule_settings
from bot.keywords import triggers
from bot.keywords.router import Give, Router
from bot.keywords.settings import KeywordSettings
from bot.keywords.table import rows
from bot.keywords.table import triggers as trigger_label
from bot.links import LinkSigner
from bot.wechat.replies import ReplyValue, TextReply, cdata, reply_from_json
from bot.wechat.simulator import describe_reply
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


@dataclass(frozen=True, slots=True)
class MusicReply(ReplyValue):
    """A reply kind drafted as a developer would add one: its class, here."""

    kind: ClassVar[str] = "music-seam-test"
    title: str
    music_url: str

    def render(self, *, to_user: str, from_user: str, create_time: int) -> str:
        return (
            f"<xml><ToUserName>{cdata(to_user)}</ToUserName><MsgType>{cdata('music')}</MsgType>"
            f"<Music><Title>{cdata(self.title)}</Title>"
            f"<MusicUrl>{cdata(self.music_url)}</MusicUrl></Music></xml>"
        )

    def custom(self) -> dict[str, Any]:
        return {"msgtype": "music", "music": {"title": self.title, "musicurl": self.music_url}}


def test_a_new_reply_kind_is_its_class_and_one_style_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A music reply: its class and one FIXED_REPLIES entry; config accepts its style, the router
    answers with it, the dedup memory keeps it and a late answer has its 客服 body."""

    def music(rule: KeywordSettings, greeting: str) -> ReplyValue:
        return MusicReply(rule.reply, rule.picurl)

    with pytest.raises(ValueError, match="style must be one of text, anchor, news, image \\["):
        KeywordSettings(match="听歌", style="music", reply="晴天")
    monkeypatch.setitem(rule_settings.FIXED_REPLIES, "music", music)
    rule = KeywordSettings(
        match="听歌", style="music", reply="晴天", picurl="https://m.example/a.mp3"
    )
    routed = router(rule).route(Msg("text", "听歌"))
    assert routed == MusicReply("晴天", "https://m.example/a.mp3")
    assert isinstance(routed, MusicReply)
    assert "<MusicUrl><![CDATA[https://m.example/a.mp3]]>" in routed.render(
        to_user="o", from_user="gh", create_time=1
    )
    assert reply_from_json(routed.to_json()) == routed
    assert routed.custom()["msgtype"] == "music"
    with pytest.raises(ValueError, match="answers on its own"):
        KeywordSettings(match="听歌", style="music", reply="晴天", file="a.zip")
    # `bot check` names the kind, and `bot simulate` shows its fields, with no edit of their own.
    assert rows([rule], {}, 0)[0][2] == "music reply"
    xml = routed.render(to_user="o", from_user="gh", create_time=1)
    assert describe_reply(xml) == (
        "[music] Music/Title 晴天; Music/MusicUrl https://m.example/a.mp3"
    )


def test_a_new_store_is_one_registry_line_and_its_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """A store without a token cache is chosen by its URL; WeChat's API on it names the stores
    that keep a token, not itself."""
    from bot import state
    from bot.errors import ConfigError

    monkeypatch.setitem(
        state.STORES, ("memory://",), state.Backend("bot.state.sqlite:SqliteStore", "memory://NAME")
    )
    assert state.known_url("memory://x")
    assert "memory://NAME" in state.url_forms()
    with pytest.raises(ConfigError) as refused:
        state.tokens_from_url("memory://x", "wx1")
    assert "memory://" not in str(refused.value)
    assert "sqlite:///PATH" in str(refused.value) and "redis://HOST" in str(refused.value)


def test_config_errors_name_a_rule_by_any_indexed_trigger(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rule keyed only by a new trigger's field is still named in a config error."""
    from bot.config.load import _error_key

    monkeypatch.setitem(triggers.INDEXES, "popup", triggers.Index("popup", "popup {}"))
    data = {"keywords": [{"popup": "TPL_1", "mode": "nope"}]}
    assert _error_key(("keywords", 0, "mode"), data) == "keywords[0] ('TPL_1').mode"


# WeChat's documented 订阅通知 popup event: its details sit three levels down.
POPUP_XML = """<xml><ToUserName><![CDATA[gh_123456789abc]]></ToUserName>
<FromUserName><![CDATA[otFpruAK8D-E6EfStSYonYSBZ8_4]]></FromUserName>
<CreateTime>1610969440</CreateTime><MsgType><![CDATA[event]]></MsgType>
<Event><![CDATA[subscribe_msg_popup_event]]></Event>
<SubscribeMsgPopupEvent><List>
<TemplateId><![CDATA[VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc]]></TemplateId>
<SubscribeStatusString><![CDATA[accept]]></SubscribeStatusString><PopupScene>2</PopupScene>
</List></SubscribeMsgPopupEvent></xml>"""


def test_a_new_event_reads_its_nested_fields_without_a_parser_edit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The popup's TemplateId, three levels down, is read by the trigger's own entry."""
    from bot.wechat.messages import parse_message

    def accepted(message: triggers.Routable) -> str | None:
        status = message.at("SubscribeMsgPopupEvent/List/SubscribeStatusString")
        return message.at("SubscribeMsgPopupEvent/List/TemplateId") if status == "accept" else None

    popup = triggers.Trigger("scene", accepted)
    monkeypatch.setitem(triggers.TRIGGERS, ("event", "subscribe_msg_popup_event"), popup)
    template = "VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc"
    rule = KeywordSettings(scene=template[:64], file="a.zip")
    routed = router(rule).route(parse_message(POPUP_XML))
    assert isinstance(routed, Give) and routed.keyword.scene == template
    rejected = POPUP_XML.replace("[accept]", "[reject]")
    assert not isinstance(router(rule).route(parse_message(rejected)), Give)


def test_nested_paths_stop_at_a_bounded_depth() -> None:
    """A deeply nested body costs no long paths: fields below PATH_DEPTH are not kept."""
    from bot.wechat.messages import PATH_DEPTH, parse_message

    deep = "<a>" * 5000 + "x" + "</a>" * 5000
    message = parse_message(
        f"<xml><FromUserName>o</FromUserName><MsgType>event</MsgType><Event>x</Event>{deep}</xml>"
    )
    assert message.at("/".join(["a"] * PATH_DEPTH)) == ""
    assert max(path.count("/") + 1 for path in message.nested) == PATH_DEPTH


def test_every_registered_store_implements_the_whole_protocol() -> None:
    """The registry loads its classes by name, out of mypy's sight: each has every call."""
    import inspect

    from bot import state
    from bot.state.base import Store

    calls = {
        name
        for cls in Store.__mro__
        if cls.__module__ == "bot.state.base"
        for name, member in vars(cls).items()
        if not name.startswith("_") and callable(member)
    }
    assert {"answer_push", "claim", "record_attempts", "open", "ping"} <= calls
    for backend in state.STORES.values():
        module, name = backend.target.split(":")
        store = getattr(__import__(module, fromlist=[name]), name)
        missing = sorted(c for c in calls if not callable(getattr(store, c, None)))
        assert missing == [], (backend.target, missing)
        assert all(
            inspect.iscoroutinefunction(getattr(store, c))
            == inspect.iscoroutinefunction(getattr(Store, c))
            for c in calls
        ), backend.target
