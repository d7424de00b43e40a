"""The WeChat callback: GET verifies the server URL, POST answers messages (a thin adapter)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from bot.web.bodies import read_body
from bot.web.deps import ServicesDep


def webhook_router(path: str) -> APIRouter:
    """Routes for the configured ``wechat.path``."""
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

    @router.post(path, include_in_schema=False)
    async def receive(request: Request, services: ServicesDep) -> Response:
        deadline = services.answerer.start()  # one budget: body, replay check and answer
        q = request.query_params
        limits = services.settings.wechat
        body = await read_body(
            request,
            max_bytes=limits.max_body_bytes,
            timeout=min(limits.body_timeout, deadline.left()),
        )
        message, encrypted = services.codec.open(
            body,
            signature=q.get("signature", ""),
            timestamp=q.get("timestamp", ""),
            nonce=q.get("nonce", ""),
            encrypt_type=q.get("encrypt_type"),
            msg_signature=q.get("msg_signature"),
        )
        await services.replays.check(
            body,
            signature=q.get("signature", ""),
            timestamp=q.get("timestamp", ""),
            nonce=q.get("nonce", ""),
            msg_signature=q.get("msg_signature") or "",
            deadline=deadline,
        )
        reply = await services.answerer.answer(message, deadline)
        now = int(services.clock())
        xml = reply.render(to_user=message.source, from_user=message.target, create_time=now)
        sealed = services.codec.seal(
            xml, encrypted=encrypted, nonce=q.get("nonce", ""), timestamp=str(now)
        )
        return Response(sealed, media_type=reply.media_type)

    return router
