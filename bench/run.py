"""``make bench``: nginx, the bot (direct, X-Accel, Redis), a bare app and peer bots in one run."""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx

from bench import report
from bench.load import WrkResult, curl_mb_per_s, keyword_answer, slow_clients, write_pushes, wrk
from bench.peers.seed import serializer
from bench.report import Results, Target
from bench.servers import (
    SECRET,
    Server,
    start_bare,
    start_bot,
    start_nginx,
    start_seed,
    start_werobot,
    tree_cpu,
    tree_rss,
)
from bot import __version__
from bot.links import LinkSigner
from tests.conftest import start_redis

MB = 1 << 20
FILES = {"1KB.bin": 1024, "1MB.bin": MB, "100MB.bin": 100 * MB, "200MB.bin": 200 * MB}
HUGE = "1GB.bin"  # sparse: only the slow-client test reads it
MATRIX_SIZES = ["1KB.bin", "1MB.bin", "100MB.bin"]
MATRIX_CONNECTIONS = [1, 8, 64, 256]
DOWNLOADERS = ["nginx", "seed", "direct", "x-accel"]
SINGLE, MANY, SLOW = "single 200 MB", "32 × 1 MB", "200 slow clients"
LIMITED = "32 × 1 MB, a link per request"
UNLIMITED, USE_LIMITED = "unlimited", "use-limited"
BURST = "webhook burst, 1 worker"
MATRIX = "size × connections"
SLOW_CASE = "1 GB at 64 KB/s each, 1 worker"
HOOK, PLAIN, SAFE = "webhook", "plaintext, wrk -c64", "safe (AES), wrk -c64"
BURST_CASE = "plaintext, wrk -c512"
BOT, BOT_REDIS = "bot (SQLite)", "bot (Redis)"
# Webhook contestants per mode (WeRoBot is measured in plaintext only: its safe mode is optional).
HOOK_SERVERS = {PLAIN: ["bare", "seed", "werobot", BOT, BOT_REDIS], SAFE: ["bare", "seed", BOT]}
DEADLINE_MS = 4800  # #20: at 512 connections on one worker, no push answered later than this


def at(case: str, workers: int) -> str:
    """A case measured with this many workers per server (ratios compare within one case)."""
    return f"{case} · {workers} worker{'s' if workers > 1 else ''}"


def targets(workers: list[int]) -> list[Target]:
    """The goals of #5, #12 and #20, for every worker count measured."""
    found = []
    for w in workers:
        found += [
            Target(
                f"direct, one 200 MB download vs nginx ({w}w)",
                (SINGLE, at("curl", w), "direct", "MB/s"),
                0.5,
            ),
            Target(
                f"x-accel, one 200 MB download vs nginx ({w}w)",
                (SINGLE, at("curl", w), "x-accel", "MB/s"),
                0.9,
            ),
            Target(
                f"direct, 32 × 1 MB vs nginx ({w}w)",
                (MANY, at("wrk -c32", w), "direct", "req/s"),
                0.5,
            ),
            Target(
                f"direct, 32 × 1 MB vs seed bot ({w}w)",
                (MANY, at("wrk -c32", w), "direct", "req/s"),
                1.5,
                "seed",
            ),
            Target(
                f"x-accel, 32 × 1 MB vs nginx ({w}w)",
                (MANY, at("wrk -c32", w), "x-accel", "req/s"),
                0.7,
            ),
            Target(
                f"use-limited vs unlimited, direct ({w}w)",
                (LIMITED, at("direct, wrk -c32", w), USE_LIMITED, "req/s"),
                0.9,
            ),
            Target(
                f"use-limited vs unlimited, x-accel ({w}w)",
                (LIMITED, at("x-accel, wrk -c32", w), USE_LIMITED, "req/s"),
                0.9,
            ),
            Target(
                f"webhook plaintext vs seed bot ({w}w)",
                (HOOK, at(PLAIN, w), BOT, "req/s"),
                1.0,
                "seed",
            ),
            Target(
                f"webhook plaintext p99 vs seed bot ({w}w)",
                (HOOK, at(PLAIN, w), BOT, "p99 ms"),
                1.0,
                "seed",
                "<=",
            ),
            Target(
                f"webhook safe (AES) vs seed bot ({w}w)",
                (HOOK, at(SAFE, w), BOT, "req/s"),
                1.0,
                "seed",
            ),
            Target(
                f"webhook safe (AES) p99 vs seed bot ({w}w)",
                (HOOK, at(SAFE, w), BOT, "p99 ms"),
                1.0,
                "seed",
                "<=",
            ),
            Target(
                f"webhook CPU per push vs seed bot ({w}w)",
                (HOOK, at(PLAIN, w), BOT, "CPU µs/push"),
                1.0,
                "seed",
                "<=",
            ),
        ]
    found += [
        Target(
            "bot RSS MB, 200 slow clients",
            (SLOW, SLOW_CASE, "direct", "peak RSS MB"),
            150,
            None,
            "<",
        ),
        Target(
            "webhook at 512 connections, 1 worker: slowest push ms",
            (BURST, BURST_CASE, BOT, "max ms"),
            DEADLINE_MS,
            None,
            "<",
        ),
    ]
    return found


