"""The state store's interface and the records it keeps (both backends implement ``Store``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, TypeVar

from bot.errors import StoreUnavailable
from bot.state.guesses import GuessLimits, Tried

T = TypeVar("T")
QUOTA_WINDOW = 3600.0  # links_per_user_per_hour counts links issued in the last hour
REVOKED_KEEP = 8 * 86400.0  # longer than the longest link lifetime (ttl_seconds <= 7 days)
SENT_KEEP = 86400.0  # a message's 客服 send is remembered a day (WeChat retries for ~15 s)


@dataclass(frozen=True, slots=True)
class Remembered:
    """The dedup record: what the first attempt at a message answered (``done`` False: pending).

    ``text`` is the reply value's ``to_json``; None means ``success``.
    """

    done: bool
    text: str | None = None


@dataclass(frozen=True, slots=True)
class Fresh:
    """``claim_and_record``: this attempt is the first; its link is recorded, its answer kept."""


@dataclass(frozen=True, slots=True)
class Known:
    """``claim_and_record``: another attempt owns the message; its record (maybe pending)."""

    record: Remembered


@dataclass(frozen=True, slots=True)
class OverQuota:
    """``claim_and_record``: the link is over the hourly quota; the message is claimed (pending)."""

    retry_at: float  # when the follower may ask again (epoch seconds)


Claimed = Fresh | Known | OverQuota


@dataclass(frozen=True, slots=True)
class Replayed:
    """``answer_push``: the push's signed triple came before with another body; nothing written."""

    digest: str  # the body digest remembered for the triple


@dataclass(frozen=True, slots=True)
class CodeTaken:
    """``answer_push``: a drafted pick-up code is live already; the answer is not written."""

    code: str


PushClaimed = Fresh | Known | OverQuota | Replayed | CodeTaken


@dataclass(frozen=True, slots=True)
class PushSeen:
    """An accepted callback's signed triple (``key``) and its body's ``digest``, kept ``ttl`` s."""

    key: str
    digest: str
    ttl: float


@dataclass(frozen=True, slots=True)
class PickupCode:
    """A pick-up code naming one issued link's token until ``expires_at`` (epoch seconds)."""

    code: str
    token: str
    link_id: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class LinkRecord:
    """An issued link, as the audit trail keeps it (times are epoch seconds)."""

    link_id: str
    openid: str
    keyword: str
    file: str
    issued_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class FirstAnswer:
    """What the first delivery of a push writes, all in one ``answer_push`` (one store trip).

    ``per_hour`` applies to the first of ``links`` (a rule's other files come with it).
    """

    key: str  # the message's dedup key
    ttl: float  # how long the answer is remembered
    text: str | None  # the reply value's to_json (None: success)
    links: tuple[LinkRecord, ...] = ()
    per_hour: int = 0
    codes: tuple[PickupCode, ...] = ()
    seen: PushSeen | None = None  # the replay record (None: not a signed push)


class Outcome(StrEnum):
    """How a request for ``/d/<token>`` ended: served in some way, or refused and why."""

    SERVED = "served"  # the response went out to its last byte (or was handed to nginx)
    ABORTED = "aborted"  # the client went away before the last byte
    CHANGED = "changed"  # the file changed under the download: cut off, never counted
    STALLED = "stalled"  # no progress for [limits] send_timeout: cut off, slot freed
    LAPSED = "lapsed"  # its lease lapsed (the store lost it): cut off
    EXPIRED = "expired"
    BAD_TOKEN = "bad_token"  # noqa: S105 - an outcome, not a secret
    MISSING = "missing"
    EXHAUSTED = "exhausted"
    REVOKED = "revoked"
    UNAVAILABLE = "unavailable"
    BUSY = "busy"
    HELD = "held"  # a use-limited link whose downloads left are held by leases in flight: 503
    BAD_RANGE = "bad_range"
    THROTTLED = "throttled"  # over bad_tokens_per_ip_per_minute: no row, counted over the cap


@dataclass(frozen=True, slots=True)
class Attempt:
    """One request for ``/d/<token>``: its ``outcome`` (an ``Outcome`` value) and what it sent."""

    at: float
    outcome: str
    link_id: str = ""
    file: str = ""
    ip: str = ""
    user_agent: str = ""
    range: str = ""
    status: int = 0
    bytes_sent: int = 0
    complete: bool = False
    counted: bool = False
    method: str = "GET"
    count: int = 1  # more than 1: a summary of refusals over the audit cap (bot.delivery.auditcap)
    uid: str = ""  # set: the row's own id, so writing it again (a retry) keeps one row


@dataclass(frozen=True, slots=True)
class Usage:
    """A link's downloads: revoked, leases running now, whole copies sent, bytes sent."""

    revoked: bool = False
    active: int = 0
    completed: int = 0
    sent: int = 0


