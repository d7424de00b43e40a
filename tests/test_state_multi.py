"""The issue's "done when": `bot serve --workers 2` on SQLite, and two instances on one Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import BIG_NAME, RedisServer, free_port, write_config
from tests.test_state import LIMITED, ROOT, bot, link_of, parallel, post, text_of


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
        yield url
    finally:
        proc.terminate()
        proc.wait(15)


def one_link_one_download(urls: list[str], files_dir: Path, config: Path) -> None:
    """Three deliveries of one MsgId → one link; five parallel downloads of a 1-use link → 1."""
    now = time.time()
    replies = parallel([partial(post, u, msg_id="900", timestamp=now) for u in urls[:3]])
    texts = {text_of(r) for r in replies}
    assert len(texts) == 1 and "/d/" in next(iter(texts)), texts
    path = link_of(text_of(post(urls[0], msg_id="901", timestamp=now, content="big")))

    json = {"Accept": "application/json"}
    results = parallel([partial(httpx.get, u + path, headers=json) for u in (urls * 3)[:5]])
    statuses = sorted(r.status_code for r in results)  # 503: the first one's lease still runs
    assert statuses[0] == 200 and set(statuses[1:]) <= {410, 503}, statuses
    assert [r.content for r in results if r.status_code == 200] == [
        (files_dir / BIG_NAME).read_bytes()
    ]
    deadline = time.monotonic() + 10
    while True:  # the download's audit row lands just after the response ends
        stats = bot(config, "stats")
        assert stats.returncode == 0, stats.stderr
        total = next(line for line in stats.stdout.splitlines() if line.startswith("total"))
        if total.split()[1:4] == ["2", "1", "1"] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert total.split()[1:4] == ["2", "1", "1"], stats.stdout  # links, followers, downloads


def test_two_workers_share_one_sqlite_file(tmp_path: Path, files_dir: Path) -> None:
    config, url = config_for(tmp_path / "bot", files_dir)
    with running(config, url, workers=2):
        one_link_one_download([url] * 3, files_dir, config)
    assert (tmp_path / "bot" / "state" / "bot.db").is_file()


def test_two_instances_share_one_redis(
    tmp_path: Path, files_dir: Path, request: pytest.FixtureRequest
) -> None:
    redis: RedisServer = request.getfixturevalue("own_redis")
    state = {"url": redis.url(3)}
    config_a, url_a = config_for(tmp_path / "a", files_dir, state=state)
    config_b, url_b = config_for(tmp_path / "b", files_dir, state=state)
    with running(config_a, url_a), running(config_b, url_b):
        one_link_one_download([url_a, url_b, url_a], files_dir, config_b)
        redis.stop()
        began = time.monotonic()
        reply = text_of(post(url_b, msg_id="902", timestamp=time.time()))
        assert "/d/" in reply and time.monotonic() - began < 4.5
