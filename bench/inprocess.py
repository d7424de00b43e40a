"""CPU per push, in one process: the bot's ASGI app driven without sockets (``--profile``: where).

    python -m bench.inprocess --pushes 4000 --concurrency 64 [--profile] [--encrypt] [--redis URL]

No uvicorn, no wrk: what is left is the app's own work (routing, parsing, the store, the log
line), measured as CPU seconds of the whole process (the store thread included) over the pushes.
``--profile`` runs cProfile on the event loop's thread and prints the functions by own time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench.servers import AES_KEY, APP_ID, KEYWORD, TOKEN, bot_config
from bot.wechat import Simulator, build_message_xml

ASGI = Callable[
    [dict[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


def pushes(count: int, *, encrypt: bool, now: int) -> list[tuple[bytes, bytes]]:
    """``count`` distinct signed keyword pushes: (query string, body)."""
    codec = Simulator(TOKEN, APP_ID, AES_KEY)
    run = secrets.randbits(30)
    out = []
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
        out.append((urlencode(params).encode(), body))
    return out


async def call(app: ASGI, query: bytes, body: bytes) -> tuple[int, bytes]:
    """One POST /wechat through the ASGI app; its status and body."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/wechat",
        "raw_path": b"/wechat",
        "query_string": query,
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"text/xml"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent = False
    status, chunks = 0, []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


def thread_cpu() -> dict[str, float]:
    """CPU seconds (user + system) of each thread of this process, by thread id."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[task.name] = (int(fields[11]) + int(fields[12])) / tick
    return out


async def drive(app: ASGI, work: list[tuple[bytes, bytes]], concurrency: int) -> int:
    """Send every push, ``concurrency`` at a time; how many were not answered with a link."""
    todo = iter(work)
    bad = 0

    async def worker() -> None:
        nonlocal bad
        for query, body in todo:
            status, answer = await call(app, query, body)
            if status != 200 or (b"/d/" not in answer and b"Encrypt" not in answer):
                bad += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return bad


async def lifespan(app: ASGI) -> Callable[[], Awaitable[None]]:
    """Run the app's start-up; returns what runs its shutdown."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def lifespan_call() -> None:
        await app(
            {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, outbox.put
        )

    task: asyncio.Task[None] = asyncio.create_task(lifespan_call())
    await inbox.put({"type": "lifespan.startup"})
    started = await outbox.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(started)

    async def stop() -> None:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task

    return stop


async def main_async(args: argparse.Namespace, work_dir: Path) -> None:
    from loguru import logger

    from bot.app import create_app, settle_memory
    from bot.config import load_settings
    from bot.logs.setup import setup_logging

    files = work_dir / "files"
    files.mkdir()
    (files / "1KB.bin").write_bytes(os.urandom(1024))
    config = bot_config(
        work_dir / "bot.toml",
        port=8000,
        files_dir=files,
        files=["1KB.bin"],
        delivery="direct",
        state_url=args.redis,
    )
    log = (work_dir / "bot.log").open("w")
    sys.stderr = log  # the bench logs to a file at INFO, as an owner would
    if args.app == "bot":
        settings = load_settings(config)
        setup_logging(settings.log)
        app: Any = create_app(settings)
    elif args.app == "seed":
        from bench.peers.seed import create_seed_app
        from bench.servers import peer_env

        os.environ.update(peer_env(8000, files))
        app = create_seed_app()
    else:
        from bench.bare import create_bare_app

        app = create_bare_app()
    settle_memory()
    stop = await lifespan(app)
    now = int(time.time())
    await drive(app, pushes(200, encrypt=args.encrypt, now=now), args.concurrency)  # warm up
    work = pushes(args.pushes, encrypt=args.encrypt, now=now)
    profiler = cProfile.Profile(time.thread_time) if args.profile else None  # CPU, not wall
    before, cpu0, wall0 = thread_cpu(), time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    bad = await drive(app, work, args.concurrency)
    if profiler:
        profiler.disable()
    cpu, wall, after = time.process_time() - cpu0, time.perf_counter() - wall0, thread_cpu()
    await stop()
    logger.remove()  # writes what its batches hold, before the file closes
    sys.stderr = sys.__stderr__
    log.close()
    n = args.pushes
    mode = "AES" if args.encrypt else "plaintext"
    print(f"{args.app}: {n} pushes, {args.concurrency} at a time, {mode}")
    print(f"  CPU per push {cpu / n * 1e6:.0f} µs; {n / wall:.0f} pushes/s; {bad} without a link")
    main_thread = str(threading.get_native_id())
    for tid, seconds in sorted(after.items()):
        spent = seconds - before.get(tid, 0.0)
        if spent > 0:
            name = "event loop" if tid == main_thread else f"thread {tid}"
            print(f"  {name}: {spent / n * 1e6:.0f} µs per push")
    if profiler:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats(args.sort).print_stats(args.top)
        print(out.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pushes", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--encrypt", action="store_true")
    parser.add_argument("--app", choices=["bot", "seed", "bare"], default="bot")
    parser.add_argument("--redis", default=None, help="a redis:// URL (default: SQLite)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bot-inprocess-") as tmp:
        import uvloop  # the loop `bot serve` runs on

        uvloop.run(main_async(args, Path(tmp)))


if __name__ == "__main__":
    main()