class Grant(StrEnum):
    """The answer to a claim for one counted download."""

    GRANTED = "granted"
    EXHAUSTED = "exhausted"
    REVOKED = "revoked"
    HELD = "held"  # only leases in flight stand in the way: ask again once they end or lapse


class Answers(Protocol):
    """Answers to WeChat messages (dedup of retries) and the hourly link quota."""

    async def claim_message(self, key: str, ttl: float) -> Remembered | None:
        """None when this attempt is the first (and now owns the answer); else what is known."""

    async def save_reply(self, key: str, text: str | None, ttl: float) -> None:
        """Remember the answer to a claimed message for ``ttl`` seconds."""

    async def read_reply(self, key: str) -> Remembered | None:
        """The remembered answer (maybe still pending), or None if none is remembered."""

    async def record_link(self, link: LinkRecord, per_hour: int) -> float | None:
        """Record an issued link unless ``openid`` had ``per_hour`` in the last hour (0 = no limit).

        Returns None when recorded, else the time at which the follower may ask again.
        """

    async def claim_and_record(
        self, key: str, ttl: float, text: str | None, link: LinkRecord | None, per_hour: int
    ) -> Claimed:
        """``claim_message``, ``record_link`` and ``save_reply`` as one atomic step (one trip).

        ``Known(record)`` when another attempt owns the message: nothing is written. Else
        ``OverQuota(retry_at)`` when ``link`` is over the quota: the message is then claimed
        (pending) as by ``claim_message``. Else ``Fresh()``: ``link`` (if any) is recorded and
        ``text`` remembered as the answer for ``ttl`` seconds.
        """

    async def answer_push(self, first: FirstAnswer) -> PushClaimed:
        """``remember_push``, ``claim_and_record`` and ``put_code`` as one atomic step (one trip).

        ``Replayed(digest)`` when ``first.seen``'s triple is remembered with another body:
        nothing is written. Else the triple is remembered, then as ``claim_and_record``:
        ``Known(record)``; or ``CodeTaken(code)`` when one of ``first.codes`` is live already
        (nothing more is written: draw others); or ``OverQuota(retry_at)`` (claimed, pending);
        or ``Fresh()``: every link recorded, every code kept, the answer remembered.
        """


@dataclass(frozen=True, slots=True)
class Claim:
    """A request for a lease on bytes ``[start, end)`` of a ``size``-byte file (see coverage)."""

    link_id: str
    lease_id: str
    start: int
    end: int
    size: int
    limit: int
    lease_seconds: float
    keep: float  # seconds the link's counts are kept (its lifetime left, and some)
    handed: bool = False  # another server (nginx) sends the span, reporting only when it ends
    # The bot sends the span in one piece: it is noted whole now (as a final ``renew`` would
    # note it), so its send needs no store trip of its own (#20).
    noted: bool = False


class Counts(Protocol):
    """Use limits counted by bytes delivered (``bot.state.coverage``), leases and revocations."""

    async def usage(self, link_id: str) -> Usage:
        """A link's revocation, live leases and whole copies sent."""

    async def claim(self, claim: Claim) -> Grant:
        """Atomically take a lease if the link's bounds allow it."""

    async def renew(self, link_id: str, lease_id: str, sent: int, lease_seconds: float) -> bool:
        """Extend a lease, noting ``sent`` bytes so far; False when it has lapsed."""

    async def release(self, link_id: str, lease_id: str, sent: int) -> bool:
        """End a lease after ``sent`` bytes; True when that completed one more whole copy."""

    async def revoke(self, link_ids: list[str]) -> int:
        """Revoke these links (known or not); returns how many were not revoked before."""


class Audit(Protocol):
    """Issued links and every request for them."""

    async def link(self, link_id: str) -> LinkRecord | None:
        """One issued link, if recorded."""

    async def links_of(self, *, openid: str | None = None, file: str | None = None) -> list[str]:
        """Ids of recorded links issued to a follower or for a file."""

    async def record_attempt(self, attempt: Attempt) -> None:
        """Append one download attempt to the audit trail."""

    async def record_attempts(self, attempts: Sequence[Attempt]) -> None:
        """Append several attempts in one store call (all or none)."""

    async def links_since(self, since: float) -> list[LinkRecord]:
        """Links issued at or after ``since``."""

    async def attempts_since(self, since: float, link_id: str | None = None) -> list[Attempt]:
        """Attempts at or after ``since``, oldest first, optionally for one link."""

    async def prune(self, before: float) -> int:
        """Delete audit rows and spent state older than ``before``; returns rows removed."""


