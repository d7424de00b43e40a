"""Load generators: wrk (with bench/wrk.lua) and curl, plus WeChat pushes to replay."""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx

from bench.servers import AES_KEY, APP_ID, KEYWORD, TOKEN
from bot.wechat import Simulator, build_message_xml

LUA = Path(__file__).resolve().parent / "wrk.lua"


@dataclass(frozen=True, slots=True)
class WrkResult:
    """What one wrk run measured."""

    requests: int
    bytes: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float = 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def mb_per_s(self) -> float:
        return self.bytes / self.seconds / 1e6


def wrk(
    url: str, *, connections: int, seconds: float, requests_file: Path | None = None
) -> WrkResult:
    """Run wrk against url; errors count sockets errors, timeouts and non-2xx/3xx answers."""
    threads = min(2, connections)
    command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{round(seconds)}s"]
    command += ["--timeout", "60s", "-s", str(LUA), url]
    if requests_file is not None:
        command += ["--", str(requests_file), str(threads)]  # each line once, in turn
    done = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=seconds + 120
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no summary: {done.stdout}\n{done.stderr}")
    raw = json.loads(line[4:])
    errors = sum(raw[k] for k in ("connect", "read", "write", "status", "timeout"))
    return WrkResult(
        requests=raw["requests"],
        bytes=raw["bytes"],
        seconds=raw["duration_us"] / 1e6,
        errors=errors,
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
    )


def curl_mb_per_s(url: str) -> float:
    """One download with curl to /dev/null; MB/s over the whole transfer."""
    done = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{time_total}", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    status, size, seconds = done.stdout.split()
    if status != "200":
        raise RuntimeError(f"curl {url}: HTTP {status}")
    return int(size) / float(seconds) / 1e6


def slow_clients(
    url: str, *, count: int, rate: str, seconds: float, sample: Callable[[], None]
) -> int:
    """``count`` curls reading at ``rate`` for ``seconds``, sample() meanwhile; how many lasted."""
    command = ["curl", "-s", "-o", "/dev/null", "--limit-rate", rate, url]
    clients = [subprocess.Popen(command) for _ in range(count)]
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            sample()
            time.sleep(0.25)
        return sum(1 for c in clients if c.poll() is None)
    finally:
        for client in clients:
            if client.poll() is None:
                client.terminate()
        for client in clients:
            client.wait()


def write_pushes(path: Path, *, count: int, encrypt: bool) -> Path:
    """``count`` distinct, freshly signed keyword pushes (plaintext or safe mode) for wrk.lua."""
    codec = Simulator(TOKEN, APP_ID, AES_KEY)
    now = int(time.time())
    run = secrets.randbits(30)
    lines = []
    for i in range(count):
        xml = build_message_xml(
            to_user="gh_bench",
            from_user=f"o_bench_{run}_{i}",
            create_time=now,
            content=KEYWORD,
            msg_id=str(run * 10_000_000 + i),
        )
        params, body = codec.build_request(
            xml, timestamp=str(now), nonce=f"{run}{i}", encrypt=encrypt
        )
        lines.append(f"/wechat?{urlencode(params)}\t{body.decode()}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def keyword_answer(url: str, *, encrypt: bool, user: str = "o_bench_check") -> str:
    """One signed keyword push to url's /wechat; the reply XML (decrypted in safe mode)."""
    codec = Simulator(TOKEN, APP_ID, AES_KEY)
    now = int(time.time())
    xml = build_message_xml(
        to_user="gh_bench",
        from_user=user,
        create_time=now,
        content=KEYWORD,
        msg_id=str(secrets.randbits(60)),
    )
    params, body = codec.build_request(
        xml, timestamp=str(now), nonce=secrets.token_hex(8), encrypt=encrypt
    )
    response = httpx.post(url + "/wechat", params=params, content=body, timeout=30)
    response.raise_for_status()
    return codec.read_reply(response.content)
