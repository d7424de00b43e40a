"""How a checked download leaves the bot: one ``Delivery``, chosen once at start-up from config.

A mode is one module here with a ``build(settings, slots)`` function, and one line of ``MODES``
(``bot.delivery.modes``), which also holds its settings section and load-time check. A mode
whose files are not in ``[files] dir`` (object storage) gives its Delivery the ``KeepsFiles``
methods: the catalogue and the start-up check then ask it. ``respond`` gets what to send (an
``Offer``) and the gate's side of the download (a ``Transfer``), and returns the response. A
mode that hands the bytes to someone else (nginx's X-Accel-Redirect, a 302 to a presigned
object-storage URL) reports the span handed over as sent, at once; a mode that streams reports
progress as the client takes it.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from fastapi.responses import Response

from bot.delivery.catalog import Catalog, FileInfo
from bot.delivery.modes import MODES
from bot.delivery.ranges import Span
from bot.delivery.slots import DownloadSlots
from bot.state.base import Outcome

if TYPE_CHECKING:
    from bot.config import Settings


@dataclass(frozen=True, slots=True)
class Offer:
    """One admitted download: the link, the file, the span to send, the method, the headers."""

    link_id: str
    info: FileInfo
    span: Span
    method: str
    headers: Mapping[str, str]
    lease_id: str = ""  # the gate's lease on the span ("" for a link without a use limit)
    seconds_left: float = math.inf  # the link's lifetime left: nothing handed out may outlive it


class Transfer(Protocol):
    """The gate's side of one response while it runs."""

    async def progress(self, sent: int, *, final: bool = False, count: bool = True) -> bool:
        """``sent`` bytes of the span have reached the client; False means stop sending.

        ``final``: the whole span is about to have gone out; False when its count could not be
        recorded (a store fault, a lapsed lease): the last bytes must then never be sent.
        ``count`` (with ``final``): the span counts now, ending the lease (one trip, #20); False
        when the finish counts what the client acknowledged (#19: the span is only noted now).
        """

    async def finished(self, status: int, sent: int, outcome: Outcome) -> None:
        """The response ended after ``sent`` bytes, as ``outcome`` says (the first call counts)."""


class Delivery(Protocol):
    """One way of sending files."""

    counts_slots: bool  # True: the bot's download slots apply (it sends the bytes itself)
    # True: the client gets a URL to the whole file whatever its Range (a presigned URL), so the
    # offer's span is the whole file and the Range is not parsed (never a 400 or 416).
    whole_file: bool
    # True: another server sends the span once it accepts it (nginx): the claim notes the span
    # as handed over, and that server's report of the bytes it sent ends the lease (no second
    # store write on the answer).
    hands_over: bool
    # Spans of at most this many bytes the bot sends in one piece, once noted whole: the claim
    # notes them at once, so the send needs no store trip of its own (0: never).
    one_piece: int

    def respond(self, offer: Offer, transfer: Transfer) -> Response:
        """The response that sends ``offer`` (it reports to ``transfer`` as it goes)."""

    def etag(self, info: FileInfo) -> str:
        """The ETag clients see for the file (an If-Range is checked against it)."""


@runtime_checkable
class KeepsFiles(Protocol):
    """A Delivery whose files are not in ``[files] dir``: it opens and checks them itself."""

    def catalog(self, keys: Iterable[str]) -> Catalog:
        """The catalogue of these keys, opened where the files are."""

    def check(self, files: Sequence[str]) -> list[tuple[int, str]]:
        """(size, where) of each file, in order; ConfigError naming the key and the fix."""


def build_delivery(settings: Settings, slots: DownloadSlots) -> Delivery:
    """The Delivery for ``[files] delivery``."""
    module = importlib.import_module(MODES[settings.files.delivery].module)
    delivery: Delivery = module.build(settings, slots)
    return delivery


def build_catalog(settings: Settings, delivery: Delivery, keys: Iterable[str]) -> Catalog:
    """Where the delivery finds the files: its own catalogue, or ``[files] dir``."""
    if isinstance(delivery, KeepsFiles):
        return delivery.catalog(keys)
    return Catalog(settings.files.dir, keys)


def check_files(settings: Settings) -> dict[str, tuple[int, str]]:
    """File → (size, where) for every file the rules name, checked where the delivery finds
    them (at start-up and by ``bot check``); ConfigError names a missing one."""
    files = list(dict.fromkeys(name for rule in settings.keywords for name in rule.file_list))
    delivery = build_delivery(settings, DownloadSlots(0, 0))
    if isinstance(delivery, KeepsFiles):
        return dict(zip(files, delivery.check(files), strict=True))
    return {file: ((settings.files.dir / file).stat().st_size, file) for file in files}
