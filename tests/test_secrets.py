"""A real ``bot serve`` never writes a secret, a signature or a whole link token to its logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.wechat import signature
from tests.conftest import AES_KEY, SECRET, TOKEN, free_port, write_config
from tests.helpers.follower import Follower
from tests.helpers.paths import ROOT
from tests.helpers.processes import wait_started

pytestmark = pytest.mark.slow


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
        wait_started(url, proc)
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
