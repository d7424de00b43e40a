"""Tencent's published crypto sample, and forging safe-mode payloads byte by byte."""

from __future__ import annotations

import base64
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from bot.wechat import Codec, Message

# Tencent's official crypto sample.
TOKEN = "pamtest"

AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"

APP_ID = "wxb11529c136998cb6"

TIMESTAMP = "1409304348"

NONCE = "xxxxxx"

PREFIX = b"aaaabbbbccccdddd"

VECTOR_PLAIN = "我是中文abcd123"

VECTOR_CIPHER = (
    "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
)

VECTOR_MSG_SIGNATURE = "82c962d39941aa48552f90ef55aa323dc620cc10"


def raw_cipher(plain: bytes) -> str:
    """Encrypt bytes exactly as given (no padding added), to forge malformed payloads."""
    key = base64.b64decode(AES_KEY + "=")
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


def payload(xml: bytes, app_id: bytes = APP_ID.encode(), *, length: int | None = None) -> bytes:
    """Unpadded safe-mode plaintext: prefix, length, xml, appid."""
    size = len(xml) if length is None else length
    return PREFIX + struct.pack(">I", size) + xml + app_id


def pad(data: bytes) -> bytes:
    n = 32 - len(data) % 32
    return data + bytes([n]) * n


def open_push(c: Codec, params: dict[str, str], body: bytes) -> tuple[Message, bool]:
    return c.open(
        body,
        signature=params["signature"],
        timestamp=params["timestamp"],
        nonce=params["nonce"],
        encrypt_type=params.get("encrypt_type"),
        msg_signature=params.get("msg_signature"),
    )
