"""The services a route needs, built once in ``create_app`` and reached through a dependency."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from bot.clock import Clock
from bot.config import Settings
from bot.delivery.catalog import Catalog
from bot.delivery.records import Visit
from bot.delivery.slots import DownloadSlots
from bot.delivery.throttle import BadTokenLimit
from bot.links import LinkSigner
from bot.metrics import Metrics
from bot.web.clientaddr import TrustedProxies
from bot.web.pages import Pages
from bot.wechat import Codec

if TYPE_CHECKING:
    from bot.answers import Answerer
    from bot.delivery import Delivery
    from bot.delivery.gate import Gate
    from bot.replay import ReplayGuard
    from bot.state import Store
    from bot.wechat.api.settings import ServerAPI

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
    pages: Pages
    keyword_for_file: dict[str, str]
    store: Store
    answerer: Answerer
    gate: Gate
    bad_tokens: BadTokenLimit
    slots: DownloadSlots
    delivery: Delivery
    replays: ReplayGuard
    metrics: Metrics = field(default_factory=Metrics)
    health: HealthCheck = always_ok
    proxies: TrustedProxies = field(default_factory=TrustedProxies)
    sendable: frozenset[str] = frozenset()  # rule names a follower can type
    wechat: ServerAPI | None = None  # WeChat's API (客服, media); None without an app_secret

    def keyword_to_send(self, keyword: str, file_key: str) -> str:
        """What a page asks the follower to send again: the link's keyword if it can be typed,
        else the file's first typable one ("" for none)."""
        return keyword if keyword in self.sendable else self.keyword_for_file.get(file_key, "")


def get_services(request: Request) -> Services:
    """The app's services (set by ``create_app``)."""
    services: Services = request.app.state.services
    return services


async def _services(request: Request) -> Services:
    # async: FastAPI runs a plain `def` dependency in a worker thread, a hop on every request.
    return get_services(request)


ServicesDep = Annotated[Services, Depends(_services)]


# One service each, for a route that needs only a few (async, for the reason above).
async def _settings(request: Request) -> Settings:
    return get_services(request).settings


async def _pages(request: Request) -> Pages:
    return get_services(request).pages


async def _metrics(request: Request) -> Metrics:
    return get_services(request).metrics


async def _health(request: Request) -> HealthCheck:
    return get_services(request).health


SettingsDep = Annotated[Settings, Depends(_settings)]
PagesDep = Annotated[Pages, Depends(_pages)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]
HealthDep = Annotated[HealthCheck, Depends(_health)]


def client_ip(request: Request) -> str:
    """The client's address: the socket peer, or what a ``[server] trusted_proxies`` peer says."""
    peer = request.client.host if request.client else "-"
    proxies = get_services(request).proxies
    if not proxies.networks:
        return peer
    headers = request.headers
    return proxies.client(peer, headers.getlist("x-forwarded-for"), headers.get("x-real-ip"))


def visit_of(request: Request) -> Visit:
    """Who asked, and how (header values cut to a sane length)."""
    headers = request.headers
    return Visit(
        client_ip(request),
        headers.get("user-agent", "")[:200],
        headers.get("range", "")[:100],
        request.method,
    )


def raw_path(request: Request) -> bytes:
    """The path as the request line spelled it, before percent-decoding.

    A token or a code has one spelling: routes refuse another (``/%64/<token>``, an escaped
    token character), so no log or cache, here or in front, keys on a second URI for a secret.
    """
    raw: bytes = request.scope.get("raw_path") or request.url.path.encode()
    return raw
