"""Owner sessions: a signed cookie value, its CSRF token (pure), and the wrong-password throttle.

The cookie names a random session id and the password's fingerprint, signed with ``[links]
secret_keys`` under a salt of its own (a download token can never pass for a session, nor the
reverse) and dated by the injected clock; it is good for ``SESSION_SECONDS``. A new password
changes the fingerprint, which ends every session signed before it.
"""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadData, Signer, TimestampSigner, URLSafeTimedSerializer

from bot.clock import Clock
from bot.state.base import OwnerPassword

SESSION_SECONDS = 8 * 3600
SESSION_SALT = "bot.owner.session.v1"
CSRF_SALT = "bot.owner.csrf.v1"
MAX_COOKIE = 512  # longer cookie values are not read


class _ClockedSigner(TimestampSigner):
    def __init__(self, *args: Any, clock: Clock = time.time, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clock = clock

    def get_timestamp(self) -> int:
        return int(self._clock())


@dataclass(frozen=True, slots=True)
class Session:
    """A logged-in owner: the session id (what the CSRF token is bound to)."""

    sid: str


class Sessions:
    """Issues and reads session cookie values, and the CSRF token of each session."""

    def __init__(
        self, secret_keys: list[str], *, clock: Clock = time.time, max_age: int = SESSION_SECONDS
    ) -> None:
        self.max_age = max_age
        self._serializer = URLSafeTimedSerializer(
            secret_keys, salt=SESSION_SALT, signer=_ClockedSigner, signer_kwargs={"clock": clock}
        )
        self._csrf = Signer(secret_keys, salt=CSRF_SALT)

    def issue(self, password_fingerprint: str) -> str:
        """A new session's cookie value, for the password whose fingerprint is given."""
        return self._serializer.dumps(
            {"sid": secrets.token_urlsafe(16), "pw": password_fingerprint}
        )

    def read(self, value: str | None, password_fingerprint: str) -> Session | None:
        """The session of a cookie value, or None: missing, forged, expired, or an old password."""
        if not value or len(value) > MAX_COOKIE:
            return None
        try:
            data = self._serializer.loads(value, max_age=self.max_age)
        except BadData:
            return None
        if not isinstance(data, dict) or data.get("pw") != password_fingerprint:
            return None
        sid = data.get("sid")
        return Session(sid) if isinstance(sid, str) and sid else None

    def csrf(self, session: Session) -> str:
        """The token every form that changes something carries, bound to this session."""
        return self._csrf.get_signature(session.sid).decode("ascii")

    def csrf_ok(self, session: Session, token: str) -> bool:
        """True when ``token`` is this session's (any of the keys; constant-time compare)."""
        return bool(token) and self._csrf.verify_signature(session.sid, token)


class LoginThrottle:
    """Wrong passwords per address and server-wide, each over a sliding hour, noted in the store:
    every worker and instance counts the same ones (a limit per process let ``--workers N`` try N
    times as many)."""

    def __init__(
        self,
        store: OwnerPassword,
        per_address: int,
        server_wide: int,
        *,
        clock: Clock,
        window: float = 3600.0,
    ) -> None:
        self._store, self._clock, self._window = store, clock, window
        self._per_address, self._server_wide = per_address, server_wide

    async def retry_after(self, ip: str) -> int:
        """Whole seconds until ``ip`` may try a password again (0: it may now): the
        limit-th newest wrong password, from ``ip`` or on the server, must leave the window."""
        marks = await self._store.wrong_logins(ip, self._per_address, self._server_wide)
        now = self._clock()
        return math.ceil(max([0.0, *(mark + self._window - now for mark in marks if mark)]))

    async def wrong(self, ip: str) -> None:
        """Count one wrong password from ``ip`` (against it and against the server)."""
        await self._store.wrong_login(ip, self._clock(), self._window)
