"""Sign and verify download tokens (pure; the clock and the id source are parameters)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from bot.errors import FileMissing, LinkExpired, LinkInvalid

SALT = "bot.download-link.v1"
MAX_TOKEN_LENGTH = 512  # real tokens are ~80 characters; longer ones are refused unread
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Link:
    """What a token proves: which link, which file, and until when."""

    link_id: str
    file_key: str
    issued_at: datetime
    expires_at: datetime


class _ClockedSigner(TimestampSigner):
    def __init__(self, *args: Any, clock: Clock = time.time, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clock = clock

    def get_timestamp(self) -> int:
        return int(self._clock())


def file_ref(file_key: str) -> str:
    """An opaque, stable stand-in for a file name, so the URL does not show which file it is."""
    digest = hashlib.sha256(file_key.encode("utf-8")).digest()[:9]
    return base64.urlsafe_b64encode(digest).decode()


class LinkSigner:
    """Issues ``/d/<token>`` tokens; the last secret key signs, every key verifies (rotation)."""

    def __init__(
        self,
        secret_keys: list[str],
        ttl_seconds: int,
        *,
        files: Iterable[str],
        clock: Clock = time.time,
        new_id: Callable[[], str] = lambda: secrets.token_hex(8),  # never starts with "-"
    ) -> None:
        self.ttl = ttl_seconds
        self._files = {file_ref(name): name for name in files}
        self._clock = clock
        self._new_id = new_id
        self._serializer = URLSafeTimedSerializer(
            secret_keys, salt=SALT, signer=_ClockedSigner, signer_kwargs={"clock": clock}
        )

    def issue(self, file_key: str) -> tuple[str, Link]:
        """A fresh token for one file, and the link it stands for."""
        if file_ref(file_key) not in self._files:
            raise FileMissing(file_key)
        link_id = self._new_id()
        now = int(self._clock())
        token = self._serializer.dumps([link_id, file_ref(file_key)])
        return token, Link(link_id, file_key, _utc(now), _utc(now + self.ttl))

    def verify(self, token: str) -> Link:
        """The link behind a token; LinkExpired or LinkInvalid otherwise."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise LinkInvalid(f"token of {len(token)} characters (limit {MAX_TOKEN_LENGTH})")
        try:
            payload, signed = self._serializer.loads(token, max_age=self.ttl, return_timestamp=True)
        except SignatureExpired as exc:  # a subclass of BadSignature: must come first
            link_id, file_key = self._fields(self._serializer.load_payload(exc.payload or b""))
            signed_at = _as_utc(exc.date_signed) if exc.date_signed else _utc(self._clock())
            raise LinkExpired(link_id, file_key, _utc(signed_at.timestamp() + self.ttl)) from None
        except BadSignature:
            raise LinkInvalid("bad signature") from None
        link_id, file_key = self._fields(payload)
        issued = _as_utc(signed)
        return Link(link_id, file_key, issued, _utc(issued.timestamp() + self.ttl))

    def _fields(self, payload: Any) -> tuple[str, str]:
        """``[link_id, file_ref]`` → link id and file name; FileMissing if no longer served."""
        if not (
            isinstance(payload, list)
            and len(payload) == 2
            and all(isinstance(p, str) and p for p in payload)
        ):
            raise LinkInvalid("payload is not [link_id, file_ref]")
        link_id, ref = payload
        if ref not in self._files:
            raise FileMissing(ref)
        return link_id, self._files[ref]


def link_url(public_url: str, token: str) -> str:
    """The one shape of a download link: ``{public_url}/d/<token>``."""
    return f"{public_url.rstrip('/')}/d/{token}"


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(int(ts), UTC)


def _as_utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
