"""The `bot` command end to end: init, check, link, and serve + simulate as an owner would."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import DEMO_NAME, free_port, write_config
from tests.helpers.processes import bot

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def test_init_writes_fresh_secrets_and_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / DEMO_NAME).write_text("x", encoding="utf-8")
    first = bot("init", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    config = tmp_path / "config.toml"
    data = tomllib.loads(config.read_text(encoding="utf-8"))
    assert data["wechat"]["token"] != "CHANGE-ME" and len(data["wechat"]["token"]) == 32
    assert len(data["links"]["secret_keys"][0]) >= 32
    assert data["keywords"][0] == {
        "match": "芝麻开门",
        "file": DEMO_NAME,
        "reply": data["keywords"][0]["reply"],
    }
    before = config.read_text(encoding="utf-8")
    again = bot("init", cwd=tmp_path)
    assert again.returncode == 0 and "leaving it alone" in again.stdout
    assert config.read_text(encoding="utf-8") == before
    other = tmp_path / "other.toml"
    assert bot("init", "--config", str(other), cwd=tmp_path).returncode == 0
    assert (
        tomllib.loads(other.read_text(encoding="utf-8"))["wechat"]["token"]
        != data["wechat"]["token"]
    )
    check = bot("check", cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    assert "芝麻开门" in check.stdout and DEMO_NAME in check.stdout


def test_check_lists_keywords_with_sizes(tmp_path: Path, files_dir: Path) -> None:
    result = bot("check", "--config", str(write_config(tmp_path)))
    assert result.returncode == 0, result.stderr
    size = (files_dir / DEMO_NAME).stat().st_size
    assert re.search(rf"芝麻开门\s+{size}\s+{DEMO_NAME}", result.stdout), result.stdout


def test_link_prints_a_url(tmp_path: Path, files_dir: Path) -> None:
    result = bot("link", "芝麻开门", "--config", str(write_config(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"http://127\.0\.0\.1:8000/d/\S+\n", result.stdout)
    unknown = bot("link", "nope", "--config", str(write_config(tmp_path)))
    assert unknown.returncode == 2 and "nope" in unknown.stderr


@pytest.fixture
def live_bot(tmp_path: Path, files_dir: Path) -> Iterator[tuple[Path, str]]:
    port = free_port()
    config = write_config(
        tmp_path,
        server={"port": port, "public_url": f"http://127.0.0.1:{port}"},
        log={"file": "bot.log"},
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", "--config", str(config), "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url + "/wechat", timeout=1)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("bot serve did not start")
            time.sleep(0.1)
    yield config, url
    proc.terminate()
    proc.wait(15)


def test_serve_and_simulate_like_an_owner(live_bot: tuple[Path, str], files_dir: Path) -> None:
    config, _ = live_bot
    result = bot("simulate", "芝麻开门", "--config", str(config))
    assert result.returncode == 0, result.stderr
    link = re.search(r"http://\S+/d/\S+", result.stdout)
    assert link, result.stdout
    download = httpx.get(link.group(0), timeout=10)
    assert download.status_code == 200
    assert download.content == (files_dir / DEMO_NAME).read_bytes()
    assert (
        "filename*=UTF-8''%E4%BD%BF%E7%94%A8%E8%AF%B4%E6%98%8E.txt"
        in download.headers["content-disposition"]
    )
    welcome = bot("simulate", "--event", "subscribe", "--config", str(config))
    assert "芝麻开门" in welcome.stdout
    url = link.group(0)
    forged = httpx.get(url[:-6] + ("A" if url[-6] != "A" else "B") + url[-5:], timeout=10)
    assert forged.status_code == 403
    log = config.parent / "bot.log"
    deadline = time.monotonic() + 10
    while "bad token" not in log.read_text(encoding="utf-8") and time.monotonic() < deadline:
        time.sleep(0.1)
    text = log.read_text(encoding="utf-8")
    assert "link issued" in text and "download id=" in text and "bad token" in text


def test_simulate_reports_unreachable_bot(tmp_path: Path, files_dir: Path) -> None:
    config = write_config(tmp_path, server={"port": free_port()})
    result = bot("simulate", "芝麻开门", "--config", str(config))
    assert result.returncode == 1 and "cannot reach" in result.stderr
