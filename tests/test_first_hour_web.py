"""Issue #21: the first hour over HTTP: curl's saved name, the webhook's reason, stats names."""

from __future__ import annotations

import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from bot.config import Settings, load_settings
from bot.links import file_ref
from bot.wechat import Simulator, build_message_xml
from tests.conftest import (
    AES_KEY,
    APP_ID,
    BIG_NAME,
    DEMO_NAME,
    TOKEN,
    RunningServer,
    push,
    write_config,
)
from tests.helpers.processes import bot
from tests.helpers.webhook import link_path, reply_text, send

pytestmark = pytest.mark.slow  # runs the real `bot` command beside a server

ROOT = Path(__file__).resolve().parent.parent


def test_curl_saves_a_chinese_name_in_pinyin(
    server: RunningServer, files_dir: Path, tmp_path: Path
) -> None:
    """Item 5: `curl -OJ` (which reads only the ASCII filename) saves ShiYongShuoMing.txt."""
    saved = tmp_path / "saved"
    saved.mkdir()
    for keyword, name, expected in (
        ("芝麻开门", DEMO_NAME, "ShiYongShuoMing.txt"),
        ("big", BIG_NAME, "AnZhuangBao v1.bin"),
    ):
        url = server.url + link_path(reply_text(send(server, content=keyword)))
        subprocess.run(["curl", "-sSf", "-OJ", url], cwd=saved, check=True, timeout=30)
        assert (saved / expected).read_bytes() == (files_dir / name).read_bytes()


def test_readme_says_curl_needs_L_in_s3_mode() -> None:
    """Item 5: in s3 mode the bot answers with a redirect: the README's curl line has -L."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "curl -L -OJ" in readme


def test_a_refused_push_says_why(server: RunningServer) -> None:
    """Item 1: a refused push's plain answer carries the reason the server logged (no secret)."""
    other = Simulator("anothertoken456", APP_ID, AES_KEY)
    now = str(int(server.clock()))
    xml = build_message_xml(to_user="gh", from_user="o_1", create_time=int(now), content="hi")
    params, body = other.build_request(xml, timestamp=now, nonce="n1", encrypt=False)
    answer = httpx.post(server.url + "/wechat", params=params, content=body, timeout=10)
    assert answer.status_code == 403
    assert answer.text == "forbidden: signature does not match (-40001)"
    stale = push(server.url, timestamp=server.clock() - 3600, msg_id="2")
    assert stale.status_code == 403 and stale.text.startswith("forbidden: stale timestamp")
    for text in (answer.text, stale.text):
        assert "anothertoken456" not in text and TOKEN not in text and AES_KEY not in text


def test_stats_name_a_file_the_server_had_not_loaded_yet(
    tmp_path: Path, files_dir: Path, serve: Callable[[Settings], RunningServer]
) -> None:
    """Item 9: a link from `bot link` for a rule the server has not reloaded: its refusal is
    listed under the file's name, never its opaque reference."""
    state = {"url": "sqlite:///state/bot.db"}
    server = serve(load_settings(write_config(tmp_path, state=state)))
    rules = [{"match": "芝麻开门", "file": DEMO_NAME}, {"match": "新", "file": "新文件.txt"}]
    (files_dir / "新文件.txt").write_text("new", encoding="utf-8")
    config = write_config(tmp_path, keywords=rules, state=state)  # saved, not yet reloaded
    made = bot("link", "新", "--config", str(config))
    assert made.returncode == 0, made.stderr
    url = made.stdout.strip().replace("http://127.0.0.1:8000", server.url)
    assert httpx.get(url, timeout=10).status_code == 404
    database = sqlite3.connect(tmp_path / "state" / "bot.db")
    deadline = time.monotonic() + 10
    while not database.execute("SELECT count(*) FROM attempts").fetchone()[0]:
        assert time.monotonic() < deadline, "the refusal was never recorded"
        time.sleep(0.05)
    database.close()
    stats = bot("stats", "--config", str(config))
    assert stats.returncode == 0, stats.stderr
    assert file_ref("新文件.txt") not in stats.stdout, stats.stdout
    rows = [line.split() for line in stats.stdout.splitlines()]
    assert [row[:2] for row in rows if row[0] == "新文件.txt"] == [["新文件.txt", "1"]], rows
