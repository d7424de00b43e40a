"""The issue's "done when": `bot serve --workers 2` on SQLite, and two instances on one Redis."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import httpx
import pytest

from tests.conftest import BIG_NAME, RedisServer
from tests.helpers.processes import bot_on, config_for, running
from tests.helpers.stores import parallel
from tests.helpers.webhook import link_of, post, text_of

pytestmark = pytest.mark.slow


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
        stats = bot_on(config, "stats")
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