def main() -> None:
    """Parse options, run every scenario round by round, write and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=2, help="per wrk run in the size matrix")
    parser.add_argument("--long", type=int, default=4, help="per wrk run for 32 × 1 MB, webhook")
    parser.add_argument("--slow-seconds", type=float, default=15)
    cores = os.cpu_count() or 1
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=list(range(1, cores + 1)),
        help="worker counts to measure, each in turn (default: 1 up to the cores)",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument(
        "--only", nargs="*", default=[], help="single many limited matrix webhook burst slow"
    )
    args = parser.parse_args()
    for tool in ("wrk", "curl"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: run `make bench` (it installs BENCH_DEBS)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bot-bench-") as tmp:
        doc = run(Path(tmp), args)
    doc["machine"]["wall_seconds"] = round(time.monotonic() - started)
    print(report.write(doc, args.out))


def run(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """For each worker count: start everything, measure, stop everything."""
    files_dir = make_files(work / "files")
    results = Results()
    results.notes.append(f"load average at start: {load_average()}")
    redis = start_redis()
    try:
        for workers in args.workers:
            measure(work / f"{workers}w", files_dir, redis.url(workers), workers, results, args)
    finally:
        redis.stop()
    results.notes.append(f"load average at the end: {load_average()}")
    return report.summarize(results, targets(args.workers), machine(args))


def measure(
    work: Path,
    files_dir: Path,
    redis_url: str,
    workers: int,
    results: Results,
    args: argparse.Namespace,
) -> None:
    """Every contestant with ``workers`` workers, side by side, for ``args.rounds`` rounds."""
    work.mkdir()
    names = [*FILES, HUGE]
    servers: list[Server] = []
    nginx = None
    try:
        for name, delivery, state in [
            ("direct", "direct", None),
            ("x-accel", "x-accel", None),
            ("redis", "direct", redis_url),  # the webhook on the Redis backend
        ]:
            bot = start_bot(
                work,
                name,
                files_dir=files_dir,
                files=names,
                delivery=delivery,
                workers=workers,
                state_url=state,
            )
            servers.append(bot)
        direct, accel, on_redis = servers
        bare = start_bare(work, workers=workers)
        seed = start_seed(work, files_dir=files_dir, workers=workers)
        werobot = start_werobot(work, files_dir=files_dir, workers=workers)
        servers += [bare, seed, werobot]
        nginx, accel_port, ref_port = start_nginx(
            work,
            files_dir=files_dir,
            upstream=accel.url.removeprefix("http://"),
            workers=workers,
        )
        signer = LinkSigner([SECRET], 3600, files=names)
        tokens = {name: signer.issue(name)[0] for name in names}
        seed_links = serializer(SECRET)
        bases = {
            "nginx": (f"http://127.0.0.1:{ref_port}/files/", lambda n: n),
            "seed": (seed.url + "/d/", seed_links.dumps),
            "direct": (direct.url + "/d/", tokens.get),
            "x-accel": (f"http://127.0.0.1:{accel_port}/d/", tokens.get),
        }
        urls = {s: {n: base + str(key(n)) for n in names} for s, (base, key) in bases.items()}
        hooks = {"bare": bare, "seed": seed, "werobot": werobot, BOT: direct, BOT_REDIS: on_redis}
        sanity_check(urls, hooks)
        fronts = {"direct": direct.url, "x-accel": f"http://127.0.0.1:{accel_port}"}
        scenarios = scenario_table(
            results, args, urls, hooks, fronts, signer, work, workers, files_dir
        )
        for round_no in range(args.rounds):
            for name, scenario in scenarios.items():
                if not args.only or name in args.only:
                    print(f"{workers}w round {round_no + 1}/{args.rounds}: {name}", file=sys.stderr)
                    scenario()
    finally:
        if nginx is not None:
            nginx.stop()
        for server in servers:
            server.stop()


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (the box is shared: read ratios with them)."""
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def scenario_table(
    results: Results,
    args: argparse.Namespace,
    urls: dict[str, dict[str, str]],
    hooks: dict[str, Server],
    fronts: dict[str, str],
    signer: LinkSigner,
    work: Path,
    workers: int,
    files_dir: Path,
) -> dict[str, Callable[[], None]]:
    """Each scenario measures every contestant once (one round), interleaved."""
    for group in (SINGLE, MANY, MATRIX):
        results.references[group] = "nginx"
    results.references[HOOK] = "bare"
    results.references[LIMITED] = UNLIMITED
    results.references[BURST] = "seed"

    def single() -> None:
        for server in DOWNLOADERS:
            speed = curl_mb_per_s(urls[server]["200MB.bin"])
            results.add(SINGLE, at("curl", workers), server, "MB/s", speed)

    def many() -> None:
        for server in DOWNLOADERS:
            r = wrk(urls[server]["1MB.bin"], connections=32, seconds=args.long)
            record(results, MANY, at("wrk -c32", workers), server, r, ("req/s", "p99 ms"))

    def limited() -> None:
        # Every request its own link, as in a campaign (each follower downloads theirs): the
        # use-limited links (max_downloads 1) against links without a limit.
        for front, base in fronts.items():
            for label, limit in ((UNLIMITED, 0), (USE_LIMITED, 1)):
                count = args.long * 4000
                paths = work / "links.txt"
                paths.write_text(
                    "".join(
                        f"/d/{signer.issue('1MB.bin', max_downloads=limit)[0]}\n"
                        for _ in range(count)
                    )
                )
                r = wrk(base + "/", connections=32, seconds=args.long, requests_file=paths)
                case = at(f"{front}, wrk -c32", workers)
                record(results, LIMITED, case, label, r, ("req/s", "p99 ms"))
                if r.requests > count:
                    results.notes.append(f"{case} {label}: {r.requests} requests > {count} links")

    def matrix() -> None:
        for name in MATRIX_SIZES:
            for connections in MATRIX_CONNECTIONS:
                case = at(f"{name.removesuffix('.bin')} × {connections}", workers)
                for server in DOWNLOADERS:
                    r = wrk(urls[server][name], connections=connections, seconds=args.seconds)
                    record(results, MATRIX, case, server, r, ("MB/s", "req/s", "p99 ms"))

    def webhook() -> None:
        count = int(args.long * 12_000)
        for case, encrypt in ((PLAIN, False), (SAFE, True)):
            for label in HOOK_SERVERS[case]:
                # Fresh pushes per contestant: every MsgId and follower is new to its store.
                pushes = write_pushes(work / "pushes.txt", count=count, encrypt=encrypt)
                server = hooks[label]
                r, cpu = pushed(server, pushes, 64, args.long)
                metrics = ("req/s", "p50 ms", "p99 ms")
                record(results, HOOK, at(case, workers), label, r, metrics)
                results.add(HOOK, at(case, workers), label, "CPU µs/push", cpu)
                if r.requests > count and label not in ("bare", "seed", "werobot"):
                    results.notes.append(f"webhook {label}: {r.requests} requests > {count}")

    def burst() -> None:
        # A campaign's burst on one worker: 512 connections at once; the slowest answer counts
        # (WeChat retries a push not answered within 5 s).
        if workers != 1:
            return
        count = int(args.long * 12_000)
        for label in ("seed", BOT, BOT_REDIS):
            pushes = write_pushes(work / "pushes.txt", count=count, encrypt=False)
            r, cpu = pushed(hooks[label], pushes, 512, args.long)
            record(results, BURST, BURST_CASE, label, r, ("req/s", "p99 ms", "max ms"))
            results.add(BURST, BURST_CASE, label, "CPU µs/push", cpu)

    def slow() -> None:
        if workers != 1:  # the memory target is `bot serve`'s default: one worker
            return
        # A bot of its own, fresh: the others' memory holds what the other scenarios left
        # (a minute of replies, the allocator's high-water mark).
        bot = start_bot(
            work,
            f"direct-1w-{len(results.values)}",
            files_dir=files_dir,
            files=[*FILES, HUGE],
            delivery="direct",
            workers=1,
        )
        try:
            pid, peak = (bot.process.pid if bot.process else 0), [0]

            def sample() -> None:
                peak[0] = max(peak[0], tree_rss(pid))

            url = bot.url + "/d/" + signer.issue(HUGE)[0]
            alive = slow_clients(
                url, count=200, rate="64k", seconds=args.slow_seconds, sample=sample
            )
        finally:
            bot.stop()
        results.add(SLOW, SLOW_CASE, "direct", "peak RSS MB", peak[0] / 1e6)
        if alive < 200:
            results.notes.append(f"slow clients: only {alive} of 200 were still downloading")

    return {
        "single": single,
        "many": many,
        "limited": limited,
        "matrix": matrix,
        "webhook": webhook,
        "burst": burst,
        "slow": slow,
    }


