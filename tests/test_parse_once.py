"""Issue #20: a push is parsed once (expat, defusedxml's refusals) and reads as it did before.

The reference below is the parser this replaced (defusedxml's tree, then wechatpy's xmltodict
parse for events), kept here to compare with, input by input.
"""

from __future__ import annotations

import defusedxml.ElementTree as SafeET
import pytest
from wechatpy.parser import parse_message as wechatpy_parse

from bot.errors import MessageError
from bot.wechat.messages import Message, parse_message

XXE = (
    '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    "<xml><FromUserName>o</FromUserName><MsgType>text</MsgType><Content>&xxe;</Content></xml>"
)
LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;">]>'
    "<xml><FromUserName>o</FromUserName><MsgType>text</MsgType><Content>&lol1;</Content></xml>"
)
ENTITY_ONLY = '<!DOCTYPE xml [<!ENTITY a "b">]><xml><MsgType>text</MsgType></xml>'


def reference(xml: bytes | str) -> Message:
    """The parser before #20, as it was."""
    try:
        try:
            text = xml.decode("utf-8") if isinstance(xml, bytes) else xml
        except UnicodeDecodeError as exc:
            raise MessageError(f"body is not UTF-8: {exc}") from exc
        try:
            root = SafeET.fromstring(
                text, forbid_dtd=True, forbid_entities=True, forbid_external=True
            )
        except Exception as exc:
            raise MessageError(f"not acceptable XML: {type(exc).__name__}: {exc}") from exc
        if root.tag != "xml":
            raise MessageError(f"root element is <{root.tag}>, not <xml>")
        fields = {child.tag: child.text or "" for child in root}
        msg_type = fields.get("MsgType", "").strip().lower()
        source = fields.get("FromUserName", "").strip()
        if not msg_type or not source:
            raise MessageError("no MsgType" if not msg_type else "no FromUserName")
        created = fields.get("CreateTime", "").strip()
        is_event = msg_type == "event"
        typed = wechatpy_parse(xml) if is_event else None
        event = getattr(typed, "event", "") if typed is not None and typed.type != "unknown" else ""
        return Message(
            type=msg_type,
            source=source,
            target=fields.get("ToUserName", "").strip(),
            create_time=int(created) if created.isascii() and created.isdigit() else 0,
            msg_id=None if is_event else (fields.get("MsgId", "").strip() or None),
            content=fields.get("Content", ""),
            event=event or (fields.get("Event", "").strip().lower() if is_event else ""),
            event_key=fields.get("EventKey", "") if is_event else "",
            recognition=fields.get("Recognition", "") if msg_type == "voice" else "",
            scan_result=(root.findtext("ScanCodeInfo/ScanResult") or "") if is_event else "",
        )
    except MessageError:
        raise
    except Exception as exc:
        raise MessageError(f"unreadable message: {type(exc).__name__}: {exc}") from exc


HEAD = "<ToUserName>gh</ToUserName><FromUserName> oU </FromUserName><CreateTime>7</CreateTime>"


def doc(body: str, head: str = HEAD) -> str:
    return f"<xml>{head}{body}</xml>"


def event(name: str, key: str = "<EventKey><![CDATA[]]></EventKey>", more: str = "") -> str:
    return doc(f"<MsgType>event</MsgType><Event>{name}</Event>{key}{more}")


