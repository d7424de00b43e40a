"""A real ``bot serve`` in a child process: for RSS, several workers and uvicorn's own options."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.helpers.paths import ROOT


class BotProcess:
    """``python -m bot serve`` with a config, its output in ``output``; stop() waits for exit."""

    def __init__(
        self,
        config: Path,
        port: int,
        *,
        workers: int = 1,
        env: dict[str, str] | None = None,
    ) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.output = config.parent / f"serve-{port}.txt"
        args = [sys.executable, "-m", "bot", "serve", "--config", str(config), "--port", str(port)]
        if workers > 1:
            args += ["--workers", str(workers)]
        with self.output.open("wb") as out:
            self.process = subprocess.Popen(
                args,
                env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
                stdout=out,
                stderr=out,
            )

    def wait_ready(self, timeout: float = 60) -> BotProcess:
        """Until /healthz answers (fails with the output if the process ends first)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise AssertionError(f"bot serve did not start:\n{self.text()[-3000:]}")
            time.sleep(0.1)

    def rss_peak_kb(self) -> int:
        """The largest resident set the main process ever had (VmHWM), in kB."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(
            next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))
        )

    def rss_kb(self) -> int:
        """The resident set now (VmRSS), in kB."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(
            next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))
        )

    def text(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        return self.output.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        """SIGTERM (uvicorn's graceful shutdown), then wait; SIGKILL after 30 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
