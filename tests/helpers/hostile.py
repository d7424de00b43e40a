"""Helpers for the hostile-input tests: a shared server, signed and raw requests, forged tokens."""

from __future__ import annotations

import itertools
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from loguru import logger

from bot.app import create_app
from bot.config import load_settings
from bot.links import SALT
from bot.logs.setup import InterceptHandler
from bot.wechat import Simulator, build_message_xml, parse_message, signature
from tests.conftest import (
    AES_KEY,
    APP_ID,
    DEMO_NAME,
    SECRET,
    TOKEN,
    Clock,
    start_server,
    write_config,
)

CODEC = Simulator(TOKEN, APP_ID, AES_KEY)
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


@dataclass
class Reply:
    """What came back: status (None if the server only hung up), body text, seconds taken."""

    status: int | None
    text: str
    seconds: float = 0.0


@dataclass
class Hostile:
    """A running server plus everything it logged and every secret-ish value sent to it."""

    url: str
    clock: Clock
    files: Path
    client: httpx.Client
    lines: list[str] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)
    signatures: set[str] = field(default_factory=set)
    msg_ids: Iterator[int] = field(default_factory=lambda: itertools.count(7001))

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.url.removeprefix("http://").split(":")
        return host, int(port)

    def now(self) -> str:
        return str(int(self.clock()))

    def query(self, *, timestamp: str | None = None, nonce: str | None = None) -> dict[str, str]:
        """A correctly signed callback query (remembered for the log grep); a fresh nonce."""
        ts = self.now() if timestamp is None else timestamp
        nonce = nonce or secrets.token_hex(5)  # a seen triple with another body is a replay
        sig = signature(TOKEN, ts, nonce)
        self.signatures.add(sig)
        return {"signature": sig, "timestamp": ts, "nonce": nonce}

    def aes_query(self, ciphertext: str, **kwargs: str) -> dict[str, str]:
        """A signed safe-mode query whose msg_signature covers ``ciphertext``."""
        query = self.query(**kwargs)
        msg_sig = signature(TOKEN, query["timestamp"], query["nonce"], ciphertext)
        self.signatures.add(msg_sig)
        return {**query, "encrypt_type": "aes", "msg_signature": msg_sig}

    def request(self, method: str, path: str, **kwargs: Any) -> Reply:
        start = time.perf_counter()
        response = self.client.request(method, self.url + path, **kwargs)
        return Reply(response.status_code, response.text, time.perf_counter() - start)

    def raw(self, data: bytes, *, hang_up: bool = False, wait: float = 5.0) -> Reply:
        """Send bytes as they are (then stop sending if ``hang_up``); the answer's status."""
        start = time.perf_counter()
        with socket.create_connection(self.address, timeout=wait) as sock:
            sock.sendall(data)
            if hang_up:
                sock.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := _recv(sock):
                chunks.append(chunk)
        text = b"".join(chunks).decode("utf-8", "replace")
        status = re.match(r"HTTP/1\.1 (\d{3})", text)
        return Reply(int(status.group(1)) if status else None, text, time.perf_counter() - start)

    def message_xml(self, content: str = "芝麻开门", **kwargs: Any) -> str:
        return build_message_xml(
            to_user="gh_account",
            from_user="o_hostile",
            create_time=int(self.clock()),
            content=content,
            msg_id=kwargs.pop("msg_id", str(next(self.msg_ids))),
            **kwargs,
        )

    def valid_link(self, *, encrypt: bool = False) -> str:
        """Ask for a link the way WeChat would and return its path (remembering the token)."""
        params, body = CODEC.build_request(
            self.message_xml(), timestamp=self.now(), nonce=secrets.token_hex(5), encrypt=encrypt
        )
        self.signatures.update(v for k, v in params.items() if k.endswith("signature"))
        reply = self.request("POST", "/wechat", params=params, content=body)
        assert reply.status == 200, reply.text
        text = parse_message(CODEC.read_reply(reply.text.encode())).content
        match = re.search(r"/d/([A-Za-z0-9_.\-]+)", text)
        assert match, text
        self.tokens.add(match.group(1))
        return match.group(0)

    def assert_still_serves(self) -> None:
        """A valid message still gets its link, and the link its file."""
        download = self.request("GET", self.valid_link())
        assert download.status == 200
        assert download.text == (self.files / DEMO_NAME).read_text(encoding="utf-8")

    def logged_since(self, mark: int, needle: str, *, wait: float = 0.0) -> list[str]:
        """Lines logged after ``mark`` holding ``needle`` (waiting up to ``wait`` seconds)."""
        deadline = time.monotonic() + wait
        while True:
            found = [line for line in self.lines[mark:] if needle in line]
            if found or time.monotonic() >= deadline:
                return found
            time.sleep(0.01)


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except (ConnectionResetError, TimeoutError):
        return b""


def serve_hostile(tmp: Path) -> Iterator[Hostile]:
    """A real server in ``tmp``, with uvicorn's own logs routed through bot.logs.setup and captured."""
    files = tmp / "files"
    files.mkdir()
    (files / DEMO_NAME).write_text("使用说明：演示文件\n", encoding="utf-8")
    (files / "安装包 v1.bin").write_bytes(b"\0" * 1024)
    config = write_config(
        tmp,
        wechat={"body_timeout": 1.0},
        # The 429, the quota and the log-line cap have their own tests; here every valid
        # message must get a link and every refusal its line (bursts pass 20 a second).
        limits={
            "bad_tokens_per_ip_per_minute": 0,
            "links_per_user_per_hour": 0,
            "log_lines_per_second": 0,
        },
    )
    with pytest.MonkeyPatch.context() as patch:
        for key in [k for k in os.environ if k.upper().startswith("BOT_")]:
            patch.delenv(key)
        settings = load_settings(config)
    loggers = [logging.getLogger(name) for name in UVICORN_LOGGERS]
    saved = [(log.handlers, log.propagate, log.level) for log in loggers]
    for log in loggers:  # as bot.logs.setup_logging does for `bot serve`
        log.handlers, log.propagate = [InterceptHandler()], False
        log.setLevel(logging.INFO)
    clock = Clock()
    server, thread, url = start_server(create_app(settings, clock=clock))
    state = Hostile(url, clock, files, httpx.Client(timeout=10))
    sink = logger.add(state.lines.append, level="DEBUG", format="{level} {message}", diagnose=False)
    try:
        yield state
    finally:
        state.client.close()
        server.should_exit = True
        thread.join(10)
        logger.remove(sink)
        for log, (handlers, propagate, level) in zip(loggers, saved, strict=True):
            log.handlers, log.propagate = handlers, propagate
            log.setLevel(level)


def forge(payload: Any, signed_at: float, *, key: str = SECRET, salt: str = SALT) -> str:
    """A token around any payload, signed as the server signs (or with another key or salt)."""

    class At(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(signed_at)

    return URLSafeTimedSerializer([key], salt=salt, signer=At).dumps(payload)
