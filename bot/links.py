"""Sign and verify download tokens (pure; the clock and the id source are parameters).

A token carries the terms it was issued with (keyword, download limit, lifetime), signed, so a
later config edit changes new links only and verifying needs no store trip.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from itsdangerous import BadData, BadSignature, TimestampSigner, URLSafeTimedSerializer
from itsdangerous.encoding import (
    base64_decode,
    base64_encode,
    bytes_to_int,
    int_to_bytes,
    want_bytes,
)

from bot.clock import Clock
from bot.errors import FileMissing, LinkExpired, LinkInvalid

SALT = "bot.download-link.v1"
MAX_TOKEN_LENGTH = 512  # real tokens are ~110 characters; longer ones are refused unread
# payload.timestamp.signature, each unpadded URL-safe base64 (no compressed "." payloads).
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class Link:
    """What a token proves: which link, which file, until when, and on which terms.

    ``keyword`` is the rule that issued it ("" when unknown: a keyword since removed, or an old
    token); ``max_downloads`` 0 means unlimited.
    """

    link_id: str
    file_key: str
    issued_at: datetime
    expires_at: datetime
    keyword: str = ""
    max_downloads: int = 0


class _ClockedSigner(TimestampSigner):
    def __init__(self, *args: Any, clock: Clock = time.time, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clock = clock

    def get_timestamp(self) -> int:
        return int(self._clock())


class _LinkSerializer(URLSafeTimedSerializer):
    """itsdangerous' URL-safe serializer without its zlib attempt when signing.

    A token's payload (~35 bytes of JSON: a hex id and a base64 file reference) never
    compresses (zlib adds 6 bytes), so the tokens are the same; each attempt set up zlib's
    ~256 KB of deflate state, ~40 µs a link. Reading still accepts compressed payloads.
    """

    def dump_payload(self, obj: Any) -> bytes:
        return base64_encode(want_bytes(self.serializer.dumps(obj, **self.serializer_kwargs)))


class _Tokens:
    """Signs and checks tokens exactly as ``_LinkSerializer`` does, in a fraction of its time.

    itsdangerous builds a signer, derives its key and goes through four layers for every token
    (~50 µs a link, #20); the keys are derived once here, and a token is the same, byte for
    byte: ``base64(compact JSON) . base64(timestamp) . base64(HMAC-SHA1)``, the key
    ``sha1(salt + "signer" + secret)`` (itsdangerous' "django-concat"), the last key signing.
    ``loads`` takes only canonical tokens that verify; anything else (a bad signature, an old
    compressed payload) is left to itsdangerous, so every refusal is its own.
    """

    def __init__(self, secret_keys: list[str], salt: str) -> None:
        self._keys = [
            hashlib.sha1(  # noqa: S324 - itsdangerous' key derivation, not a password hash
                want_bytes(salt) + b"signer" + want_bytes(key)
            ).digest()
            for key in secret_keys
        ]

    def dumps(self, payload: Any, timestamp: int) -> str:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        signed = base64_encode(body) + b"." + base64_encode(int_to_bytes(timestamp))
        mac = hmac.new(self._keys[-1], signed, hashlib.sha1).digest()
        return (signed + b"." + base64_encode(mac)).decode("ascii")

    def loads(self, token: str) -> tuple[Any, datetime] | None:
        """The payload and signing time of a canonical token that verifies, else None."""
        if not canonical(token):
            return None
        signed, _, signature = token.encode("ascii").rpartition(b".")
        mac = base64_decode(signature)
        if not any(
            hmac.compare_digest(hmac.new(key, signed, hashlib.sha1).digest(), mac)
            for key in self._keys
        ):
            return None
        payload, _, stamp = signed.partition(b".")
        try:
            value = json.loads(base64_decode(payload))
            signed_at = datetime.fromtimestamp(bytes_to_int(base64_decode(stamp)), UTC)
        except (ValueError, OverflowError, OSError):
            return None
        return value, signed_at


def file_ref(file_key: str) -> str:
    """An opaque, stable stand-in for a file name, so the URL does not show which file it is."""
    digest = hashlib.sha256(file_key.encode("utf-8")).digest()[:9]
    return base64.urlsafe_b64encode(digest).decode()


def keyword_ref(keyword: str) -> str:
    """An opaque, stable stand-in for the keyword that issued a link ("" for none)."""
    if not keyword:
        return ""
    digest = hashlib.sha256(b"keyword\0" + keyword.encode("utf-8")).digest()[:6]
    return base64.urlsafe_b64encode(digest).decode()


def canonical(token: str) -> bool:
    """True when ``token`` is spelled exactly as it was issued.

    The HMAC covers the payload and timestamp as text, but itsdangerous decodes the signature
    leniently (non-ASCII dropped, the spare bits of its last character ignored, padding
    accepted), so other spellings of it would verify as the same link.
    """
    if not _TOKEN_SHAPE.fullmatch(token):
        return False
    signature = token.rsplit(".", 1)[1]
    try:
        return base64_encode(base64_decode(signature)).decode() == signature
    except (BadData, ValueError):
        return False


class LinkSigner:
    """Issues ``/d/<token>`` tokens; the last secret key signs, every key verifies (rotation)."""

    def __init__(
        self,
        secret_keys: list[str],
        ttl_seconds: int,
        *,
        files: Iterable[str],
        keywords: Iterable[str] = (),
        max_clock_skew: int = 0,
        legacy_limits: Mapping[str, int] | None = None,
        clock: Clock = time.time,
        new_id: Callable[[], str] = lambda: secrets.token_hex(8),  # never starts with "-"
    ) -> None:
        self.ttl = ttl_seconds
        self._files = {file_ref(name): name for name in files}
        self._keywords = {keyword_ref(k): k for k in keywords}
        self._skew = max_clock_skew  # seconds a token may be dated ahead (another instance's clock)
        self._legacy_limits = dict(legacy_limits or {})
        self._clock = clock
        self._new_id = new_id
        self._serializer = _LinkSerializer(
            secret_keys, salt=SALT, signer=_ClockedSigner, signer_kwargs={"clock": clock}
        )
        self._tokens = _Tokens(secret_keys, SALT)
        self._by_file = {name: ref for ref, name in self._files.items()}  # hashed once
        self._by_keyword = {k: ref for ref, k in self._keywords.items()}

    def issue(
        self, file_key: str, *, keyword: str = "", max_downloads: int = 0
    ) -> tuple[str, Link]:
        """A fresh token for one file on these terms (lifetime: ``ttl_seconds`` from now)."""
        ref = self._by_file.get(file_key)
        if ref is None:
            raise FileMissing(file_key)
        link_id = self._new_id()
        now = int(self._clock())
        kw_ref = self._by_keyword.get(keyword)
        if kw_ref is None:
            kw_ref = keyword_ref(keyword)
        payload = [link_id, ref, kw_ref, max_downloads, self.ttl]
        token = self._tokens.dumps(payload, now)
        link = Link(link_id, file_key, _utc(now), _utc(now + self.ttl), keyword, max_downloads)
        return token, link

    def verify(self, token: str) -> Link:
        """The link behind a token; LinkExpired or LinkInvalid otherwise."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise LinkInvalid(f"token of {len(token)} characters (limit {MAX_TOKEN_LENGTH})")
        known = self._tokens.loads(token)  # the common case, without itsdangerous' layers
        if known is not None:
            payload, signed = known
        else:
            try:
                payload, signed = self._serializer.loads(token, return_timestamp=True)
            except BadSignature:
                raise LinkInvalid("bad signature") from None
            if not canonical(token):
                raise LinkInvalid("token not spelled as issued")
        issued = _as_utc(signed)
        link_id, file_key, keyword, limit, ttl = self._fields(payload)
        now = self._clock()
        ahead = issued.timestamp() - now
        if ahead > self._skew:
            raise LinkInvalid(f"token dated {ahead:.0f}s ahead (max_clock_skew {self._skew}s)")
        expires = _utc(issued.timestamp() + ttl)
        if now - issued.timestamp() > ttl:
            raise LinkExpired(link_id, file_key, expires, keyword=keyword)
        return Link(link_id, file_key, issued, expires, keyword, limit)

    def _fields(self, payload: Any) -> tuple[str, str, str, int, int]:
        """The signed terms: link id, file name, keyword, download limit, lifetime."""
        if isinstance(payload, list) and len(payload) == 2:  # issued before terms were signed
            payload = [*payload, "", None, self.ttl]
        if not (isinstance(payload, list) and len(payload) == 5):
            raise LinkInvalid("payload is not [link_id, file_ref, keyword_ref, limit, ttl]")
        link_id, ref, kw_ref, limit, ttl = payload
        if not (
            all(isinstance(p, str) and p for p in (link_id, ref))
            and isinstance(kw_ref, str)
            and (limit is None or _count(limit))
            and _count(ttl)
            and ttl > 0
        ):
            raise LinkInvalid("payload is not [link_id, file_ref, keyword_ref, limit, ttl]")
        if ref not in self._files:  # a rule this process has not loaded (yet, or any more)
            raise FileMissing(ref, link_id)
        file_key = self._files[ref]
        if limit is None:
            limit = self._legacy_limits.get(file_key, 0)
        return link_id, file_key, self._keywords.get(kw_ref, ""), limit, ttl


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def link_url(public_url: str, token: str) -> str:
    """The one shape of a download link: ``{public_url}/d/<token>``."""
    return f"{public_url.rstrip('/')}/d/{token}"


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(int(ts), UTC)


def _as_utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
