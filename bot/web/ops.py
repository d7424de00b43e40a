"""Operations: ``/healthz``, ``/metrics`` (when enabled) and the webhook's latency timer."""

from __future__ import annotations

import time

import anyio
from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from loguru import logger
from starlette.types import ASGIApp, Receive, Scope, Send

from bot.metrics import CONTENT_TYPE, Metrics
from bot.web.deps import ServicesDep

HEALTH_TIMEOUT = 2.0  # seconds; Docker's HEALTHCHECK gives up after 3
NO_STORE = {"Cache-Control": "no-store"}


def ops_router(*, metrics: bool) -> APIRouter:
    """``/healthz`` always; ``/metrics`` only when ``[server] metrics`` is on (404 otherwise)."""
    router = APIRouter(include_in_schema=False)

    @router.get("/healthz")
    async def healthz(services: ServicesDep) -> Response:
        try:
            with anyio.fail_after(HEALTH_TIMEOUT):
                healthy = await services.health()
            problem = "" if healthy else "the store did not answer"
        except Exception as exc:  # a failing check is an answer (503), not a crash
            problem = f"{type(exc).__name__}: {exc}"
        if problem:
            logger.error("health check failed: {}", problem)
            return JSONResponse({"status": "unavailable"}, status_code=503, headers=NO_STORE)
        return JSONResponse({"status": "ok"}, headers=NO_STORE)

    if metrics:

        @router.get("/metrics")
        async def prometheus(services: ServicesDep) -> Response:
            body = services.metrics.exposition()
            return Response(body, media_type=CONTENT_TYPE, headers=NO_STORE)

    return router


class WebhookTimer:
    """ASGI middleware feeding the webhook-latency histogram (error answers included)."""

    def __init__(self, app: ASGIApp, *, path: str, metrics: Metrics) -> None:
        self.app, self.path, self.metrics = app, path, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            self.metrics.webhook_seconds.observe(time.perf_counter() - start)
