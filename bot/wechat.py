"""WeChat callback protocol: signatures, safe-mode AES, message parsing and reply XML (pure)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import defusedxml.ElementTree as SafeET
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from wechatpy.parser import parse_message as wechatpy_parse

from bot.errors import EncryptionRequired, MessageError, SignatureError, StaleRequest

if TYPE_CHECKING:
    from xml.etree.ElementTree import Element

_TEXT_LIMIT = 2048  # bytes of UTF-8 in a passive text reply's Content
_BLOCK = 32  # WeChat pads to 32 bytes, not AES's 16
# Characters XML 1.0 forbids anywhere, even in CDATA; a reply holding one is refused by WeChat.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


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

    @property
    def dedup_key(self) -> str:
        """Key under which WeChat's retries of this message or event are recognised."""
        if self.msg_id:
            return f"msg:{self.msg_id}"
        event = self.event or self.type  # a message without MsgId falls back to the event form
        return f"evt:{self.source}:{self.create_time}:{event}:{self.event_key}"


def signature(*parts: str) -> str:
    """WeChat's signature: sha1 hex of the sorted parts joined."""
    joined = "".join(sorted(parts)).encode("utf-8")
    return hashlib.sha1(joined).hexdigest()  # noqa: S324 - SHA-1 is what the protocol mandates


_sign = signature  # Codec methods take a `signature` argument that shadows the function


def _same(given: str | None, expected: str) -> bool:
    # compare_digest raises TypeError on non-ASCII str; a hostile query must only fail to match.
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