class Pushes(Protocol):
    """Accepted callbacks' signed triples (``bot.replay``), shared by every worker and instance."""

    async def remember_push(self, key: str, digest: str, ttl: float) -> str | None:
        """Remember ``digest`` under ``key`` for ``ttl`` s unless known; returns the known one."""


class PickupCodes(Protocol):
    """Pick-up codes (``bot.codes``): each names one issued link's token until the link expires."""

    async def try_code(self, code: str, guesser: str, limits: GuessLimits) -> Tried:
        """Look ``code`` up for ``guesser`` ("" is never found), as one atomic step.

        Refused, with nothing looked up or counted, when the guesser has ``per_guesser`` wrong
        codes in the window, or has one while everyone's wrong codes in the window reached
        ``server``. A found code counts nothing; a wrong one counts once for the guesser and
        once for the server, in every worker and instance sharing the store.
        """

    async def put_code(self, code: str, token: str, link_id: str, expires_at: float) -> bool:
        """Keep ``code`` → ``token`` until ``expires_at``; False if ``code`` is live already."""

    async def resolve_code(self, code: str) -> tuple[str, str] | None:
        """The live code's (token, link id), or None when unknown or expired."""

    async def drop_code(self, code: str) -> None:
        """Forget a code whose link was never sent (a retry's draft, a quota refusal)."""


@dataclass(frozen=True, slots=True)
class SendQuota:
    """WeChat's 客服 quota after one kind of trigger: ``limit`` sends in ``window`` seconds."""

    name: str
    limit: int
    window: float


class SendClaim(StrEnum):
    """The answer to a claim to send a message's reply by 客服 (``bot.wechat.api.late``)."""

    GRANTED = "granted"  # this caller sends it: counted, and the message now answers success
    SENT = "sent"  # another attempt (worker, instance) sent it or is sending it
    OVER_QUOTA = "over_quota"  # the follower's quota for this trigger is used up: not sent


class LateSends(Protocol):
    """Replies sent by 客服 after their push was answered: once per message, within quotas."""

    async def claim_send(self, key: str, ttl: float, openid: str, quota: SendQuota) -> SendClaim:
        """Claim the one 客服 send of message ``key``'s reply, counted in ``openid``'s ``quota``.

        ``GRANTED`` also makes the message's remembered answer ``success`` for ``ttl`` seconds,
        so a retry of it does not show the reply again. Nothing is written otherwise.
        """


class MediaIds(Protocol):
    """WeChat's temporary media ids for the bot's images (``bot.wechat.api.media``)."""

    async def media_id(self, name: str) -> str | None:
        """The kept media_id of image ``name``, unless it expired (by the store's clock)."""

    async def keep_media_id(self, name: str, media_id: str, expires_at: float) -> None:
        """Keep ``media_id`` for image ``name`` until ``expires_at`` (epoch seconds)."""


class OwnerPassword(Protocol):
    """The owner's page password (``bot.owner.password``): one slow hash, for every instance."""

    async def owner_password(self) -> str | None:
        """The stored hash, or None while no password is set (the page is off)."""

    async def set_owner_password(self, hashed: str | None) -> None:
        """Store a new hash (None: forget it, which turns the page off)."""

    async def wrong_login(self, address: str, at: float, keep: float) -> None:
        """Note a wrong password from ``address`` at ``at``, and one against the server (``*``),
        each kept ``keep`` seconds: every worker and instance throttles on the same notes."""

    async def wrong_logins(self, address: str, nth: int, nth_server: int) -> tuple[float, float]:
        """When the ``nth`` newest wrong password from ``address`` came, and the ``nth_server``
        newest on the server (0.0 where there are fewer)."""


class Store(
    Answers, Counts, Audit, Pushes, PickupCodes, OwnerPassword, LateSends, MediaIds, Protocol
):
    """The eight concerns in one backend; failures raise StoreUnavailable.

    A push costs one call, ``answer_push``; the finer-grained dedup calls serve retries, quota
    refusals and other workers. A new backend implements every method (``tests/test_seams.py``
    checks each registered one) and is one line in ``bot.state.STORES``.
    """

    async def open(self) -> None:
        """Connect and create what is missing; failures are logged, not raised."""

    async def close(self) -> None:
        """Release connections and threads."""

    async def ping(self) -> bool:
        """True when the store answers (for /healthz); raises StoreUnavailable otherwise."""


STORE_TIMEOUT = 1.0  # the longest any one store call may take (a deadline may cut it shorter)


async def bounded(call: Awaitable[T], seconds: float) -> T:
    """Await a store call for at most ``seconds``; a timeout becomes StoreUnavailable."""
    try:
        async with asyncio.timeout(max(seconds, 0.001)):
            return await call
    except TimeoutError:
        raise StoreUnavailable(f"no answer within {seconds:.1f}s") from None
