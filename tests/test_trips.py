"""Issue #20: the store trips a push and a download make (counted on the real store, by call)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.app import create_app
from bot.config import load_settings
from bot.state import Store, store_from_url
from bot.web.edge import uvicorn_options
from tests.conftest import DEMO_NAME, Clock, start_server, write_config
from tests.helpers.waiting import wait_for
from tests.helpers.webhook import link_of, post, text_of

LIMITED = [{"match": "芝麻开门", "file": DEMO_NAME, "max_downloads": 1}]


class Recording:
    """The real store, noting the name of every call made to it."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)
        if name in ("open", "close", "ping", "prune") or not callable(method):
            return method

        def noted(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return method(*args, **kwargs)

        return noted


Boot = Callable[..., tuple[str, Recording]]


@pytest.fixture
def boot(tmp_path: Path, files_dir: Path, clock: Clock) -> Iterator[Boot]:
    servers = []

    def _boot(*, edge: bool = False, **sections: Any) -> tuple[str, Recording]:
        settings = load_settings(write_config(tmp_path, keywords=LIMITED, **sections))
        store = Recording(store_from_url(settings.state.url, clock=clock))
        app = create_app(settings, clock=clock, store=store)  # type: ignore[arg-type]
        server, thread, url = start_server(app, **(uvicorn_options(settings) if edge else {}))
        servers.append((server, thread))
        return url, store

    yield _boot
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)


def test_a_push_is_one_store_trip(boot: Boot, clock: Clock) -> None:
    url, store = boot()
    text = text_of(post(url, msg_id="2001", timestamp=clock()))
    assert "/d/" in text and "提取码" in text  # a link and its pick-up code
    assert store.calls == ["answer_push"]


def test_a_use_limited_download_counts_with_one_trip_after_its_claim(
    boot: Boot, clock: Clock
) -> None:
    url, store = boot()
    path = link_of(text_of(post(url, msg_id="2002", timestamp=clock())))
    store.calls.clear()
    assert httpx.get(url + path, timeout=10).status_code == 200
    # The audit row, off the answer's path, through #19's audit writer (a batch of one).
    wait_for(lambda: "record_attempts" in store.calls)
    assert store.calls == ["claim", "release", "record_attempts"]


def test_a_one_piece_download_counting_acknowledgements_is_two_trips(
    boot: Boot, clock: Clock
) -> None:
    """Under `bot serve`'s protocol the client's acknowledgements decide the count (#19): the
    claim notes a span sent in one piece whole, so there is no note between it and the release."""
    url, store = boot(edge=True)
    path = link_of(text_of(post(url, msg_id="2004", timestamp=clock())))
    store.calls.clear()
    assert httpx.get(url + path, timeout=10).status_code == 200
    wait_for(lambda: "record_attempts" in store.calls)
    assert store.calls == ["claim", "release", "record_attempts"]
    assert httpx.get(url + path, timeout=10).status_code == 410  # and it counted


def test_x_accel_answers_with_no_store_write_beyond_the_claim(boot: Boot, clock: Clock) -> None:
    url, store = boot(files={"delivery": "x-accel"})
    path = link_of(text_of(post(url, msg_id="2003", timestamp=clock())))
    store.calls.clear()
    answer = httpx.get(url + path, timeout=10)  # the bot's answer to nginx (none in between)
    assert answer.status_code == 200 and answer.headers["x-accel-lease"]
    assert store.calls == ["claim"]  # nginx's /_accel/finished ends the lease, counting it
