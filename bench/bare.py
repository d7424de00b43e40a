"""The framework's ceiling: a FastAPI app whose webhook answers ``success`` and nothing else."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse


def create_bare_app() -> FastAPI:
    """POST /wechat → ``success``, no checks, no logging."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/wechat")
    async def wechat() -> PlainTextResponse:
        return PlainTextResponse("success")

    return app
