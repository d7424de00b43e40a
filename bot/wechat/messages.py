"""Messages WeChat pushes: the safe XML gate and the parsed ``Message`` (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import defusedxml.ElementTree as SafeET
from wechatpy.parser import parse_message as wechatpy_parse

from bot.errors import MessageError

if TYPE_CHECKING:
    from xml.etree.ElementTree import Element


@dataclass(frozen=True, slots=True)
class Message:
    """One message or event pushed by WeChat."""

    type: str
    source: str
    target: str
    create_time: int
    msg_id: str | None
    content: str = ""
    event: str = ""
    event_key: str = ""
    recognition: str = ""  # a voice message's text, when 语音识别 is on
    scan_result: str = ""  # scancode_waitmsg: what the menu's scanner read

    @property
    def dedup_key(self) -> str:
        """Key under which WeChat's retries of this message or event are recognised.

        Account + sender + MsgId: MsgId alone has been seen to collide across followers.
        """
        if self.msg_id:
            return f"msg:{self.target}:{self.source}:{self.msg_id}"
        event = self.event or self.type  # a message without MsgId falls back to the event form
        return f"evt:{self.target}:{self.source}:{self.create_time}:{event}:{self.event_key}"


def parse_tree(xml: bytes | str) -> Element:
    """Parse untrusted XML, refusing DTDs, entities and external references."""
    try:
        text = xml.decode("utf-8") if isinstance(xml, bytes) else xml
    except UnicodeDecodeError as exc:
        raise MessageError(f"body is not UTF-8: {exc}") from exc
    try:
        root: Element = SafeET.fromstring(
            text, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except Exception as exc:  # defusedxml's refusals, expat's ParseError, anything odd
        raise MessageError(f"not acceptable XML: {type(exc).__name__}: {exc}") from exc
    if root.tag != "xml":
        raise MessageError(f"root element is <{root.tag}>, not <xml>")
    return root


def child_text(root: Element, tag: str) -> str:
    return root.findtext(tag) or ""


def parse_message(xml: bytes | str) -> Message:
    """Parse a pushed message; MessageError (-40002) for anything that is not one."""
    # defusedxml is the gate (no DTD, entities or external references reach any parser); wechatpy
    # then classifies the message. Raw fields come from the gate's tree: wechatpy's typed fields
    # convert lazily (int(MsgId) may raise later) and strip the qrscene_ prefix from EventKey.
    try:
        root = parse_tree(xml)
        fields = {child.tag: child.text or "" for child in root}
        msg_type = fields.get("MsgType", "").strip().lower()
        source = fields.get("FromUserName", "").strip()
        if not msg_type or not source:
            raise MessageError("no MsgType" if not msg_type else "no FromUserName")
        created = fields.get("CreateTime", "").strip()
        is_event = msg_type == "event"
        typed = wechatpy_parse(xml) if is_event else None  # only events need classifying
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
    except Exception as exc:  # bad input must never escape as anything but MessageError
        raise MessageError(f"unreadable message: {type(exc).__name__}: {exc}") from exc