SCAN = "<ScanCodeInfo><ScanType>qrcode</ScanType><ScanResult>{}</ScanResult></ScanCodeInfo>"
CASES = [
    pytest.param(
        doc("<MsgType>text</MsgType><Content>芝麻开门</Content><MsgId>1</MsgId>"), id="text"
    ),
    pytest.param(doc("<MsgType> TEXT </MsgType><Content><![CDATA[ a]]>]]></Content>"), id="cdata"),
    pytest.param(
        doc("<MsgType>text</MsgType><Content>a<!-- c -->b<?pi x?>c</Content>"), id="comment"
    ),
    pytest.param(
        doc("<MsgType>text</MsgType><Content>1</Content><Content>2</Content>"), id="twice"
    ),
    pytest.param(
        doc("<MsgType>text</MsgType><Content>&amp;&lt;&#x4e2d;&#25991;</Content>"), id="refs"
    ),
    pytest.param(doc("<MsgType>text</MsgType><Content>&nbsp;</Content>"), id="undefined-entity"),
    pytest.param(doc("<MsgType>text</MsgType><Content a='1'>x<b>y</b>z</Content>"), id="mixed"),
    pytest.param(
        doc("<MsgType>text</MsgType><MsgId> </MsgId><CreateTime>x</CreateTime>"), id="ids"
    ),
    pytest.param(doc("<MsgType>voice</MsgType><Recognition>芝麻开门</Recognition>"), id="voice"),
    pytest.param(doc("<MsgType>image</MsgType><Recognition>x</Recognition>"), id="not-voice"),
    pytest.param(event("subscribe"), id="subscribe"),
    pytest.param(event("subscribe", "<EventKey>qrscene_123</EventKey>"), id="qrscene"),
    pytest.param(event("subscribe", "<EventKey> qrscene_9 </EventKey>"), id="qrscene-spaces"),
    pytest.param(event("subscribe", "<EventKey>scanbarcode|x</EventKey>"), id="scan-product"),
    pytest.param(event("subscribe", "<EventKey/>"), id="empty-key"),
    pytest.param(event("subscribe", "<EventKey a='1'>k</EventKey>"), id="key-attribute"),
    pytest.param(
        event("subscribe", "<EventKey>a</EventKey><EventKey>b</EventKey>"), id="key-twice"
    ),
    pytest.param(event("subscribe", "<EventKey><i>q</i></EventKey>"), id="key-child"),
    pytest.param(event("CLICK", "<EventKey><i>q</i></EventKey>"), id="click-key-child"),
    pytest.param(event("CLICK", "<EventKey>K:1</EventKey>"), id="click"),
    pytest.param(event("SCAN", "<EventKey>123</EventKey>"), id="scan"),
    pytest.param(event(" View "), id="view-spaces"),
    pytest.param(event("shiny_new"), id="unknown-event"),
    pytest.param(event(""), id="empty-event"),
    pytest.param(event("  "), id="blank-event"),
    pytest.param(event("click</Event><Event>view"), id="event-twice"),
    pytest.param(event("<i>click</i>"), id="event-child"),
    pytest.param(doc("<MsgType>event</MsgType>"), id="no-event"),
    pytest.param(doc('<MsgType>event</MsgType><Event xmlns="u">click</Event>'), id="event-ns"),
    pytest.param(
        doc('<MsgType>event</MsgType><a:Event xmlns:a="u">click</a:Event>'), id="event-prefixed"
    ),
    pytest.param(
        doc('<MsgType>event</MsgType><Event>click</Event><a:Event xmlns:a="u">x</a:Event>'),
        id="event-and-prefixed",
    ),
    pytest.param(
        doc('<MsgType>event</MsgType><Event>click</Event><a:b xmlns:a="u"><c/></a:b>'),
        id="namespaced-sibling",
    ),
    pytest.param(
        doc("<MsgType>event</MsgType><MsgType>event</MsgType><Event>click</Event>"), id="type-twice"
    ),
    pytest.param(event("scancode_waitmsg", more=SCAN.format("X1")), id="scan-result"),
    pytest.param(
        event("scancode_waitmsg", more=SCAN.format("X1") + SCAN.format("X2")), id="two-scans"
    ),
    pytest.param(event("scancode_waitmsg", more="<ScanCodeInfo/>"), id="scan-empty"),
    pytest.param(doc("<MsgType>text</MsgType>", "<FromUserName/>"), id="no-from"),
    pytest.param(doc("<Content>x</Content>"), id="no-type"),
    pytest.param('<xml xmlns="u"><MsgType>text</MsgType></xml>', id="root-ns"),
    pytest.param('<a:xml xmlns:a="u"><MsgType>text</MsgType></a:xml>', id="root-prefixed"),
    pytest.param("<x:xml><MsgType>text</MsgType></x:xml>", id="unbound-prefix"),
    pytest.param("<html><MsgType>text</MsgType></html>", id="wrong-root"),
    pytest.param(XXE, id="xxe"),
    pytest.param(LAUGHS, id="laughs"),
    pytest.param(ENTITY_ONLY, id="entity-declared"),
    pytest.param('<!DOCTYPE xml SYSTEM "http://127.0.0.1:9/x.dtd"><xml/>', id="external-dtd"),
    pytest.param("", id="empty"),
    pytest.param("<xml><MsgType>text</MsgType>", id="truncated"),
    pytest.param("<xml/><xml/>", id="two-roots"),
    pytest.param(
        '<?xml version="1.0" encoding="GBK"?><xml><MsgType>text</MsgType></xml>', id="gbk-declared"
    ),
    pytest.param(bytes(range(256)), id="not-utf8"),
    pytest.param("\ufeff" + doc("<MsgType>text</MsgType><Content>bom</Content>"), id="bom"),
]


@pytest.mark.parametrize("xml", CASES)
def test_one_pass_reads_as_the_tree_and_wechatpy_did(xml: str | bytes) -> None:
    try:
        expected: Message | str = reference(xml)
    except MessageError as exc:
        expected = str(exc)
    try:
        got: Message | str = parse_message(xml)
    except MessageError as exc:
        got = str(exc)
    if isinstance(expected, str) and expected.startswith("unreadable message"):
        assert isinstance(got, str) and got.startswith("unreadable message"), got
    else:
        assert got == expected
