"""WeChat callback crypto: signatures, timestamps and safe-mode AES for one account (pure)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
from collections.abc import Callable

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from bot.errors import EncryptionRequired, MessageError, SignatureError, StaleRequest
from bot.wechat.messages import Message, parse_message, read_fields
from bot.wechat.replies import cdata

_BLOCK = 32  # WeChat pads to 32 bytes, not AES's 16


def signature(*parts: str) -> str:
    """WeChat's signature: sha1 hex of the sorted parts joined."""
    joined = "".join(sorted(parts)).encode("utf-8")
    return hashlib.sha1(joined).hexdigest()  # noqa: S324 - SHA-1 is what the protocol mandates


_sign = signature  # Codec methods take a `signature` argument that shadows the function


def same(given: str | None, expected: str) -> bool:
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
        self._cipher: Cipher[modes.CBC] | None = None  # with an EncodingAESKey
        if encoding_aes_key:
            try:
                self._key = base64.b64decode(encoding_aes_key + "=", validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ValueError(f"EncodingAESKey is not base64: {exc}") from exc
            if len(self._key) != 32:
                raise ValueError(
                    f"EncodingAESKey must be 43 characters, got {len(encoding_aes_key)}"
                )
            if not app_id:
                raise ValueError("app_id is required when an EncodingAESKey is set")
            # WeChat's IV is the key's first 16 bytes: one cipher serves every message.
            self._cipher = Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16]))

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
        encrypt = read_fields(body).first.get("Encrypt", "")
        if not encrypt:
            raise MessageError("encrypt_type=aes but the body has no <Encrypt>")
        # msg_signature covers the ciphertext; `signature` alone does not (a common bug).
        if not same(msg_signature, _sign(self.token, timestamp, nonce, encrypt)):
            raise SignatureError("msg_signature does not match")
        return parse_message(self.decrypt(encrypt)), True

    def seal(self, reply_xml: str, *, encrypted: bool, nonce: str, timestamp: str) -> str:
        """The reply as sent: encrypted when the request was ('success' and '' go as they are)."""
        if not encrypted or reply_xml.strip() in ("", "success"):
            return reply_xml
        encrypt = self.encrypt(reply_xml)
        sig = _sign(self.token, timestamp, nonce, encrypt)
        return (
            f"<xml><Encrypt>{cdata(encrypt)}</Encrypt><MsgSignature>{cdata(sig)}</MsgSignature>"
            f"<TimeStamp>{cdata(timestamp)}</TimeStamp><Nonce>{cdata(nonce)}</Nonce></xml>"
        )

    def encrypt(self, text: str) -> str:
        """Safe-mode base64 ciphertext of random16 + length + text + appid (AES-256-CBC)."""
        cipher = self._require_cipher()
        prefix = self._random_bytes(16)
        if len(prefix) != 16:
            raise ValueError("random_bytes(16) must return 16 bytes")
        raw = text.encode()
        plain = prefix + struct.pack(">I", len(raw)) + raw + self.app_id.encode()
        pad = _BLOCK - len(plain) % _BLOCK
        encryptor = cipher.encryptor()
        sealed = encryptor.update(plain + bytes([pad]) * pad) + encryptor.finalize()
        return base64.b64encode(sealed).decode("ascii")

    def decrypt(self, ciphertext: str) -> str:
        """Text inside safe-mode ciphertext; MessageError with Tencent's code if anything is off."""
        cipher = self._require_cipher()
        try:
            data = base64.b64decode(ciphertext.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MessageError(f"ciphertext is not base64: {exc}", code=-40010) from exc
        if not data or len(data) % 16:
            raise MessageError(f"ciphertext of {len(data)} bytes is not AES blocks", code=-40007)
        decryptor = cipher.decryptor()
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

    def _require_cipher(self) -> Cipher[modes.CBC]:
        if self._cipher is None:
            raise MessageError("no EncodingAESKey configured", code=-40004)
        return self._cipher

    def _check_signature(self, given: str, timestamp: str, nonce: str) -> None:
        if not same(given, _sign(self.token, timestamp, nonce)):
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
