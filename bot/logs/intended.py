"""Responses the bot ends short on purpose: uvicorn's ERROR about them is only a DEBUG line.

uvicorn logs "ASGI callable returned without completing response." whenever an app returns
mid-body with the client still there, as if the app had failed. A download the bot cuts off
itself (the file changed, its lease lapsed, its count could not be recorded) does exactly that,
and the bot has already logged why (a WARNING naming the file and the reason). The request's
task marks itself (``cut_short``); ``bot.logs.setup`` then routes uvicorn's line for that task
at DEBUG. Any other incomplete response is still an ERROR.
"""

from __future__ import annotations

from contextvars import ContextVar

INCOMPLETE = "ASGI callable returned without completing response."
_CUT_SHORT: ContextVar[bool] = ContextVar("bot_cut_short", default=False)


def cut_short() -> None:
    """This request's response ends short on purpose (its reason is logged already)."""
    _CUT_SHORT.set(True)


def expected(message: str) -> bool:
    """True for uvicorn's "without completing" line about a response ``cut_short`` ended."""
    return message == INCOMPLETE and _CUT_SHORT.get()
