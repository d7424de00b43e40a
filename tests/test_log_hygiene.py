"""Issue #10 seen 4, 5, 6 and 9: log lines that cannot be forged or lost, and say things plainly."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from bot.config import Settings, load_settings
from bot.logs.safe import escape_controls
from bot.wechat import build_message_xml
from tests.conftest import WECHAT, LogCapture, RunningServer, free_port, write_config
from tests.helpers.botproc import BotProcess
from tests.helpers.webhook import send

pytestmark = pytest.mark.slow


def push_to(url: str, user: str, msg_id: str, content: str = "芝麻开门") -> httpx.Response:
    """A signed plaintext push, now, from ``user``."""
    now = int(time.time())
    xml = build_message_xml(
        to_user="gh", from_user=user, create_time=now, content=content, msg_id=msg_id
    )
    params, body = WECHAT.build_request(
        xml, timestamp=str(now), nonce=secrets.token_hex(5), encrypt=False
    )
    return httpx.post(url + "/wechat", params=params, content=body, timeout=20)


def test_seen4_newline_in_from_user_name_forges_no_line(tmp_path: Path, files_dir: Path) -> None:
    """Issue #10 seen 4: a newline in FromUserName forged a "link issued" line in the log."""
    config = write_config(tmp_path, log={"level": "INFO", "file": "bot.log"})
    bot = BotProcess(config, free_port()).wait_ready()
    forged = "2026-01-01 00:00:00.000 | INFO    | link issued id=forged keyword='x' openid=o_admin"
    try:
        assert push_to(bot.url, f"o_evil\n{forged}", "9001").status_code == 200
        deadline = time.monotonic() + 10
        while "openid=o_evil" not in (tmp_path / "bot.log").read_text() and (
            time.monotonic() < deadline
        ):
            time.sleep(0.05)
    finally:
        bot.stop()
    for text in (bot.text(), (tmp_path / "bot.log").read_text(encoding="utf-8")):
        lines = text.splitlines()
        assert not [line for line in lines if line.startswith("2026-01-01")], text[-2000:]
        issued = [line for line in lines if "openid=o_evil" in line]
        assert len(issued) == 1 and "o_evil\\n2026-01-01" in issued[0]


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        pytest.param("plain 文字\ttab", "plain 文字\ttab", id="untouched"),
        pytest.param("a\nb\rc", "a\\nb\\rc", id="newlines"),
        pytest.param("\x1b[31mred\x00", "\\x1b[31mred\\x00", id="escape-and-nul"),
        pytest.param("x\u2028y\x85z", "x\\u2028y\\x85z", id="unicode-line-breaks"),
    ],
)
def test_escape_controls_table(text: str, escaped: str) -> None:
    assert escape_controls(text) == escaped


@pytest.mark.parametrize(
    ("level", "expected"),
    [pytest.param("INFO", 0, id="info"), pytest.param("DEBUG", 20, id="debug")],
)
def test_seen5_access_lines_only_at_debug_with_workers(
    tmp_path: Path, files_dir: Path, level: str, expected: int
) -> None:
    """Issue #10 seen 5: with --workers N at INFO, uvicorn's access lines appeared (125k in 2 min)."""
    config = write_config(tmp_path, log={"level": level})
    bot = BotProcess(config, free_port(), workers=2).wait_ready()
    before = bot.text().count('"GET /healthz HTTP/1.1" 200')
    try:
        for _ in range(20):
            assert httpx.get(bot.url + "/healthz").status_code == 200
    finally:
        bot.stop()
    assert bot.text().count('"GET /healthz HTTP/1.1" 200') - before == expected


def test_seen6_workers_lose_no_line_and_rotate_safely(tmp_path: Path, files_dir: Path) -> None:
    """Issue #10 seen 6: with --workers N and a log file, "Logging error" and a lost line."""
    config = write_config(
        tmp_path,
        log={"level": "INFO", "file": "logs/bot.log", "file_max_bytes": 65536},
        limits={"links_per_user_per_hour": 0},
    )
    bot = BotProcess(config, free_port(), workers=2).wait_ready()
    users = [f"o_user_{i:04d}" for i in range(400)]
    try:
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda u: push_to(bot.url, u, u[-4:] + "01").status_code, users))
    finally:
        bot.stop()
    assert codes == [200] * len(users)
    files = sorted((tmp_path / "logs").glob("bot.log*"))
    assert len(files) >= 2, files  # rotated at 64 KiB
    text = "".join(f.read_text(encoding="utf-8") for f in files)
    issued = re.findall(r"link issued .* openid=(o_user_\d{4}) ", text)
    assert sorted(issued) == users  # every line, once
    assert "Logging error" not in bot.text() and "Logging error" not in text
    assert "Started parent process" in text  # the supervisor's own lines reach the file too
    assert all(f.stat().st_size <= 65536 + 4096 for f in files)


def test_seen9_favicon_answers_quietly(server: RunningServer, logs: LogCapture) -> None:
    """Issue #10 seen 9: every browser visit logged WARNING http 404 GET /favicon.ico."""
    with server.client() as client:
        icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in icon.content and "max-age" in icon.headers["cache-control"]
    assert not logs.find("favicon", level="WARNING")


def test_seen9_quota_line_shows_a_readable_time(
    serve: Callable[[Settings], RunningServer], tmp_path: Path, files_dir: Path, logs: LogCapture
) -> None:
    """Issue #10 seen 9: quota lines showed a raw epoch ("next at 1796115788")."""
    server = serve(load_settings(write_config(tmp_path, limits={"links_per_user_per_hour": 1})))
    send(server, content="芝麻开门", msg_id="1")
    send(server, content="芝麻开门", msg_id="2")
    (line,) = logs.find("quota:", level="WARNING")
    # The injected clock starts at 1_800_000_000 (2027-01-15 08:00 UTC): next at +1 h, Beijing.
    assert line.endswith("next at 2027-01-15 17:00:00+08:00"), line
