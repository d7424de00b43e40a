"""A real ``bot serve`` never writes a secret, a signature or a whole link token to its logs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bot.wechat import Simulator, build_message_xml, parse_message, signature
from tests.conftest import AES_KEY, APP_ID, SECRET, TOKEN, free_port, write_config
from tests.test_cli import ROOT


def wait_for(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url + "/healthz", timeout=1)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("bot serve did not start")
            time.sleep(0.1)


class Follower:
    """Plays WeChat's server and a follower against a running bot, remembering what it sent."""

    def __init__(self, url: str) -> None:
        self.url, self.codec = url, Simulator(TOKEN, APP_ID, AES_KEY)
        self.sent: set[str] = set()
        self.client = httpx.Client(base_url=url, timeout=10)

    def push(self, text: str, *, encrypt: bool, **change: str) -> httpx.Response:
        now = str(int(time.time()))
        xml = build_message_xml(
            to_user="gh", from_user="o_secret_test", create_time=int(now), content=text, msg_id=now
        )
        params, body = self.codec.build_request(xml, timestamp=now, nonce="n0", encrypt=encrypt)
        params |= change
        self.sent.update(v for k, v in params.items() if k.endswith("signature"))
        return self.client.post("/wechat", params=params, content=body)

    def link(self, *, encrypt: bool) -> str:
        reply = self.push("芝麻开门", encrypt=encrypt)
        assert reply.status_code == 200, reply.text
        text = parse_message(self.codec.read_reply(reply.content)).content
        match = re.search(r"/d/([A-Za-z0-9_.\-]+)", text)
        assert match, text
        self.sent.add(match.group(1))
        return match.group(0)


@pytest.mark.parametrize(
    "json_lines", [pytest.param(False, id="text"), pytest.param(True, id="json")]
)
def test_logs_hold_no_secret(tmp_path: Path, files_dir: Path, json_lines: bool) -> None:
    port = free_port()
    config = write_config(
        tmp_path,
        server={"port": port, "public_url": f"http://127.0.0.1:{port}"},
        log={"file": "bot.log", "json": json_lines, "level": "DEBUG"},
    )
    stderr = tmp_path / "stderr.txt"
    with stderr.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", "--config", str(config)],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=err,
            stderr=err,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(url, proc)
        bot = Follower(url)
        for encrypt in (False, True):
            path = bot.link(encrypt=encrypt)
            assert bot.client.get(path).status_code == 200
            assert bot.client.head(path).status_code == 200
            assert bot.client.get(path + "/more").status_code == 404
            assert bot.client.get(path[:-4] + "AAAA").status_code == 403
        now = str(int(time.time()))
        echo = {"timestamp": now, "nonce": "e", "echostr": "hello"}
        good_echo = signature(TOKEN, now, "e")
        bot.sent.add(good_echo)
        assert bot.client.get("/wechat", params={**echo, "signature": good_echo}).text == "hello"
        assert (
            bot.client.get("/wechat", params={**echo, "signature": good_echo[::-1]}).status_code
            == 403
        )
        assert bot.push("x", encrypt=True, msg_signature="f" * 40).status_code == 403
        assert bot.push("x", encrypt=False, timestamp="1").status_code == 403
        big = bot.client.post(
            "/wechat", params={**echo, "signature": good_echo}, content=b"x" * 70_000
        )
        assert big.status_code == 413
        bot.client.close()
        log = tmp_path / "bot.log"
        deadline = time.monotonic() + 10
        while (
            "body refused 413" not in log.read_text(encoding="utf-8")
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(15)
    logs = {
        "bot.log": log.read_text(encoding="utf-8"),
        "stderr": stderr.read_text(encoding="utf-8"),
    }
    for name, text in logs.items():
        lines = text.splitlines()
        if json_lines:  # the lines as a reader sees them (JSON escapes '…')
            lines = [json.loads(line)["text"] if line.startswith("{") else line for line in lines]
        assert_redacted(name, "\n".join(lines))
        secrets = {"wechat.token": TOKEN, "encoding_aes_key": AES_KEY, "secret_keys": SECRET}
        secrets |= {f"sent {value[:8]}…": value for value in bot.sent}
        leaked = [what for what, value in secrets.items() if value in text]
        assert not leaked, f"{name} holds {leaked}"


def assert_redacted(name: str, text: str) -> None:
    """The lines a request leaves are there, with their secrets masked."""
    assert "link issued" in text and "download id=" in text, name
    assert "/wechat?signature=…&timestamp=" in text, name  # uvicorn's access log, redacted
    assert "GET /d/… HTTP/1.1" in text and "GET /d/…/more" in text, name
    assert "Traceback" not in text, name
