"""Reply XML: the one place that writes what the bot answers WeChat (pure)."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Any, ClassVar

_TEXT_LIMIT = 2048  # bytes of UTF-8 in a passive text reply's Content
# Characters XML 1.0 forbids anywhere, even in CDATA; a reply holding one is refused by WeChat.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_JSON = json.JSONEncoder(ensure_ascii=False)  # json.dumps(..., ensure_ascii=False), built once


def cdata(value: str) -> str:
    """A CDATA section holding value: ']]>' split, XML-forbidden characters dropped."""
    safe = _XML_INVALID.sub("", value).replace("]]>", "]]]]><![CDATA[>")
    return f"<![CDATA[{safe}]]>"


def _truncate(text: str, limit: int = _TEXT_LIMIT) -> str:
    """Text whose UTF-8 fits in limit bytes, cut on a character boundary and ended with '…'."""
    raw = text.encode("utf-8", "replace")
    if len(raw) <= limit:
        return raw.decode("utf-8")
    return raw[: limit - len("…".encode())].decode("utf-8", "ignore") + "…"


def text_reply(*, to_user: str, from_user: str, content: str, create_time: int) -> str:
    """Passive text reply XML; content capped at 2048 UTF-8 bytes."""
    return (
        _head(to_user, from_user, create_time, "text")
        + f"<Content>{cdata(_truncate(_XML_INVALID.sub('', content)))}</Content></xml>"
    )


def _head(to_user: str, from_user: str, create_time: int, msg_type: str) -> str:
    return (
        f"<xml><ToUserName>{cdata(to_user)}</ToUserName>"
        f"<FromUserName>{cdata(from_user)}</FromUserName><CreateTime>{int(create_time)}"
        f"</CreateTime><MsgType>{cdata(msg_type)}</MsgType>"
    )


class ReplyValue:
    """What the bot answers one message; each kind renders its own XML and (de)serialises itself.

    A new kind is one subclass here: a frozen dataclass with a ``kind``, ``render`` and, if it
    can go as a 客服消息 (an answer that missed WeChat's 5 s), ``custom``.
    """

    __slots__ = ()
    kind: ClassVar[str]
    media_type: ClassVar[str] = "application/xml"
    _kinds: ClassVar[dict[str, type[ReplyValue]]] = {}
    _names: ClassVar[dict[type[ReplyValue], tuple[str, ...]]] = {}  # each kind's field names

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            ReplyValue._kinds[cls.kind] = cls

    def render(self, *, to_user: str, from_user: str, create_time: int) -> str:
        """The passive reply as WeChat reads it (before sealing)."""
        raise NotImplementedError

    def custom(self) -> dict[str, Any] | None:
        """The same answer as a 客服消息 (``message/custom/send`` without ``touser``); None when
        there is nothing to send."""
        return None

    def to_json(self) -> str:
        """The reply as the dedup memory keeps it."""
        names = ReplyValue._names.get(type(self))
        if names is None:  # every field is a str: the shallow copy is asdict's deep one
            names = tuple(f.name for f in dataclasses.fields(self))  # type: ignore[arg-type]
            ReplyValue._names[type(self)] = names
        return _JSON.encode({"kind": self.kind, **{name: getattr(self, name) for name in names}})


@dataclass(frozen=True, slots=True)
class TextReply(ReplyValue):
    """A text message (may hold ``<a href>`` links, which WeChat shows as tappable words)."""

    kind: ClassVar[str] = "text"
    content: str

    def render(self, *, to_user: str, from_user: str, create_time: int) -> str:
        return text_reply(
            to_user=to_user, from_user=from_user, content=self.content, create_time=create_time
        )

    def custom(self) -> dict[str, Any]:
        return {"msgtype": "text", "text": {"content": self.content}}


@dataclass(frozen=True, slots=True)
class NewsReply(ReplyValue):
    """One article card (WeChat allows one when answering a follower's message)."""

    kind: ClassVar[str] = "news"
    title: str
    description: str
    url: str
    pic_url: str = ""

    def render(self, *, to_user: str, from_user: str, create_time: int) -> str:
        return (
            _head(to_user, from_user, create_time, "news") + "<ArticleCount>1</ArticleCount>"
            f"<Articles><item><Title>{cdata(_truncate(self.title, 256))}</Title>"
            f"<Description>{cdata(_truncate(self.description, 1024))}</Description>"
            f"<PicUrl>{cdata(self.pic_url)}</PicUrl><Url>{cdata(self.url)}</Url></item>"
            "</Articles></xml>"
        )

    def custom(self) -> dict[str, Any]:
        article = {"title": self.title, "description": self.description, "url": self.url}
        return {"msgtype": "news", "news": {"articles": [{**article, "picurl": self.pic_url}]}}


@dataclass(frozen=True, slots=True)
class ImageReply(ReplyValue):
    """A picture WeChat already holds: temporary media's ``media_id`` (``bot.wechat.api.media``)."""

    kind: ClassVar[str] = "image"
    media_id: str

    def render(self, *, to_user: str, from_user: str, create_time: int) -> str:
        return (
            _head(to_user, from_user, create_time, "image")
            + f"<Image><MediaId>{cdata(self.media_id)}</MediaId></Image></xml>"
        )

    def custom(self) -> dict[str, Any]:
        return {"msgtype": "image", "image": {"media_id": self.media_id}}


@dataclass(frozen=True, slots=True)
class SuccessReply(ReplyValue):
    """``success``: WeChat shows nothing and stops retrying."""

    kind: ClassVar[str] = "success"
    media_type: ClassVar[str] = "text/plain"

    def render(self, *, to_user: str, from_user: str, create_time: int) -> str:
        return "success"


def reply_from_json(stored: str | None) -> ReplyValue:
    """A reply kept by ``to_json``; None is ``success``, bare text (older versions) a text reply."""
    if stored is None:
        return SuccessReply()
    try:
        data = json.loads(stored)
        cls = ReplyValue._kinds[data.pop("kind")]
        return cls(**data)
    except (ValueError, TypeError, KeyError, AttributeError):
        return TextReply(stored)
