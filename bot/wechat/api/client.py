"""One async client for WeChat's server API: the token, errcodes and retries in one place."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from loguru import logger
from pydantic import SecretStr

from bot.wechat.api.errors import (
    BUSY,
    NoMenu,
    TokenRejected,
    WeChatUnreachable,
    error_for,
    mask,
)
from bot.wechat.api.menu import Menu, to_wechat_json
from bot.wechat.api.qr import qrcode_request
from bot.wechat.api.token import TokenCache, TokenSource

DEFAULT_BASE_URL = "https://api.weixin.qq.com"
BUSY_TRIES = 3  # -1 (system busy): this many tries in all...
BUSY_BACKOFF = 0.5  # ...waiting 0.5 s, then 1 s between them
TIMEOUT = 10.0
Answer = dict[str, Any]


class _MaskQuery(logging.Filter):
    """httpx logs each request's URL, whose query holds the access token: mask it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = mask(record.getMessage()), None
        return True


def _mask_http_logs() -> None:
    for name in ("httpx", "httpcore"):
        log = logging.getLogger(name)
        if not any(isinstance(f, _MaskQuery) for f in log.filters):
            log.addFilter(_MaskQuery())


@dataclass(frozen=True)
class QRCode:
    """A parameter QR code: its ticket, lifetime (None: permanent) and the URL it encodes."""

    ticket: str
    expire_seconds: int | None
    url: str


class WeChatAPI:
    """WeChat's server API for one account; every call goes through ``call``."""

    def __init__(
        self,
        app_id: str,
        app_secret: SecretStr,
        cache: TokenCache,
        *,
        base_url: str = DEFAULT_BASE_URL,
        transport: httpx.AsyncBaseTransport | None = None,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        busy_tries: int = BUSY_TRIES,
        timeout: float = TIMEOUT,
    ) -> None:
        self.app_id, self._secret = app_id, app_secret
        self._sleep, self._busy_tries = sleep, busy_tries
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/", transport=transport, timeout=timeout
        )
        self.tokens = TokenSource(self._fetch_token, cache, wall=wall, monotonic=monotonic)
        _mask_http_logs()

    def __repr__(self) -> str:
        return f"WeChatAPI(app_id={self.app_id!r}, base_url={str(self._http.base_url)!r})"

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> WeChatAPI:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def call(
        self, method: str, api: str, *, body: Answer | None = None, **kwargs: Any
    ) -> Answer:
        """Call ``api`` with the shared token; a refused token is replaced once, then retried."""
        token = await self.tokens.token()
        try:
            return await self._send(method, api, token, body=body, **kwargs)
        except TokenRejected as exc:
            logger.warning("wechat api {}: token refused ({}); refreshing once", api, exc.errcode)
            token = await self.tokens.replace(token)
        return await self._send(method, api, token, body=body, **kwargs)

    async def _fetch_token(self, force: bool) -> tuple[str, int]:
        body = {
            "grant_type": "client_credential",
            "appid": self.app_id,
            "secret": self._secret.get_secret_value(),
            "force_refresh": force,
        }
        answer = await self._send("POST", "cgi-bin/stable_token", None, body=body)
        try:
            return str(answer["access_token"]), int(answer["expires_in"])
        except (KeyError, TypeError, ValueError):
            raise WeChatUnreachable("cgi-bin/stable_token", "an answer without a token") from None

    async def _send(
        self,
        method: str,
        api: str,
        token: str | None,
        *,
        body: Answer | None = None,
        params: dict[str, str] | None = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
    ) -> Answer:
        query = {**(params or {}), **({"access_token": token} if token else {})}
        # WeChat shows \u escapes literally in some places (客服消息): send UTF-8 as it is.
        content = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        headers = {} if body is None else {"Content-Type": "application/json; charset=utf-8"}
        for attempt in range(1, self._busy_tries + 1):
            try:
                response = await self._http.request(
                    method, api, params=query, content=content, files=files, headers=headers
                )
                answer = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise WeChatUnreachable(api, f"{type(exc).__name__}: {exc}") from None
            if not isinstance(answer, dict):
                raise WeChatUnreachable(api, "an answer that is not a JSON object")
            code = int(answer.get("errcode") or 0)
            if code == 0:
                return answer
            if code == BUSY and attempt < self._busy_tries:
                delay = BUSY_BACKOFF * 2 ** (attempt - 1)
                logger.warning(
                    "wechat api {}: busy (-1), try {} again in {:g}s", api, attempt, delay
                )
                await self._sleep(delay)
                continue
            error = error_for(api, code, str(answer.get("errmsg", "")))
            log = logger.info if isinstance(error, NoMenu) else logger.warning  # 46003: a fact
            log("{}", error)
            raise error
        raise AssertionError("unreachable")  # pragma: no cover

    # The endpoints, one thin wrapper each.

    async def create_menu(self, menu: Menu) -> None:
        """``menu/create``: replace the account's menu with ``menu``."""
        await self.call("POST", "cgi-bin/menu/create", body=to_wechat_json(menu))

    async def get_menu(self) -> Answer | None:
        """``menu/get``: the live menu as WeChat sends it (``{"menu": …}``), None when none."""
        try:
            return await self.call("GET", "cgi-bin/menu/get")
        except NoMenu:
            return None

    async def get_selfmenu_info(self) -> Answer:
        """``get_current_selfmenu_info``: the menu however it was made (admin page or API)."""
        return await self.call("GET", "cgi-bin/get_current_selfmenu_info")

    async def delete_menu(self) -> None:
        """``menu/delete``: remove the menu (and every conditional one)."""
        await self.call("GET", "cgi-bin/menu/delete")

    async def create_qrcode(self, scene: str, *, expire_seconds: int | None) -> QRCode:
        """``qrcode/create``: a temporary code (``expire_seconds``) or a permanent one (None)."""
        answer = await self.call(
            "POST", "cgi-bin/qrcode/create", body=qrcode_request(scene, expire_seconds)
        )
        expires = answer.get("expire_seconds")
        return QRCode(
            str(answer["ticket"]), None if expires is None else int(expires), answer["url"]
        )

    async def get_autoreply_info(self) -> Answer:
        """``get_current_autoreply_info``: the admin page's auto-replies."""
        return await self.call("GET", "cgi-bin/get_current_autoreply_info")

    async def send_custom(self, openid: str, message: dict[str, Any]) -> None:
        """``message/custom/send``: one 客服消息 (``ReplyValue.custom``: its msgtype and payload;
        InvalidMedia when WeChat lost an image's media)."""
        body = {"touser": openid, **message}
        await self.call("POST", "cgi-bin/message/custom/send", body=body)

    async def send_text(self, openid: str, content: str) -> None:
        """``message/custom/send``: a text 客服消息 (may hold ``<a href>``)."""
        await self.send_custom(openid, {"msgtype": "text", "text": {"content": content}})

    async def send_news(self, openid: str, articles: list[dict[str, str]]) -> None:
        """``message/custom/send``: a news 客服消息 (title, description, url, picurl)."""
        await self.send_custom(openid, {"msgtype": "news", "news": {"articles": articles}})

    async def upload_image(self, filename: str, data: bytes, content_type: str) -> str:
        """``media/upload?type=image``: temporary media (3 days); its ``media_id``."""
        answer = await self.call(
            "POST",
            "cgi-bin/media/upload",
            params={"type": "image"},
            files={"media": (filename, data, content_type)},
        )
        return str(answer["media_id"])