def pushed(
    server: Server, pushes: Path, connections: int, seconds: float
) -> tuple[WrkResult, float]:
    """wrk's pushes to a server, and the CPU its process tree spent per request (µs)."""
    pid = server.process.pid if server.process else 0
    before = tree_cpu(pid) if pid else 0.0
    r = wrk(server.url, connections=connections, seconds=seconds, requests_file=pushes)
    spent = (tree_cpu(pid) if pid else 0.0) - before
    return r, spent / max(r.requests, 1) * 1e6


def record(
    results: Results, group: str, case: str, server: str, r: WrkResult, metrics: tuple[str, ...]
) -> None:
    """Store the metrics asked for; errors (non-2xx, timeouts) become notes."""
    values = {
        "req/s": r.rps,
        "MB/s": r.mb_per_s,
        "p50 ms": r.p50_ms,
        "p99 ms": r.p99_ms,
        "max ms": r.max_ms,
    }
    for metric in metrics:
        results.add(group, case, server, metric, values[metric])
    if r.errors:
        results.notes.append(f"{group} {case} {server}: {r.errors} errors in {r.requests} requests")


def make_files(folder: Path) -> Path:
    """Random files of each size (read once, so the page cache holds them) and a sparse 1 GB."""
    folder.mkdir(parents=True)
    for name, size in FILES.items():
        with (folder / name).open("wb") as out:
            for start in range(0, size, 8 * MB):
                out.write(os.urandom(min(8 * MB, size - start)))
    with (folder / HUGE).open("wb") as out:
        out.truncate(1 << 30)
    return folder


