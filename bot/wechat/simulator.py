"""WeChat's side of the callback, for ``bot simulate`` and the tests only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from xml.etree.ElementTree import Element  # a type only: parsing is defusedxml's

from bot.errors import MessageError, SignatureError
from bot.wechat.crypto import Codec, same, signature
from bot.wechat.messages import child_text, parse_tree
from bot.wechat.replies import cdata


class Simulator(Codec):
    """Builds pushes as WeChat's server sends them and reads the bot's replies (same secrets)."""

    def build_request(
        self,
        message_xml: str,
        *,
        timestamp: str,
        nonce: str,
        encrypt: bool,
        compatible: bool = False,
    ) -> tuple[dict[str, str], bytes]:
        """Query parameters and body of a push as WeChat's server would send it."""
        sig = signature(self.token, timestamp, nonce)
        params = {"signature": sig, "timestamp": timestamp, "nonce": nonce}
        if not encrypt:
            return params, message_xml.encode()
        ciphertext = self.encrypt(message_xml)
        params["encrypt_type"] = "aes"
        params["msg_signature"] = signature(self.token, timestamp, nonce, ciphertext)
        element = f"<Encrypt>{cdata(ciphertext)}</Encrypt>"
        if compatible:
            head, _, tail = message_xml.rstrip().rpartition("</xml>")
            if not head or tail:
                raise MessageError("message XML must end with </xml>")
            return params, f"{head}{element}</xml>".encode()
        to_user = child_text(parse_tree(message_xml), "ToUserName")
        return params, f"<xml><ToUserName>{cdata(to_user)}</ToUserName>{element}</xml>".encode()

    def read_reply(self, body: bytes) -> str:
        """The reply XML in a response body, decrypted (MsgSignature checked) when encrypted."""
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MessageError(f"reply is not UTF-8: {exc}") from exc
        if text.strip() in ("", "success"):
            return text
        root = parse_tree(text)
        encrypt = child_text(root, "Encrypt")
        if not encrypt:
            return text
        expected = signature(
            self.token, child_text(root, "TimeStamp"), child_text(root, "Nonce"), encrypt
        )
        if not same(child_text(root, "MsgSignature"), expected):
            raise SignatureError("reply MsgSignature does not match")
        return self.decrypt(encrypt)


def build_message_xml(
    *,
    to_user: str,
    from_user: str,
    create_time: int,
    msg_type: str = "text",
    content: str = "",
    event: str = "",
    event_key: str = "",
    msg_id: str | None = None,
    recognition: str | None = None,
    scan_result: str = "",
) -> str:
    """A push as WeChat's server sends it, for `bot simulate` and tests."""
    xml = (
        f"<xml><ToUserName>{cdata(to_user)}</ToUserName>"
        f"<FromUserName>{cdata(from_user)}</FromUserName>"
        f"<CreateTime>{int(create_time)}</CreateTime><MsgType>{cdata(msg_type)}</MsgType>"
    )
    if msg_type == "text" or content:
        xml += f"<Content>{cdata(content)}</Content>"
    if msg_type == "event" or event:
        xml += f"<Event>{cdata(event)}</Event><EventKey>{cdata(event_key)}</EventKey>"
    if recognition is not None:  # a voice message with 语音识别 on
        xml += "<MediaId><![CDATA[media]]></MediaId><Format><![CDATA[amr]]></Format>"
        xml += f"<Recognition>{cdata(recognition)}</Recognition>"
    if scan_result:  # scancode_waitmsg / scancode_push
        xml += (
            "<ScanCodeInfo><ScanType><![CDATA[qrcode]]></ScanType>"
            f"<ScanResult>{cdata(scan_result)}</ScanResult></ScanCodeInfo>"
        )
    if msg_id is not None:
        xml += f"<MsgId>{cdata(msg_id)}</MsgId>"
    return xml + "</xml>"


def follower_push(
    *,
    account: str,
    user: str,
    now: int,
    msg_id: str,
    text: str = "",
    event: str | None = None,
    click: str | None = None,
    scan: str | None = None,
    voice: str | None = None,
) -> str:
    """What a follower's action pushes: a text, a voice, a menu click, a QR scan, an event."""
    fields: dict[str, Any] = {"content": text, "msg_id": msg_id}
    if voice is not None:
        fields = {"msg_type": "voice", "msg_id": msg_id, "recognition": voice}
    key = ""
    if click is not None:
        event, key = "CLICK", click
    elif scan is not None:  # a follower scanning again; with --event subscribe, a new one
        event = event or "SCAN"
        key = f"qrscene_{scan}" if event.lower() == "subscribe" else scan
    if event:
        fields = {"msg_type": "event", "event": event, "event_key": key}
    return build_message_xml(to_user=account, from_user=user, create_time=now, **fields)


ENVELOPE = frozenset({"ToUserName", "FromUserName", "CreateTime", "MsgType"})


def _news(root: Element) -> str:
    cards = []
    for item in root.iterfind("Articles/item"):
        lines = [f"[图文] {child_text(item, 'Title')}", child_text(item, "Description")]
        lines.append(f"→ {child_text(item, 'Url')}")
        if child_text(item, "PicUrl"):
            lines.append(f"(picture {child_text(item, 'PicUrl')})")
        cards.append("\n".join(line for line in lines if line))
    return "\n\n".join(cards)


def _leaves(element: Element, prefix: str = "") -> list[str]:
    """Each leaf below ``element`` as ``Path/Tag value`` (a kind this module doesn't know)."""
    found = []
    for child in element:
        path = f"{prefix}{child.tag}"
        if len(child):
            found += _leaves(child, f"{path}/")
        elif child.tag not in ENVELOPE:
            found.append(f"{path} {child.text or ''}".strip())
    return found


# How each reply kind reads to a person; any other kind lists its fields.
DESCRIBE: dict[str, Callable[[Element], str]] = {
    "text": lambda root: child_text(root, "Content"),
    "image": lambda root: f"[图片] media_id {child_text(root, 'Image/MediaId')}",
    "news": _news,
}


def describe_reply(xml: str) -> str:
    """A reply as a person reads it: its text, a news card's title, text and link, an image,
    or, for a kind without an entry in ``DESCRIBE``, its type and fields."""
    if xml.strip() in ("", "success"):
        return "(no reply: success)"
    root = parse_tree(xml)
    kind = child_text(root, "MsgType")
    describe = DESCRIBE.get(kind)
    if describe is not None:
        return describe(root)
    return f"[{kind}] " + "; ".join(_leaves(root))
