"""Issue #11 deliver 4: hot reload of a real `bot serve` (one worker and two) by SIGHUP / `bot reload`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.reload import note_server, running_server
from tests.conftest import BIG_NAME, DEMO_NAME, free_port, push, write_config
from tests.helpers.paths import ROOT
from tests.helpers.processes import running
from tests.helpers.waiting import wait_for

pytestmark = pytest.mark.slow

OLD = [{"match": "芝麻开门", "file": DEMO_NAME}, {"match": "Big", "file": BIG_NAME}]
NEW = [*OLD, {"match": ["新词", "fresh"], "file": DEMO_NAME, "style": "anchor"}]
BAD = [*OLD, {"match": "(", "mode": "regex", "file": DEMO_NAME}]
_ids = iter(range(10_000, 99_999))


def configure(folder: Path, files_dir: Path, rules: list[dict[str, Any]], port: int) -> Path:
    return write_config(
        folder,
        keywords=rules,
        server={"port": port, "public_url": f"http://127.0.0.1:{port}"},
        files={"dir": str(files_dir)},
        log={"file": "bot.log"},
        limits={"rate_bytes_per_second": 1_000_000, "links_per_user_per_hour": 0},  # ~3 s download
    )


def ask(url: str, text: str) -> str:
    response = push(url, timestamp=time.time(), msg_id=str(next(_ids)), content=text)
    assert response.status_code == 200, response.text
    return response.text


def bot_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def link_in(text: str) -> str:
    match = re.search(r"/d/[A-Za-z0-9_.\-]+", text)
    assert match, text
    return match.group(0)


def wait_for_rule(url: str, started: float, limit: float = 5.0) -> float:
    """Seconds until the new rule answers; every worker must give it a few times in a row."""
    streak = 0
    while time.monotonic() - started < limit + 10:
        streak = streak + 1 if "/d/" in ask(url, "ＦＲＥＳＨ") else 0
        if streak >= 6:
            return time.monotonic() - started
        time.sleep(0.05)
    pytest.fail("the new rule never answered")


@pytest.mark.parametrize(
    "workers", [pytest.param(1, id="one-worker"), pytest.param(2, id="two-workers")]
)
def test_reload_swaps_rules_keeps_links_and_refuses_a_bad_config(
    tmp_path: Path, files_dir: Path, workers: int
) -> None:
    """Issue #11 deliver 4: new rules within 5 s, in-flight requests finish, links keep working,
    a bad config is refused by `bot reload` (exit 2 + reason) and by SIGHUP (running one kept)."""
    port = free_port()
    config = configure(tmp_path, files_dir, OLD, port)
    with running(config, f"http://127.0.0.1:{port}", workers=workers) as url:
        pid = running_server(config)
        assert pid is not None
        assert "/d/" not in ask(url, "新词")
        old_link = link_in(ask(url, "芝麻开门"))
        big_link = link_in(ask(url, "Big"))
        got: dict[str, Any] = {}
        streaming = threading.Event()

        def download() -> None:
            with httpx.stream("GET", url + big_link, timeout=30) as response:
                got["status"] = response.status_code
                streaming.set()
                got["body"] = b"".join(response.iter_bytes())

        in_flight = threading.Thread(target=download)
        in_flight.start()
        streaming.wait(10)
        configure(tmp_path, files_dir, NEW, port)
        began = time.monotonic()
        result = bot_cli("reload", "--config", str(config))
        assert result.returncode == 0, result.stderr
        signalled = time.monotonic()  # `bot reload` itself spends ~1-2 s starting Python
        took = wait_for_rule(url, signalled)
        print(
            f"{workers} worker(s): new rule answered {took:.2f}s after the signal, "
            f"{signalled - began:.2f}s in `bot reload`"
        )
        assert took < 5.0
        in_flight.join(30)
        assert got == {"status": 200, "body": (files_dir / BIG_NAME).read_bytes()}
        assert httpx.get(url + old_link, timeout=10).content == (files_dir / DEMO_NAME).read_bytes()
        assert '<a href="' in ask(url, "新词。")

        configure(tmp_path, files_dir, BAD, port)
        refused = bot_cli("reload", "--config", str(config))
        assert refused.returncode == 2
        assert "keywords[2] ('(')" in refused.stderr and "not a valid regex" in refused.stderr
        assert "Value error" not in refused.stderr
        os.kill(pid, signal.SIGHUP)  # straight to the server: it must keep the running config
        log_file = tmp_path / "bot.log"
        wait_for(lambda: log_file.read_text(encoding="utf-8").count("reload refused") >= workers)
        for _ in range(6):
            assert "/d/" in ask(url, "fresh")
        log = (tmp_path / "bot.log").read_text(encoding="utf-8")
        assert "not a valid regex" in log


def test_reload_without_a_server_says_so(tmp_path: Path, files_dir: Path) -> None:
    config = configure(tmp_path, files_dir, OLD, free_port())
    result = bot_cli("reload", "--config", str(config))
    assert result.returncode == 1 and "no running `bot serve`" in result.stderr


def test_serving_from_a_read_only_config_folder_still_starts(tmp_path: Path) -> None:
    """make test-deploy: compose mounts /config read-only; the pid note is skipped, not fatal."""
    folder = tmp_path / "config"
    folder.mkdir()
    config = folder / "config.toml"
    config.write_text("", encoding="utf-8")
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):  # root ignores the mode: make the write fail another way
            (folder / "config.toml.pid").mkdir()
        note_server(config)
        assert running_server(config) is None
    finally:
        folder.chmod(0o755)
