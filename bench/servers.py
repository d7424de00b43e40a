"""The contestants: nginx (reference, X-Accel front), the bot, the bare app, the peer bots."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import free_port
from tests.helpers.nginx import Nginx, local_conf

TOKEN = "benchtoken123"
APP_ID = "wxb11529c136998cb6"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
SECRET = "bench-secret-key-0123456789abcdef"
KEYWORD = "芝麻开门"


@dataclass
class Server:
    """One running contestant: where it listens and its process (for RSS)."""

    name: str
    url: str
    process: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        """Terminate the process we started, and wait for it."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def bot_config(
    path: Path,
    *,
    port: int,
    files_dir: Path,
    files: list[str],
    delivery: str,
    state_url: str | None = None,
) -> Path:
    """A bot config for the benchmark: limits off (raw speed), a generous clock skew."""
    state_url = state_url or f"sqlite:///{path.parent / (path.stem + '.db')}"
    keywords = [f'[[keywords]]\nmatch = "{KEYWORD}"\nfile = "{files[0]}"\n']
    keywords += [f'[[keywords]]\nmatch = "bench {name}"\nfile = "{name}"\n' for name in files]
    path.write_text(
        f"""[server]
public_url = "http://127.0.0.1:{port}"
[wechat]
token = "{TOKEN}"
app_id = "{APP_ID}"
encoding_aes_key = "{AES_KEY}"
max_clock_skew = 3600
[links]
secret_keys = ["{SECRET}"]
ttl_seconds = 3600
[files]
dir = "{files_dir}"
delivery = "{delivery}"
[limits]
max_concurrent_downloads = 0
max_concurrent_per_link = 0
[state]
url = "{state_url}"
[log]
level = "INFO"
"""
        + "\n".join(keywords),
        encoding="utf-8",
    )
    return path


def start_bot(
    work: Path,
    name: str,
    *,
    files_dir: Path,
    files: list[str],
    delivery: str,
    workers: int,
    state_url: str | None = None,
) -> Server:
    """``bot serve`` exactly as an owner runs it, its log in the work folder."""
    port = free_port()
    config = bot_config(
        work / f"{name}.toml",
        port=port,
        files_dir=files_dir,
        files=files,
        delivery=delivery,
        state_url=state_url,
    )
    command = [sys.executable, "-m", "bot", "serve", "--config", str(config)]
    command += ["--port", str(port), "--workers", str(workers)]
    return _launch(name, command, port, work / f"{name}.log")


def start_bare(work: Path, *, workers: int) -> Server:
    """The bare FastAPI app under the same uvicorn settings, without access log."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "bench.bare:create_bare_app", "--factory"]
    command += ["--port", str(port), "--workers", str(workers), "--loop", "uvloop"]
    command += ["--http", "httptools", "--no-access-log", "--log-level", "warning"]
    return _launch("bare", command, port, work / "bare.log")


def peer_env(port: int, files_dir: Path) -> dict[str, str]:
    """The peers' configuration: the same token, keys, keyword and files as the bot's."""
    return {
        "SEED_TOKEN": TOKEN,
        "SEED_APP_ID": APP_ID,
        "SEED_AES_KEY": AES_KEY,
        "SEED_SECRET": SECRET,
        "SEED_KEYWORD": KEYWORD,
        "SEED_FILES_DIR": str(files_dir),
        "SEED_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }


def start_seed(work: Path, *, files_dir: Path, workers: int) -> Server:
    """The seed-style FastAPI bot under uvicorn, its settings the bare app's."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "bench.peers.seed:create_seed_app", "--factory"]
    command += ["--port", str(port), "--workers", str(workers), "--loop", "uvloop"]
    command += ["--http", "httptools", "--no-access-log", "--log-level", "warning"]
    return _launch("seed", command, port, work / "seed.log", peer_env(port, files_dir))


def start_werobot(work: Path, *, files_dir: Path, workers: int) -> Server:
    """WeRoBot's WSGI app under gunicorn with as many sync workers as the bot has."""
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "bench.peers.werobot_bot:app"]
    command += ["--bind", f"127.0.0.1:{port}", "--workers", str(workers)]
    command += ["--worker-class", "sync", "--log-level", "warning"]
    return _launch("werobot", command, port, work / "werobot.log", peer_env(port, files_dir))


def start_nginx(
    work: Path, *, files_dir: Path, upstream: str, workers: int
) -> tuple[Nginx, int, int]:
    """docker/nginx.conf (limits lifted, no access log, ``workers`` worker processes) plus a
    plain static server (the reference)."""
    accel_port, ref_port = free_port(), free_port()
    reference = (
        f"    server {{\n        listen 127.0.0.1:{ref_port};\n"
        f"        location /files/ {{ alias {files_dir}/; }}\n    }}\n"
    )
    conf = local_conf(
        prefix=work / "nginx",
        port=accel_port,
        upstream=upstream,
        files_dir=files_dir,
        changes={
            "limit_conn downloads 64;": "limit_conn downloads 60000;",
            "limit_conn per_link 4;": "limit_conn per_link 60000;",
            "access_log /dev/stdout bot;": "access_log off;",
            "worker_processes auto;": f"worker_processes {workers};",
        },
        extra_http=reference,
    )
    return Nginx(work / "nginx", conf, [accel_port, ref_port]).start(), accel_port, ref_port


def _launch(
    name: str, command: list[str], port: int, log: Path, extra_env: dict[str, str] | None = None
) -> Server:
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root), **(extra_env or {})}
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=sink, cwd=root, env=env)
    server = Server(name, f"http://127.0.0.1:{port}", process)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            httpx.get(server.url + "/healthz", timeout=1)
            return server
        except httpx.HTTPError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{name} did not start in 30 s")


def tree(pid: int) -> list[int]:
    """A process and all its descendants (uvicorn's or gunicorn's workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system, every thread) a process and its descendants have used."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for current in tree(pid):
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / tick


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (uvicorn's workers)."""
    total = 0
    for current in tree(pid):
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total
