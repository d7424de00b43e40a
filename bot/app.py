"""``create_app(settings)``: the one place the web app is assembled."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from loguru import logger
from starlette.types import Receive, Scope, Send

from bot import __version__
from bot.answers import REPLY_TTL, Answerer
from bot.clock import Clock
from bot.codes import codes_of
from bot.config import Settings, config_path, load_settings
from bot.config.networks import parse_networks
from bot.delivery import build_delivery
from bot.delivery.auditcap import RefusalCap
from bot.delivery.auditwriter import AuditWriter
from bot.delivery.gate import Gate
from bot.delivery.slots import DownloadSlots
from bot.delivery.throttle import BadTokenLimit
from bot.errors import BotError
from bot.logs.setup import setup_logging
from bot.metrics import Metrics
from bot.reload import WorkerStart, listen_for_reload, rule_parts
from bot.replay import ReplayGuard
from bot.state import GuessLimits, Store, bounded, store_from_url
from bot.web import adminlogin
from bot.web.admin import router as admin_router
from bot.web.clientaddr import TrustedProxies
from bot.web.deps import Services
from bot.web.downloads import accel_request, accel_step, download_request, download_token
from bot.web.downloads import router as downloads_router
from bot.web.errors import install_error_handlers
from bot.web.favicon import router as favicon_router
from bot.web.home import router as home_router
from bot.web.lean import serve
from bot.web.ops import ops_router
from bot.web.pages import Pages
from bot.web.pickup import PickupDesk
from bot.web.pickup import router as pickup_router
from bot.web.webhook import Webhook, webhook_router
from bot.wechat import Codec
from bot.wechat.api.late import LateReplies
from bot.wechat.api.media import Pictures
from bot.wechat.api.settings import server_api

PRUNE_EVERY = 3600.0


def build_services(
    settings: Settings,
    *,
    clock: Clock = time.time,
    mono: Clock = time.monotonic,
    store: Store | None = None,
) -> Services:
    """Everything derived from settings, prepared once (the store is opened by the lifespan)."""
    store = store or store_from_url(settings.state.url, clock=clock)
    metrics = Metrics()
    slots = DownloadSlots(
        settings.limits.max_concurrent_downloads, settings.limits.max_concurrent_per_link
    )
    delivery = build_delivery(settings, slots)
    parts = rule_parts(settings, clock, delivery)
    wechat = server_api(settings.wechat, settings.state.url, wall=clock, monotonic=mono)
    pictures = late = None
    if wechat is not None:  # 客服 and image replies: WeChat's API with the shared token
        pictures = Pictures(wechat.api, store, wall=clock)
        late = LateReplies(wechat.api, store, pictures, reply_ttl=REPLY_TTL)
    replays = ReplayGuard(
        store, max_clock_skew=settings.wechat.max_clock_skew, clock=clock, mono=mono
    )
    return Services(
        settings=settings,
        clock=clock,
        codec=Codec(
            settings.wechat.token,
            settings.wechat.app_id,
            settings.wechat.encoding_aes_key,
            clock=clock,
            max_clock_skew=settings.wechat.max_clock_skew,
            require_encryption=settings.wechat.require_encryption,
        ),
        signer=parts.signer,
        catalog=parts.catalog,
        pages=Pages(),
        keyword_for_file=parts.keyword_for_file,
        store=store,
        answerer=Answerer(
            parts.router,
            store,
            per_hour=settings.limits.links_per_user_per_hour,
            clock=clock,
            mono=mono,
            metrics=metrics,
            codes=codes_of(settings.links.pickup_codes, store),
            late=late,
            pictures=pictures,
            replays=replays,
        ),
        slots=slots,
        delivery=delivery,
        gate=Gate(
            store,
            clock,
            metrics=metrics,
            lease_seconds=settings.links.claim_lease_seconds,
            cap=RefusalCap(
                settings.limits.audit_rows_per_ip_per_minute,
                clock=clock,
                mono=mono,
                rows_per_minute=settings.limits.audit_rows_per_minute,
                lines_per_second=settings.limits.log_lines_per_second,
            ),
            audit=AuditWriter(store, clock=clock, metrics=metrics, mono=mono),
        ),
        replays=replays,
        bad_tokens=BadTokenLimit(settings.limits.bad_tokens_per_ip_per_minute, clock=clock),
        metrics=metrics,
        health=store.ping,
        proxies=TrustedProxies(parse_networks(settings.server.trusted_proxies)),
        sendable=parts.sendable,
        wechat=wechat,
    )


async def prune(services: Services) -> None:
    """Delete audit rows older than ``[state] keep_days``; failures are logged."""
    before = services.clock() - services.settings.state.keep_days * 86400
    try:
        removed = await bounded(services.store.prune(before), 30)
    except BotError as exc:
        logger.error("pruning the state store failed: {}", exc)
        return
    if removed:
        logger.info("pruned {} old state rows", removed)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the store, prune now and hourly, close the store."""
    services: Services = app.state.services
    await services.store.open()

    async def prune_periodically() -> None:
        while True:
            await prune(services)
            await asyncio.sleep(PRUNE_EVERY)

    pruner = asyncio.create_task(prune_periodically())
    listen_for_reload(app, app.state.config)
    try:
        yield
    finally:
        pruner.cancel()
        if services.answerer.late is not None:
            await services.answerer.late.drain()  # late replies still on their way
        await services.gate.drain()
        if services.wechat is not None:
            await services.wechat.aclose()
        await services.store.close()


