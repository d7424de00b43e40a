"""X-Accel: the bot checks the link and hands the file to nginx, which sends the bytes.

nginx honours the client's Range itself; the span the bot parsed from the same header is what
counts as sent (nginx's access log has the real bytes). For a multi-range request the bot counts
the coalesced span, which is never less than what nginx sends. The bot checks If-Range against
nginx's own ETag (``validators.nginx_etag``), so both agree on whether a Range holds.

A use-limited span is counted by what nginx reports it sent: the claim's lease notes the
span as handed over (no second store write on the answer, #20), and the answer carries it,
signed, in ``LEASE_HEADER``. docker/nginx.conf then calls back once per use-limited download
(never for a link without a limit): ``/_accel/finished`` (its ``post_action``, once the
transfer ended, whole or broken) ends the lease counting ``$body_bytes_sent``, so a broken
download stays restartable and resumable;
``/_accel/refused`` (its ``error_page``) ends it counting nothing and answers with the bot's
own busy or missing page. Bytes nginx wrote into socket buffers count as sent (nginx cannot
subtract them as direct delivery does: the README bounds it).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import quote, unquote

from fastapi.responses import Response
from starlette.types import Receive, Scope, Send

from bot.config import Settings
from bot.delivery import Offer, Transfer
from bot.delivery.catalog import FileInfo
from bot.delivery.slots import DownloadSlots
from bot.delivery.validators import nginx_etag
from bot.state.base import Outcome

LINK_HEADER = "X-Link-Id"  # nginx's per-link limit_conn keys on it (docker/nginx.conf)
LEASE_HEADER = "X-Accel-Lease"  # the lease nginx hands back to /_accel/*; never to clients
SALT = b"bot.accel.lease"


@dataclass(frozen=True, slots=True)
class HandedOver:
    """A use-limited span handed to nginx, as it comes back in ``LEASE_HEADER``."""

    link_id: str
    lease_id: str
    sent: int
    status: int  # what nginx answers when it accepts: 206 for a Range the bot honoured, or 200
    file: str

    def sign(self, key: bytes) -> str:
        """The header value: the fields and their HMAC (nginx passes it back unchanged)."""
        fields = (self.link_id, self.lease_id, self.sent, self.status, quote(self.file, safe=""))
        body = ".".join(map(str, fields))
        return f"{body}.{_mac(key, body)}"

    @classmethod
    def verify(cls, value: str, key: bytes) -> HandedOver | None:
        """The span named by a header value, or None when it is not one the bot signed."""
        body, _, mac = value.rpartition(".")
        if not body or not hmac.compare_digest(mac, _mac(key, body)):
            return None
        link_id, lease_id, sent, status, file = body.split(".", 4)
        return cls(link_id, lease_id, int(sent), int(status), unquote(file))


def _mac(key: bytes, body: str) -> str:
    return hmac.new(key, SALT + body.encode(), hashlib.sha256).hexdigest()[:32]


class AccelResponse(Response):
    """An empty answer telling nginx to send the file; reports the span as sent when it goes."""

    def __init__(self, offer: Offer, transfer: Transfer, headers: dict[str, str]) -> None:
        super().__init__(status_code=200, headers=headers)  # nginx answers 200 or 206 itself
        self.offer, self.transfer = offer, transfer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        span = self.offer.span
        # With a lease, the claim noted the span whole (it counts if nginx never calls back) and
        # nginx's callback ends it, counting the span or nothing: no store write here (#20).
        if LEASE_HEADER.lower().encode() not in dict(self.raw_headers):
            # a HEAD or a link without a use limit: recorded at hand-over
            sent = 0 if self.offer.method == "HEAD" else span.length
            await self.transfer.finished(206 if span.partial else 200, sent, Outcome.SERVED)
        await super().__call__(scope, receive, send)


class AccelDelivery:
    """``[files] delivery = "x-accel"``: nginx sends the file from its internal location."""

    counts_slots = False  # nginx's limit_conn counts (see docker/nginx.conf)
    whole_file = False  # nginx honours the Range the bot counted
    hands_over = True  # the claim notes the span; nginx's post_action callback ends it
    one_piece = 0  # nginx sends it

    def __init__(self, prefix: str, rate: int, key: bytes = b"") -> None:
        self._prefix, self._rate, self.key = prefix, rate, key

    def etag(self, info: FileInfo) -> str:
        """nginx's ETag, the one clients see."""
        return nginx_etag(info)

    def respond(self, offer: Offer, transfer: Transfer) -> Response:
        """The X-Accel-Redirect answer."""
        headers = {
            **{k: v for k, v in offer.headers.items() if k.lower() != "content-disposition"},
            # nginx adds it to the file it sends, never to a refusal (docker/nginx.conf).
            "X-Accel-Disposition": offer.headers.get("Content-Disposition", ""),
            # nginx unescapes this URI: names with spaces, '?', '%' or Chinese stay intact.
            "X-Accel-Redirect": self._prefix + quote(offer.info.key, safe="/"),
            LINK_HEADER: offer.link_id,
        }
        if self._rate:
            headers["X-Accel-Limit-Rate"] = str(self._rate)
        if offer.lease_id and offer.method != "HEAD" and offer.span.length:
            span, status = offer.span, 206 if offer.span.partial else 200
            handed = HandedOver(offer.link_id, offer.lease_id, span.length, status, offer.info.key)
            headers[LEASE_HEADER] = handed.sign(self.key)
        return AccelResponse(offer, transfer, headers)


def build(settings: Settings, slots: DownloadSlots) -> AccelDelivery:
    """The x-accel mode, from ``[files]``, ``[limits]`` and ``[links]`` (the signing key)."""
    return AccelDelivery(
        settings.files.x_accel_prefix,
        settings.limits.rate_bytes_per_second,
        (settings.links.secret_keys or [""])[0].encode(),
    )
