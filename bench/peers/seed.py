"""The seed blog's bot, written from its description: FastAPI, wechatpy, itsdangerous, no state.

Configured through environment variables (set by bench/servers.py):
SEED_TOKEN, SEED_APP_ID, SEED_AES_KEY, SEED_SECRET, SEED_FILES_DIR, SEED_PUBLIC_URL, SEED_KEYWORD.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, PlainTextResponse, Response
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from wechatpy import create_reply, parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidSignatureException
from wechatpy.utils import check_signature

SALT = "download"
TTL = 600


def serializer(secret: str) -> URLSafeTimedSerializer:
    """The seed's link signer (the bench mints download tokens with it too)."""
    return URLSafeTimedSerializer(secret, salt=SALT)


def create_seed_app() -> FastAPI:
    """The seed bot: keyword → signed link, /d/<token> → FileResponse."""
    env = os.environ
    token, keyword = env["SEED_TOKEN"], env["SEED_KEYWORD"]
    files_dir, public_url = Path(env["SEED_FILES_DIR"]), env["SEED_PUBLIC_URL"]
    file_name = env.get("SEED_FILE", "1KB.bin")
    crypto = WeChatCrypto(token, env["SEED_AES_KEY"], env["SEED_APP_ID"])
    links = serializer(env["SEED_SECRET"])
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/wechat")
    async def verify(signature: str, timestamp: str, nonce: str, echostr: str) -> Response:
        try:
            check_signature(token, signature, timestamp, nonce)
        except InvalidSignatureException:
            raise HTTPException(403) from None
        return PlainTextResponse(echostr)

    @app.post("/wechat")
    async def wechat(
        request: Request,
        signature: str,
        timestamp: str,
        nonce: str,
        encrypt_type: str = "raw",
        msg_signature: str = "",
    ) -> Response:
        try:
            check_signature(token, signature, timestamp, nonce)
        except InvalidSignatureException:
            raise HTTPException(403) from None
        body = await request.body()
        if encrypt_type == "aes":
            body = crypto.decrypt_message(body, msg_signature, timestamp, nonce)
        msg = parse_message(body)
        if msg.type == "text" and msg.content.strip() == keyword:
            link = f"{public_url}/d/{links.dumps(file_name)}"
            reply = create_reply(f"下载链接（10 分钟内有效）：{link}", msg)
        else:
            reply = create_reply("回复关键词获取下载链接", msg)
        xml = reply.render()
        if encrypt_type == "aes":
            xml = crypto.encrypt_message(xml, nonce, timestamp)
        return Response(xml, media_type="application/xml")

    @app.get("/d/{link_token}")
    async def download(link_token: str) -> FileResponse:
        try:
            name = links.loads(link_token, max_age=TTL)
        except SignatureExpired:
            raise HTTPException(410) from None
        except BadSignature:
            raise HTTPException(403) from None
        return FileResponse(files_dir / Path(name).name, filename=name)

    return app
