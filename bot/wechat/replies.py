"""Reply XML: the one place that writes what the bot answers WeChat (pure)."""

from __future__ import annotations

import re

_TEXT_LIMIT = 2048  # bytes of UTF-8 in a passive text reply's Content
# Characters XML 1.0 forbids anywhere, even in CDATA; a reply holding one is refused by WeChat.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


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
        f"<xml><ToUserName>{cdata(to_user)}</ToUserName>"
        f"<FromUserName>{cdata(from_user)}</FromUserName><CreateTime>{int(create_time)}"
        "</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content>{cdata(_truncate(_XML_INVALID.sub('', content)))}</Content></xml>"
    )
