"""Operations: ``/healthz`` and ``/metrics`` (when enabled)."""

from __future__ import annotations

import anyio
from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from loguru import logger

from bot.metrics import CONTENT_TYPE
from bot.web.deps import HealthDep, MetricsDep

HEALTH_TIMEOUT = 2.0  # seconds; Docker's HEALTHCHECK gives up after 3
NO_STORE = {"Cache-Control": "no-store"}


def ops_router(*, metrics: bool) -> APIRouter:
    """``/healthz`` always; ``/metrics`` only when ``[server] metrics`` is on (404 otherwise)."""
    router = APIRouter(include_in_schema=False)

    @router.get("/healthz")
    async def healthz(health: HealthDep) -> Response:
        try:
            with anyio.fail_after(HEALTH_TIMEOUT):
                healthy = await health()
            problem = "" if healthy else "the store did not answer"
        except Exception as exc:  # a failing check is an answer (503), not a crash
            problem = f"{type(exc).__name__}: {exc}"
        if problem:
            logger.error("health check failed: {}", problem)
            return JSONResponse({"status": "unavailable"}, status_code=503, headers=NO_STORE)
        return JSONResponse({"status": "ok"}, headers=NO_STORE)

    if metrics:

        @router.get("/metrics")
        async def prometheus(metrics: MetricsDep) -> Response:
            body = metrics.exposition()
            return Response(body, media_type=CONTENT_TYPE, headers=NO_STORE)

    return router