class BotApp(FastAPI):
    """The FastAPI app for every page; a push (``POST [wechat] path``), a download
    (``GET``/``HEAD /d/<token>``) and nginx's word on one (``GET /_accel/<step>``) go straight
    to their lean endpoints beside it, past the framework's middleware, routing and
    dependencies (``bot.web.lean``)."""

    def __init__(self, *, webhook_path: str, **options: Any) -> None:
        super().__init__(**options)
        self.webhook_path = webhook_path
        self.webhook = Webhook(self)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method, path = scope["method"], scope["path"]
            if method == "POST" and path == self.webhook_path:
                await self.webhook(scope, receive, send)
                return
            token = download_token(method, path)
            if token:
                await serve(self, scope, receive, send, partial(download_request, token))
                return
            step = accel_step(method, path)
            if step:
                await serve(self, scope, receive, send, partial(accel_request, step))
                return
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings,
    *,
    clock: Clock = time.time,
    mono: Clock = time.monotonic,
    store: Store | None = None,
    config: Path | None = None,
) -> FastAPI:
    """The bot's ASGI app for these settings (``store`` defaults to ``[state] url``).

    ``clock`` and ``mono`` are the wall and monotonic clocks (tests inject both).

    With ``config`` (the file the settings came from), SIGHUP reloads its rules.
    """
    app = BotApp(
        webhook_path=settings.wechat.path,
        title="wechat-link-bot",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
        redirect_slashes=False,  # /d/<token>/ is not the link: no second URI for one link
    )
    services = app.state.services = build_services(settings, clock=clock, mono=mono, store=store)
    app.state.config = config
    app.state.pickup = PickupDesk(
        codes_of(settings.links.pickup_codes, services.store),
        GuessLimits(
            settings.limits.wrong_codes_per_ip_per_minute, settings.limits.wrong_codes_per_minute
        ),
    )
    install_error_handlers(app)
    app.include_router(webhook_router(settings.wechat.path))
    app.include_router(downloads_router)
    app.include_router(pickup_router)
    app.include_router(home_router)
    app.include_router(ops_router(metrics=settings.server.metrics))
    app.include_router(favicon_router)
    adminlogin.install(app, settings, clock, admin_router)  # /admin: the owner's pages
    return app


def settle_memory() -> None:
    """Before serving: keep start-up objects out of the garbage collector's way (gc.freeze)."""
    # Full collections then skip the ~80k objects FastAPI, pydantic and friends leave behind:
    # measured 53 ms → 4 ms for the longest pause under webhook load.
    gc.collect()
    gc.freeze()


def app_from_environment() -> FastAPI:
    """Factory for ``uvicorn --factory``: settings from ``$BOT_CONFIG``."""
    return _started(load_settings(config_path()), config_path())


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerApp:
    """The app factory of ``bot serve --workers N``: each worker builds its app from what the
    supervisor hands it (``bot.reload.WorkerStart``)."""

    start: WorkerStart

    def __call__(self) -> FastAPI:
        return _started(self.start.settings(), self.start.path)


def _started(settings: Settings, config: Path) -> FastAPI:
    setup_logging(settings.log)
    app = create_app(settings, config=config)
    settle_memory()
    return app
