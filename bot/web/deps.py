"""The services a route needs, built once in ``create_app`` and reached through a dependency."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from bot.catalog import Catalog
from bot.config import Settings
from bot.links import Clock, LinkSigner
from bot.metrics import Metrics
from bot.replies import Responder
from bot.slots import DownloadSlots
from bot.throttle import BadTokenLimit
from bot.web.pages import Pages
from bot.wechat import Codec

if TYPE_CHECKING:
    from bot.answers import Answerer
    from bot.delivery.s3 import S3Delivery
    from bot.state import Store
    from bot.web.gate import Gate

# True when the bot can serve (its store answers); raising or a timeout counts as False.
HealthCheck = Callable[[], Awaitable[bool]]


async def always_ok() -> bool:
    """The health check when nothing outside the process needs to answer."""
    return True


@dataclass(frozen=True, slots=True)
class Services:
    """Everything built from Settings at start-up."""

    settings: Settings
    clock: Clock
    codec: Codec
    signer: LinkSigner
    catalog: Catalog
    responder: Responder
    pages: Pages
    keyword_for_file: dict[str, str]
    store: Store
    answerer: Answerer
    gate: Gate
    bad_tokens: BadTokenLimit
    slots: DownloadSlots
    metrics: Metrics = field(default_factory=Metrics)
    health: HealthCheck = always_ok
    s3: S3Delivery | None = None  # [files] delivery = "s3": the bucket sends the bytes


def get_services(request: Request) -> Services:
    """The app's services (set by ``create_app``)."""
    services: Services = request.app.state.services
    return services


async def _services(request: Request) -> Services:
    # async: FastAPI runs a plain `def` dependency in a worker thread, a hop on every request.
    return get_services(request)


ServicesDep = Annotated[Services, Depends(_services)]


def client_ip(request: Request) -> str:
    """The peer address (uvicorn applies --forwarded-allow-ips for proxies)."""
    return request.client.host if request.client else "-"
