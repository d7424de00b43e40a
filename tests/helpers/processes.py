"""The `bot` command in a child process: one-off commands, and `bot serve` until a block ends."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port, write_config
from tests.helpers.paths import ROOT
from tests.helpers.stores import LIMITED


def bot(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        timeout=60,
        check=False,
    )


def wait_started(url: str, proc: subprocess.Popen[bytes]) -> None:
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


def bot_on(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
        check=False,
    )


def config_for(folder: Path, files_dir: Path, **sections: Any) -> tuple[Path, str]:
    folder.mkdir(exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = write_config(
        folder,
        keywords=LIMITED,
        server={"port": port, "public_url": url},
        files={"dir": str(files_dir)},
        log={"file": "bot.log"},
        **sections,
    )
    return config, url


@contextmanager
def running(config: Path, url: str, workers: int = 1) -> Iterator[str]:
    """`python -m bot serve` as an owner runs it, until the block ends."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", "--config", str(config), "--workers", str(workers)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"bot serve did not start; see {config.parent / 'bot.log'}")
            time.sleep(0.1)
        # /healthz answers once one worker is up; a test that signals them waits for them all
        # (a worker still starting has no SIGHUP handler yet).
        log = config.parent / "bot.log"
        while workers > 1 and log.is_file():
            if log.read_text(encoding="utf-8").count("Application startup complete.") >= workers:
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"not every worker started; see {log}")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(15)
