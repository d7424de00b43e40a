"""Issue #21: an owner's first hour with the `bot` command, each friction item run for real."""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, write_config
from tests.helpers.paths import ROOT
from tests.helpers.processes import bot

pytestmark = pytest.mark.slow  # runs `bot serve` and `bot simulate` as child processes


@contextmanager
def serving(config: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """`bot serve --config CONFIG ARGS…` until the block ends; its stderr in serve.err beside."""
    with (config.parent / "serve.err").open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", "--config", str(config), *args],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        try:
            yield proc
        finally:
            proc.terminate()
            proc.wait(15)


def wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    """Until ``url``/healthz answers 200 (or the server has exited: fail)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            pytest.fail("bot serve did not start")
        time.sleep(0.1)


def local_config(tmp_path: Path, port: int, **sections: dict[str, object]) -> Path:
    """A config whose server and public_url are this machine at ``port`` (as `bot init` writes)."""
    server = {"port": port, "public_url": f"http://127.0.0.1:{port}"}
    return write_config(tmp_path, server=server, **sections)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_simulate_finds_a_bot_served_on_another_port(
    tmp_path: Path, files_dir: Path, workers: str
) -> None:
    """Item 1: after `bot serve --port P`, simulate posts to P and the reply's links point at P."""
    configured, chosen = free_port(), free_port()
    config = local_config(tmp_path, configured)
    with serving(config, "--port", str(chosen), "--workers", workers) as proc:
        wait_up(f"http://127.0.0.1:{chosen}", proc)
        result = bot("simulate", "芝麻开门", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert f"POST http://127.0.0.1:{chosen}/wechat" in result.stderr
    link = re.search(r"http://\S+/d/\S+", result.stdout)
    assert link and link.group(0).startswith(f"http://127.0.0.1:{chosen}/d/"), result.stdout


def test_simulate_names_the_url_and_the_servers_reason(tmp_path: Path, files_dir: Path) -> None:
    """Item 1: a Token mismatch says where it posted, the server's reason, and what to check."""
    port = free_port()
    config = local_config(tmp_path, port)
    (tmp_path / "other").mkdir()
    other = write_config(tmp_path / "other", wechat={"token": "anothertoken456"})
    url = f"http://127.0.0.1:{port}/wechat"
    with serving(config) as proc:
        wait_up(f"http://127.0.0.1:{port}", proc)
        result = bot("simulate", "芝麻开门", "--config", str(other), "--url", url)
    assert result.returncode == 1
    assert f"{url} answered HTTP 403" in result.stderr, result.stderr
    assert "signature does not match" in result.stderr and "hint: " in result.stderr
    assert "anothertoken456" not in result.stderr and "testtoken123" not in result.stderr


def test_simulate_is_a_new_follower_each_time(tmp_path: Path, files_dir: Path) -> None:
    """Item 2: each call is a new follower (no quota carried over) unless --user names one."""
    port = free_port()
    config = local_config(tmp_path, port, limits={"links_per_user_per_hour": 1})
    with serving(config) as proc:
        wait_up(f"http://127.0.0.1:{port}", proc)
        fresh = [bot("simulate", "芝麻开门", "--config", str(config)) for _ in range(2)]
        same = [
            bot("simulate", "芝麻开门", "--config", str(config), "--user", "o_me") for _ in "ab"
        ]
    assert all("/d/" in r.stdout for r in fresh), [r.stdout for r in fresh]
    followers = {re.search(r"as follower (\S+)", r.stderr).group(1) for r in fresh}  # type: ignore[union-attr]
    assert len(followers) == 2
    assert "/d/" in same[0].stdout and "/d/" not in same[1].stdout


def test_readme_simulate_examples_can_be_tried_again_and_again(
    tmp_path: Path, files_dir: Path
) -> None:
    """Item 2: the README's simulate examples one after another, under a quota of one link."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Try it like WeChat would", 1)[1].split("\n## ", 1)[0]
    examples = [
        shlex.split(line.split("#", 1)[0])[2:]
        for line in section.splitlines()
        if line.startswith(".venv/bin/bot simulate")
    ]
    assert len(examples) >= 4 and "--user" in section
    port = free_port()
    config = local_config(tmp_path, port, limits={"links_per_user_per_hour": 1})
    with serving(config) as proc:
        wait_up(f"http://127.0.0.1:{port}", proc)
        for args in examples:
            result = bot("simulate", *args, "--config", str(config))
            assert result.returncode == 0, result.stderr
            assert "已经获取了" not in result.stdout, (args, result.stdout)


def test_make_run_takes_a_port_and_installs_only_the_bot(tmp_path: Path) -> None:
    """Item 3: `make run PORT=…` passes the port on, and its install leaves out the dev extra."""
    done = subprocess.run(
        ["make", "-n", "-B", "run", "PORT=8123"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert any(line.endswith("bot serve --port 8123") for line in lines), done.stdout
    syncs = [line for line in lines if " sync --locked" in line]
    assert syncs and not any("--extra" in line for line in syncs), syncs


def test_serve_on_a_taken_port_names_a_free_one(tmp_path: Path, files_dir: Path) -> None:
    """Item 3: a taken port gives a hint with a free port, not `[Errno 98]` and a traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = bot("serve", "--config", str(local_config(tmp_path, port)))
    assert result.returncode == 2, result.stderr
    assert f"port {port} on 127.0.0.1 is taken" in result.stderr
    free = int(re.search(r"--port (\d+)", result.stderr).group(1))  # type: ignore[union-attr]
    assert free != port and f"make run PORT={free}" in result.stderr
    assert "Traceback" not in result.stderr and "Errno" not in result.stderr