def sanity_check(urls: dict[str, dict[str, str]], hooks: dict[str, Server]) -> None:
    """Every contestant serves every file, and every bot answers the keyword with a link."""
    with httpx.Client(timeout=30) as client:
        for server, by_name in urls.items():
            for name, url in by_name.items():
                response = client.get(url, headers={"Range": "bytes=0-0"})
                if response.status_code not in (200, 206):
                    raise RuntimeError(f"{server} {name}: HTTP {response.status_code}")
        for label, server in hooks.items():
            for encrypt in (False, True) if label in HOOK_SERVERS[SAFE] else (False,):
                if label == "bare":
                    continue  # answers `success` by design
                reply = keyword_answer(server.url, encrypt=encrypt)
                link = re.search(r"http://127\.0\.0\.1:\d+/d/[\w.-]+", reply)
                if link is None:
                    raise RuntimeError(f"{label} answered the keyword without a link: {reply}")
                response = client.get(link.group(0), headers={"Range": "bytes=0-0"})
                if response.status_code not in (200, 206) and label != "werobot":
                    raise RuntimeError(f"{label}'s link: HTTP {response.status_code}")


def machine(args: argparse.Namespace) -> dict[str, Any]:
    """Where and with what the numbers were measured."""
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    models = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    cpu = models[0] if models else platform.processor()
    nginx = subprocess.run(["/usr/sbin/nginx", "-v"], capture_output=True, text=True, check=False)
    wrk_v = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    curl_v = subprocess.run(["curl", "--version"], capture_output=True, text=True, check=False)
    versions = {
        "bot": __version__,
        "python": platform.python_version(),
        **{p: version(p) for p in ("uvicorn", "fastapi", "starlette", "uvloop", "httptools")},
        **{p: version(p) for p in ("wechatpy", "itsdangerous", "werobot", "gunicorn", "redis")},
        "nginx": nginx.stderr.strip().rsplit("/", 1)[-1],
        "wrk": wrk_v.stdout.split()[1] if wrk_v.stdout else "?",
        "curl": curl_v.stdout.split()[1] if curl_v.stdout else "?",
    }
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "workers": list(args.workers),
        "rounds": args.rounds,
        "seconds": {"matrix": args.seconds, "long": args.long, "slow": args.slow_seconds},
        "versions": versions,
    }


if __name__ == "__main__":
    main()
