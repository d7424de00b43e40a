"""The WeChat callback: POST answers messages on a lean ASGI path, GET verifies the server URL.

A push is the hot path of a campaign: ``Webhook`` answers it as a plain ASGI app, beside the
FastAPI app (``bot.app.BotApp`` sends it there before any middleware, routing or dependency),
with the same request budget, body limits, replay check, refusal table and latency metric.
"""

from __future__ import annotations

import time
from functools import partial
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from bot.web.bodies import read_body
from bot.web.deps import Services, ServicesDep
from bot.web.lean import serve

if TYPE_CHECKING:
    from starlette.applications import Starlette


def webhook_router(path: str) -> APIRouter:
    """The server-URL check (GET) at the configured ``wechat.path``."""
    router = APIRouter()

    @router.get(path, include_in_schema=False)
    async def verify(request: Request, services: ServicesDep) -> Response:
        q = request.query_params
        echostr = services.codec.verify_echo(
            signature=q.get("signature", ""),
            timestamp=q.get("timestamp", ""),
            nonce=q.get("nonce", ""),
            echostr=q.get("echostr", ""),
        )
        await services.replays.check(
            echostr.encode(),
            signature=q.get("signature", ""),
            timestamp=q.get("timestamp", ""),
            nonce=q.get("nonce", ""),
        )
        return PlainTextResponse(echostr)

    return router


def content_length(scope: Scope) -> str:
    """The request's Content-Length header ("" when it has none)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return str(value.decode("latin-1"))
    return ""


class Webhook:
    """``POST [wechat] path`` as a plain ASGI app: one budget, parsed once, one store trip.

    Errors are answered by the app's handlers (``bot.web.lean.serve``: the refusal table).
    """

    def __init__(self, app: Starlette) -> None:
        self.app = app  # whose state holds the services (a reload swaps them)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        services: Services = self.app.state.services
        try:
            await serve(self.app, scope, receive, send, partial(self.answer, services))
        finally:
            services.metrics.webhook_seconds.observe(time.perf_counter() - started)

    @staticmethod
    async def answer(services: Services, request: Request) -> Response:
        """The sealed reply to one push."""
        deadline = services.answerer.start()  # one budget: body, replay record and answer
        scope = request.scope
        q = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        limits = services.settings.wechat
        body = await read_body(
            request.receive,
            content_length(scope),
            max_bytes=limits.max_body_bytes,
            timeout=min(limits.body_timeout, deadline.left()),
        )
        signature, timestamp, nonce = (
            q.get("signature", ""),
            q.get("timestamp", ""),
            q.get("nonce", ""),
        )
        message, encrypted = services.codec.open(
            body,
            signature=signature,
            timestamp=timestamp,
            nonce=nonce,
            encrypt_type=q.get("encrypt_type"),
            msg_signature=q.get("msg_signature"),
        )
        seen = services.replays.seen(
            body,
            signature=signature,
            timestamp=timestamp,
            nonce=nonce,
            msg_signature=q.get("msg_signature") or "",
        )
        reply = await services.answerer.answer(message, deadline, seen)
        now = int(services.clock())
        xml = reply.render(to_user=message.source, from_user=message.target, create_time=now)
        sealed = services.codec.seal(xml, encrypted=encrypted, nonce=nonce, timestamp=str(now))
        return Response(sealed, media_type=reply.media_type)
