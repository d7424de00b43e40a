"""A `bot serve` child process a test may kill -9 mid-download (the `killable` fixture)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.paths import ROOT
from tests.helpers.processes import config_for


@pytest.fixture
def killable(
    tmp_path: Path, files_dir: Path
) -> Iterator[Callable[[str], tuple[subprocess.Popen[bytes], str]]]:
    procs: list[subprocess.Popen[bytes]] = []

    def _start(state_url: str) -> tuple[subprocess.Popen[bytes], str]:

        config, url = config_for(
            tmp_path / "killed",
            files_dir,
            state={"url": state_url},
            links={"max_downloads": 1},
            limits={"rate_bytes_per_second": 500_000},
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", "--config", str(config)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(proc)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    return proc, url
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "bot serve did not start"
            time.sleep(0.05)

    yield _start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
