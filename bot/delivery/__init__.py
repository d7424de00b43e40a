"""How a checked download leaves the bot: one ``Delivery``, chosen once at start-up from config.

A mode is one module here with a ``build(settings, slots)`` function, and one value of
``[files] delivery`` in ``MODES``. ``respond`` gets what to send (an ``Offer``) and the gate's
side of the download (a ``Transfer``), and returns the response. A mode that hands the bytes to
someone else (nginx's X-Accel-Redirect, a 302 to a presigned object-storage URL) reports the
span handed over as sent, at once; a mode that streams reports progress as the client takes it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from fastapi.responses import Response

from bot.catalog import FileInfo
from bot.config import Settings
from bot.delivery.ranges import Span
from bot.slots import DownloadSlots
from bot.state.base import Outcome

MODES = {"direct": "bot.delivery.disk", "x-accel": "bot.delivery.accel"}


@dataclass(frozen=True, slots=True)
class Offer:
    """One admitted download: the link, the file, the span to send, the method, the headers."""

    link_id: str
    info: FileInfo
    span: Span
    method: str
    headers: Mapping[str, str]


class Transfer(Protocol):
    """The gate's side of one response while it runs."""

    async def progress(self, sent: int) -> bool:
        """``sent`` bytes of the span have reached the client; False means stop sending."""

    async def finished(self, status: int, sent: int, outcome: Outcome) -> None:
        """The response ended after ``sent`` bytes, as ``outcome`` says (the first call counts)."""


class Delivery(Protocol):
    """One way of sending files."""

    counts_slots: bool  # True: the bot's download slots apply (it sends the bytes itself)

    def respond(self, offer: Offer, transfer: Transfer) -> Response:
        """The response that sends ``offer`` (it reports to ``transfer`` as it goes)."""


def build_delivery(settings: Settings, slots: DownloadSlots) -> Delivery:
    """The Delivery for ``[files] delivery``."""
    module = importlib.import_module(MODES[settings.files.delivery])
    delivery: Delivery = module.build(settings, slots)
    return delivery