class Codec:
    """Checks, opens and seals WeChat callbacks for one account (token, appid, optional AES key)."""

    def __init__(
        self,
        token: str,
        app_id: str,
        encoding_aes_key: str = "",
        *,
        random_bytes: Callable[[int], bytes] = os.urandom,
        clock: Callable[[], float] | None = None,
        max_clock_skew: int = 300,
        require_encryption: bool = False,
    ) -> None:
        if not token:
            raise ValueError("token must not be empty")
        self.token, self.app_id, self._random_bytes = token, app_id, random_bytes
        # With a clock, callbacks are also refused when their timestamp is stale (replays).
        self._clock, self.max_clock_skew = clock, max_clock_skew
        self.require_encryption = require_encryption
        self._key = b""
        if encoding_aes_key:
            try:
                self._key = base64.b64decode(encoding_aes_key + "=", validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ValueError(f"EncodingAESKey is not base64: {exc}") from exc
            if len(self._key) != 32:
                raise ValueError(f"EncodingAESKey must be 43 characters, got {encoding_aes_key!r}")
            if not app_id:
                raise ValueError("app_id is required when an EncodingAESKey is set")

    @property
    def encrypted(self) -> bool:
        """True when an EncodingAESKey is configured."""
        return bool(self._key)

    def verify_echo(self, *, signature: str, timestamp: str, nonce: str, echostr: str) -> str:
        """Answer the server-URL check: the echostr when the signature holds."""
        self._check_signature(signature, timestamp, nonce)
        return echostr

    def open(
        self,
        body: bytes,
        *,
        signature: str,
        timestamp: str,
        nonce: str,
        encrypt_type: str | None = None,
        msg_signature: str | None = None,
    ) -> tuple[Message, bool]:
        """Check and parse a pushed message; returns it and whether it came encrypted."""
        self._check_signature(signature, timestamp, nonce)
        mode = (encrypt_type or "raw").lower()
        if mode == "raw":
            if self.require_encryption:
                raise EncryptionRequired("plaintext callback refused: require_encryption is on")
            return parse_message(body), False
        if mode != "aes":
            raise MessageError(f"unknown encrypt_type {encrypt_type!r}")
        self._require_key()
        encrypt = _child(_parse_tree(body), "Encrypt")
        if not encrypt:
            raise MessageError("encrypt_type=aes but the body has no <Encrypt>")
        # msg_signature covers the ciphertext; `signature` alone does not (a common bug).
        if not _same(msg_signature, _sign(self.token, timestamp, nonce, encrypt)):
            raise SignatureError("msg_signature does not match")
        return parse_message(self.decrypt(encrypt)), True

    def seal(self, reply_xml: str, *, encrypted: bool, nonce: str, timestamp: str) -> str:
        """The reply as sent: encrypted when the request was ('success' and '' go as they are)."""
        if not encrypted or reply_xml.strip() in ("", "success"):
            return reply_xml
        encrypt = self.encrypt(reply_xml)
        sig = _sign(self.token, timestamp, nonce, encrypt)
        return (
            f"<xml><Encrypt>{_cdata(encrypt)}</Encrypt><MsgSignature>{_cdata(sig)}</MsgSignature>"
            f"<TimeStamp>{_cdata(timestamp)}</TimeStamp><Nonce>{_cdata(nonce)}</Nonce></xml>"
        )

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
        sig = _sign(self.token, timestamp, nonce)
        params = {"signature": sig, "timestamp": timestamp, "nonce": nonce}
        if not encrypt:
            return params, message_xml.encode()
        ciphertext = self.encrypt(message_xml)
        params["encrypt_type"] = "aes"
        params["msg_signature"] = _sign(self.token, timestamp, nonce, ciphertext)
        element = f"<Encrypt>{_cdata(ciphertext)}</Encrypt>"
        if compatible:
            head, _, tail = message_xml.rstrip().rpartition("</xml>")
            if not head or tail:
                raise MessageError("message XML must end with </xml>")
            return params, f"{head}{element}</xml>".encode()
        to_user = _child(_parse_tree(message_xml), "ToUserName")
        return params, f"<xml><ToUserName>{_cdata(to_user)}</ToUserName>{element}</xml>".encode()

    def read_reply(self, body: bytes) -> str:
        """The reply XML in a response body, decrypted (MsgSignature checked) when encrypted."""
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MessageError(f"reply is not UTF-8: {exc}") from exc
        if text.strip() in ("", "success"):
            return text
        root = _parse_tree(text)
        encrypt = _child(root, "Encrypt")
        if not encrypt:
            return text
        expected = _sign(self.token, _child(root, "TimeStamp"), _child(root, "Nonce"), encrypt)
        if not _same(_child(root, "MsgSignature"), expected):
            raise SignatureError("reply MsgSignature does not match")
        return self.decrypt(encrypt)

    def encrypt(self, text: str) -> str:
        """Safe-mode base64 ciphertext of random16 + length + text + appid (AES-256-CBC)."""
        key = self._require_key()
        prefix = self._random_bytes(16)
        if len(prefix) != 16:
            raise ValueError("random_bytes(16) must return 16 bytes")
        raw = text.encode()
        plain = prefix + struct.pack(">I", len(raw)) + raw + self.app_id.encode()
        pad = _BLOCK - len(plain) % _BLOCK
        encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
        sealed = encryptor.update(plain + bytes([pad]) * pad) + encryptor.finalize()
        return base64.b64encode(sealed).decode("ascii")

    def decrypt(self, ciphertext: str) -> str:
        """Text inside safe-mode ciphertext; MessageError with Tencent's code if anything is off."""
        key = self._require_key()
        try:
            data = base64.b64decode(ciphertext.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MessageError(f"ciphertext is not base64: {exc}", code=-40010) from exc
        if not data or len(data) % 16:
            raise MessageError(f"ciphertext of {len(data)} bytes is not AES blocks", code=-40007)
        decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
        plain = decryptor.update(data) + decryptor.finalize()
        pad = plain[-1]
        if not 1 <= pad <= min(_BLOCK, len(plain)) or plain[-pad:] != bytes([pad]) * pad:
            raise MessageError("bad PKCS#7 padding", code=-40007)
        content = plain[:-pad]
        if len(content) < 20:
            raise MessageError("decrypted buffer shorter than 20 bytes", code=-40008)
        (length,) = struct.unpack(">I", content[16:20])
        if 20 + length > len(content):
            raise MessageError("length field points past the buffer", code=-40008)
        if not hmac.compare_digest(content[20 + length :], self.app_id.encode()):
            raise MessageError("appid does not match", code=-40005)
        try:
            return content[20 : 20 + length].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MessageError(f"decrypted text is not UTF-8: {exc}", code=-40008) from exc

    def _require_key(self) -> bytes:
        if not self._key:
            raise MessageError("no EncodingAESKey configured", code=-40004)
        return self._key

    def _check_signature(self, given: str, timestamp: str, nonce: str) -> None:
        if not _same(given, _sign(self.token, timestamp, nonce)):
            raise SignatureError("signature does not match")
        if self._clock is not None:
            check_timestamp(timestamp, self._clock(), self.max_clock_skew)


def check_timestamp(timestamp: str, now: float, max_skew: int) -> None:
    """StaleRequest unless timestamp is a Unix time within max_skew seconds of now."""
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        raise StaleRequest(f"timestamp {timestamp[:20]!r} is not a Unix time")
    skew = int(timestamp) - int(now)
    if abs(skew) > max_skew:
        raise StaleRequest(f"stale timestamp: {skew:+d}s from our clock (allowed ±{max_skew}s)")


def _parse_tree(xml: bytes | str) -> Element:
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


def _child(root: Element, tag: str) -> str:
    return root.findtext(tag) or ""


def parse_message(xml: bytes | str) -> Message:
    """Parse a pushed message; MessageError (-40002) for anything that is not one."""
    # defusedxml is the gate (no DTD, entities or external references reach any parser); wechatpy
    # then classifies the message. Raw fields come from the gate's tree: wechatpy's typed fields
    # convert lazily (int(MsgId) may raise later) and strip the qrscene_ prefix from EventKey.
    try:
        root = _parse_tree(xml)
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
        )
    except MessageError:
        raise
    except Exception as exc:  # bad input must never escape as anything but MessageError
        raise MessageError(f"unreadable message: {type(exc).__name__}: {exc}") from exc


def _cdata(value: str) -> str:
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
        f"<xml><ToUserName>{_cdata(to_user)}</ToUserName>"
        f"<FromUserName>{_cdata(from_user)}</FromUserName><CreateTime>{int(create_time)}"
        "</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content>{_cdata(_truncate(_XML_INVALID.sub('', content)))}</Content></xml>"
    )


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
) -> str:
    """A push as WeChat's server sends it, for `bot simulate` and tests."""
    xml = (
        f"<xml><ToUserName>{_cdata(to_user)}</ToUserName>"
        f"<FromUserName>{_cdata(from_user)}</FromUserName>"
        f"<CreateTime>{int(create_time)}</CreateTime><MsgType>{_cdata(msg_type)}</MsgType>"
    )
    if msg_type == "text" or content:
        xml += f"<Content>{_cdata(content)}</Content>"
    if msg_type == "event" or event:
        xml += f"<Event>{_cdata(event)}</Event><EventKey>{_cdata(event_key)}</EventKey>"
    if msg_id is not None:
        xml += f"<MsgId>{_cdata(msg_id)}</MsgId>"
    return xml + "</xml>"
