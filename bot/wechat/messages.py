"""Messages WeChat pushes: the safe XML gate and the parsed ``Message`` (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from xml.etree.ElementTree import ParseError
from xml.parsers import expat

import defusedxml.ElementTree as SafeET
from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from wechatpy.events import EVENT_TYPES

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
    # Nested fields by path, ``"Parent/Child"`` up to PATH_DEPTH levels (an event's details).
    nested: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    def at(self, path: str) -> str:
        """The first text at ``path`` below the root (``"ScanCodeInfo/ScanResult"``), or ""."""
        return self.nested.get(path, "")

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


PATH_DEPTH = 4  # how deep below the root ``Message.at`` reaches: "A/B/C/D"


@dataclass(slots=True)
class Fields:
    """A pushed document read in one pass: the root's tag, each child's text by tag (the last
    of a repeated one, as a dict of ElementTree's children keeps), the first text of each child
    and descendant up to PATH_DEPTH levels down (``"Parent/Child"``) as ``findtext`` finds it,
    and the children that are not plain text (repeated, with attributes or children of their
    own), named as written."""

    root: str = ""
    text: dict[str, str] = field(default_factory=dict)
    first: dict[str, str] = field(default_factory=dict)
    irregular: set[str] = field(default_factory=set)


def _names(tag: str) -> tuple[str, str]:
    """ElementTree's name (``{uri}local``) and the name as written (``prefix:local``) of a tag
    expat reports as ``uri}local}prefix``."""
    parts = tag.split("}")
    if len(parts) == 1:
        return tag, tag
    written = f"{parts[2]}:{parts[1]}" if len(parts) == 3 else parts[1]
    return "{" + parts[0] + "}" + parts[1], written


class _Reader:
    """expat's handlers for ``read_fields``: ElementTree's text semantics (an element's text is
    what comes before its first child), defusedxml's refusals."""

    __slots__ = ("children", "declared", "fields", "names", "seen", "texts", "written")

    def __init__(self) -> None:
        self.fields = Fields()
        self.names: list[str] = []  # the open elements, outermost first
        self.written: list[str] = []  # ...as written
        self.texts: list[list[str]] = []  # their text so far (until a child opens)
        self.children: list[bool] = []  # whether each has had a child
        self.seen: set[str] = set()  # the root's children, as written
        self.declared = False  # a namespace declaration for the element about to open

    def start(self, tag: str, attributes: list[str]) -> None:
        name, written = _names(tag) if "}" in tag else (tag, tag)
        depth = len(self.names)
        if depth == 0:
            self.fields.root = name
        else:
            self.children[-1] = True
            if depth == 1:
                if attributes or self.declared or written in self.seen:
                    self.fields.irregular.add(written)
                self.seen.add(written)
            elif depth == 2:
                self.fields.irregular.add(self.written[1])
        self.declared = False
        self.names.append(name)
        self.written.append(written)
        self.texts.append([])
        self.children.append(False)

    def end(self, tag: str) -> None:
        name, parts = self.names.pop(), self.texts.pop()
        self.written.pop()
        self.children.pop()
        depth = len(self.names)
        if depth == 1:
            text = self.fields.text[name] = "".join(parts)
            self.fields.first.setdefault(name, text)
        elif 2 <= depth <= PATH_DEPTH:  # bounded: a deep document costs no long paths
            path = "/".join([*self.names[1:], name])
            self.fields.first.setdefault(path, "".join(parts))

    def data(self, text: str) -> None:
        if self.texts and not self.children[-1]:
            self.texts[-1].append(text)

    def namespace(self, prefix: str | None, uri: str) -> None:
        self.declared = True

    @staticmethod
    def doctype(name: str, sysid: str | None, pubid: str | None, internal: bool) -> None:
        raise DTDForbidden(name, sysid, pubid)

    @staticmethod
    def entity(
        name: str,
        parameter: bool,
        value: str | None,
        base: str | None,
        sysid: str | None,
        pubid: str | None,
        notation: str | None,
    ) -> None:
        raise EntitiesForbidden(name, value, base, sysid, pubid, notation)

    @staticmethod
    def unparsed(
        name: str, base: str | None, sysid: str | None, pubid: str | None, notation: str | None
    ) -> None:
        raise EntitiesForbidden(name, None, base, sysid, pubid, notation)

    @staticmethod
    def external(context: str, base: str | None, sysid: str | None, pubid: str | None) -> int:
        raise ExternalReferenceForbidden(context, base, sysid, pubid)


