"""A real nginx for tests and the benchmark: docker/nginx.conf, pointed at local ports and paths."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.helpers.paths import NGINX_CONF

NGINX = Path("/usr/sbin/nginx")
SHIPPED = NGINX_CONF
TEMP_PATHS = "".join(
    f"    {kind}_temp_path {{prefix}}/{kind}_temp;\n"
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
)


def local_conf(
    *,
    prefix: Path,
    port: int,
    upstream: str,
    files_dir: Path,
    changes: dict[str, str] | None = None,
    extra_http: str = "",
) -> str:
    """docker/nginx.conf with its container paths and ports swapped for local ones."""
    # As root, nginx's workers would run as nobody, who cannot read pytest's private temp dirs.
    user = "user root;\n" if os.geteuid() == 0 else ""
    text = f"{user}pid {prefix}/nginx.pid;\n" + SHIPPED.read_text(encoding="utf-8")
    swaps = {
        "error_log /dev/stderr warn;": f"error_log {prefix}/error.log warn;",
        "access_log /dev/stdout bot;": f"access_log {prefix}/access.log bot;",
        "server bot:8000;": f"server {upstream};",
        "listen 80 ": f"listen 127.0.0.1:{port} ",
        "alias /files/;": f"alias {files_dir.resolve()}/;",
        "http {\n": "http {\n" + TEMP_PATHS.format(prefix=prefix) + extra_http,
        **(changes or {}),
    }
    for old, new in swaps.items():
        if text.count(old) != 1:
            raise AssertionError(f"docker/nginx.conf no longer has exactly one {old!r}")
        text = text.replace(old, new)
    return text


class Nginx:
    """nginx in the foreground as a child process, with its own prefix folder."""

    def __init__(self, prefix: Path, conf: str, ports: list[int]) -> None:
        if not NGINX.is_file():
            raise RuntimeError(f"{NGINX} is missing: apt-get install nginx-light (make debs)")
        self.prefix, self.ports = prefix, ports
        prefix.mkdir(parents=True, exist_ok=True)
        self.conf = prefix / "nginx.conf"
        self.conf.write_text(conf, encoding="utf-8")
        self.process: subprocess.Popen[bytes] | None = None

    def check(self) -> str:
        """``nginx -t`` on the config; its output, or RuntimeError."""
        done = subprocess.run(
            [NGINX, *self._args(), "-t"], capture_output=True, text=True, check=False
        )
        if done.returncode:
            raise RuntimeError(f"nginx -t failed:\n{done.stderr}")
        return done.stderr

    def start(self) -> Nginx:
        """Start and wait until every port accepts connections."""
        self.check()
        self.process = subprocess.Popen(
            [NGINX, *self._args(), "-g", "daemon off;"], stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        for port in self.ports:
            while not _accepts(port):
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"nginx did not start: {self.error_log()}")
                time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Fast shutdown, and wait for the master to exit."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def error_log(self) -> str:
        """The error log so far (for failure messages)."""
        path = self.prefix / "error.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def _args(self) -> list[str]:
        return ["-p", f"{self.prefix}{os.sep}", "-c", str(self.conf), "-e", "stderr"]


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0
