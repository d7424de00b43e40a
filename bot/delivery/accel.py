"""X-Accel: the bot checks the link and hands the file to nginx, which sends the bytes.

nginx honours the client's Range itself; the span the bot parsed from the same header is what
counts as sent, at hand-over (nginx's access log has the real bytes). For a multi-range request
the bot counts the coalesced span, which is never less than what nginx sends.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi.responses import Response
from starlette.types import Receive, Scope, Send

from bot.config import Settings
from bot.delivery import Offer, Transfer
from bot.delivery.slots import DownloadSlots
from bot.state.base import Outcome

LINK_HEADER = "X-Link-Id"  # nginx's per-link limit_conn keys on it (docker/nginx.conf)


class AccelResponse(Response):
    """An empty answer telling nginx to send the file; reports the span as sent when it goes."""

    def __init__(self, offer: Offer, transfer: Transfer, headers: dict[str, str]) -> None:
        super().__init__(status_code=200, headers=headers)  # nginx answers 200 or 206 itself
        self.offer, self.transfer = offer, transfer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        span = self.offer.span  # counted at hand-over, before nginx sends a byte
        sent = 0 if self.offer.method == "HEAD" else span.length
        await self.transfer.finished(206 if span.partial else 200, sent, Outcome.SERVED)
        await super().__call__(scope, receive, send)


class AccelDelivery:
    """``[files] delivery = "x-accel"``: nginx sends the file from its internal location."""

    counts_slots = False  # nginx's limit_conn counts (see docker/nginx.conf)
    whole_file = False  # nginx honours the Range the bot counted

    def __init__(self, prefix: str, rate: int) -> None:
        self._prefix, self._rate = prefix, rate

    def respond(self, offer: Offer, transfer: Transfer) -> Response:
        """The X-Accel-Redirect answer."""
        headers = {
            **offer.headers,
            # nginx unescapes this URI: names with spaces, '?', '%' or Chinese stay intact.
            "X-Accel-Redirect": self._prefix + quote(offer.info.key, safe="/"),
            LINK_HEADER: offer.link_id,
        }
        if self._rate:
            headers["X-Accel-Limit-Rate"] = str(self._rate)
        return AccelResponse(offer, transfer, headers)


def build(settings: Settings, slots: DownloadSlots) -> AccelDelivery:
    """The x-accel mode, from ``[files]`` and ``[limits]``."""
    return AccelDelivery(settings.files.x_accel_prefix, settings.limits.rate_bytes_per_second)