def read_fields(xml: bytes | str) -> Fields:
    """Read untrusted XML in one pass of expat (no tree), refusing DTDs, entities and external
    references as ``parse_tree`` (defusedxml) does; MessageError for anything not XML."""
    try:
        text = xml.decode("utf-8") if isinstance(xml, bytes) else xml
    except UnicodeDecodeError as exc:
        raise MessageError(f"body is not UTF-8: {exc}") from exc
    reader = _Reader()
    parser = expat.ParserCreate(None, "}")  # ElementTree's namespace handling
    parser.namespace_prefixes = True  # ...and the names as written (xmltodict's, wechatpy's)
    parser.buffer_text = True
    parser.ordered_attributes = True
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    parser.CharacterDataHandler = reader.data
    parser.StartNamespaceDeclHandler = reader.namespace
    parser.StartDoctypeDeclHandler = reader.doctype
    parser.EntityDeclHandler = reader.entity
    parser.UnparsedEntityDeclHandler = reader.unparsed
    parser.ExternalEntityRefHandler = reader.external
    try:
        parser.Parse(text, True)
    except expat.ExpatError as exc:  # as ElementTree words it
        raise MessageError(f"not acceptable XML: ParseError: {exc}") from ParseError(str(exc))
    except Exception as exc:  # defusedxml's refusals, anything odd
        raise MessageError(f"not acceptable XML: {type(exc).__name__}: {exc}") from exc
    if reader.fields.root != "xml":
        raise MessageError(f"root element is <{reader.fields.root}>, not <xml>")
    return reader.fields


def event_of(fields: Fields) -> str:
    """An event's name as wechatpy's parser classifies it, without its second parse ("" when
    it does not know it).

    wechatpy reads the document with xmltodict (text stripped) and fails on a MsgType, an Event
    or a subscribe's EventKey that is repeated, has attributes or children, or (Event) is
    empty: so does this, with MessageError.
    """
    irregular = fields.irregular
    if "MsgType" in irregular or "Event" in irregular:
        raise MessageError("unreadable message: MsgType or Event is not plain text")
    if "Event" not in fields.text:
        return ""
    kind = fields.text["Event"].strip().lower()
    if not kind:
        raise MessageError("unreadable message: an empty Event")
    if kind == "subscribe" and "EventKey" in irregular:
        raise MessageError("unreadable message: EventKey is not plain text")
    key = fields.text.get("EventKey", "").strip()
    if kind == "subscribe" and key:
        if key.startswith(("scanbarcode|", "scanimage|")):
            kind = "subscribe_scan_product"
        elif key.startswith("qrscene_"):
            kind = "subscribe_scan"
    return kind if kind in EVENT_TYPES else ""


def parse_message(xml: bytes | str) -> Message:
    """Parse a pushed message; MessageError (-40002) for anything that is not one."""
    # One pass of expat with defusedxml's refusals (``read_fields``); events are named as
    # wechatpy's parser names them (``event_of``). Raw fields come from that pass: EventKey keeps
    # its qrscene_ prefix.
    try:
        fields = read_fields(xml)
        text = fields.text
        msg_type = text.get("MsgType", "").strip().lower()
        source = text.get("FromUserName", "").strip()
        if not msg_type or not source:
            raise MessageError("no MsgType" if not msg_type else "no FromUserName")
        created = text.get("CreateTime", "").strip()
        is_event = msg_type == "event"
        event = event_of(fields) if is_event else ""
        return Message(
            type=msg_type,
            source=source,
            target=text.get("ToUserName", "").strip(),
            create_time=int(created) if created.isascii() and created.isdigit() else 0,
            msg_id=None if is_event else (text.get("MsgId", "").strip() or None),
            content=text.get("Content", ""),
            event=event or (text.get("Event", "").strip().lower() if is_event else ""),
            event_key=text.get("EventKey", "") if is_event else "",
            recognition=text.get("Recognition", "") if msg_type == "voice" else "",
            scan_result=fields.first.get("ScanCodeInfo/ScanResult", "") if is_event else "",
            nested={path: text for path, text in fields.first.items() if "/" in path},
        )
    except MessageError:
        raise
    except Exception as exc:  # bad input must never escape as anything but MessageError
        raise MessageError(f"unreadable message: {type(exc).__name__}: {exc}") from exc
