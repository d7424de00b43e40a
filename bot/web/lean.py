"""Lean routes: a hot endpoint served beside the FastAPI app, its errors answered the same way.

``BotApp`` hands a push and a download to these before FastAPI's middleware, routing and
dependency machinery (a fifth of a request's CPU, #20). ``serve`` answers an exception with the
handler the app registered for its class (``bot.web.errors``: the refusal table, the
framework's HTTPException), as FastAPI's exception middleware would; anything else is raised on
to the server (a 500, logged with its traceback).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

Produce = Callable[[Request], Awaitable[Response]]
Handler = Callable[[Request, Exception], Any]


def handler_for(app: Starlette, exc: Exception) -> Handler | None:
    """The app's handler for this error: by status code (HTTPException), then by class."""
    handlers = app.exception_handlers
    if isinstance(exc, HTTPException) and exc.status_code in handlers:
        handler: Handler = handlers[exc.status_code]
        return handler
    for cls in type(exc).__mro__:
        if cls in handlers:
            handler = handlers[cls]
            return handler
    return None


async def serve(
    app: Starlette, scope: Scope, receive: Receive, send: Send, produce: Produce
) -> None:
    """Answer one request with ``produce``'s response, or its error with the app's handler."""
    scope["app"] = app  # handlers and pages find the services through the request's app
    request = Request(scope, receive)
    started = False

    async def tracked(message: Message) -> None:
        nonlocal started
        started = started or message["type"] == "http.response.start"
        await send(message)

    try:
        response = await produce(request)
        await response(scope, receive, tracked)
    except Exception as exc:
        handler = handler_for(app, exc)
        if started or handler is None:
            raise
        answer: Response = await handler(request, exc)
        await answer(scope, receive, send)
