"""``create_app(settings)``: the one place the web app is assembled."""

from __future__ import annotations

import gc
import time

from fastapi import FastAPI

from bot import __version__
from bot.catalog import Catalog
from bot.config import Settings, load_settings
from bot.links import Clock, LinkSigner
from bot.logs import setup_logging
from bot.replies import Responder
from bot.routing import Router
from bot.slots import DownloadSlots
from bot.web.deps import Services
from bot.web.downloads import router as downloads_router
from bot.web.errors import install_error_handlers
from bot.web.pages import Pages
from bot.web.webhook import webhook_router
from bot.wechat import Codec


def build_services(settings: Settings, *, clock: Clock = time.time) -> Services:
    """Everything derived from settings, prepared once."""
    keyword_for_file: dict[str, str] = {}
    for keyword in settings.keywords:
        keyword_for_file.setdefault(keyword.file, keyword.match)
    signer = LinkSigner(
        settings.links.secret_keys, settings.links.ttl_seconds, files=keyword_for_file, clock=clock
    )
    router = Router(settings.keywords, settings.replies)
    return Services(
        settings=settings,
        clock=clock,
        codec=Codec(
            settings.wechat.token, settings.wechat.app_id, settings.wechat.encoding_aes_key
        ),
        signer=signer,
        catalog=Catalog(settings.files.dir, keyword_for_file),
        responder=Responder(router, signer, settings.server.public_url),
        pages=Pages(),
        keyword_for_file=keyword_for_file,
        slots=DownloadSlots(
            settings.limits.max_concurrent_downloads, settings.limits.max_concurrent_per_link
        ),
    )


def create_app(settings: Settings, *, clock: Clock = time.time) -> FastAPI:
    """The bot's ASGI app for these settings."""
    app = FastAPI(
        title="wechat-link-bot",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.services = build_services(settings, clock=clock)
    install_error_handlers(app)
    app.include_router(webhook_router(settings.wechat.path))
    app.include_router(downloads_router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def settle_memory() -> None:
    """Before serving: keep start-up objects out of the garbage collector's way (gc.freeze)."""
    # Full collections then skip the ~80k objects FastAPI, pydantic and friends leave behind:
    # measured 53 ms → 4 ms for the longest pause under webhook load.
    gc.collect()
    gc.freeze()


def app_from_environment() -> FastAPI:
    """Factory for ``uvicorn --factory`` and multi-worker serving: settings from ``$BOT_CONFIG``."""
    settings = load_settings()
    setup_logging(settings.log)
    app = create_app(settings)
    settle_memory()
    return app
