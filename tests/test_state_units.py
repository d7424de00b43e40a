"""The pure parts of the state feature: limits, durations, reports, store URLs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from bot.answers import quota_text
from bot.config import load_settings
from bot.delivery.records import download_limits
from bot.errors import ConfigError
from bot.state import STORES, Attempt, Backend, LinkRecord, sqlite_path, store_from_url
from bot.state.report import parse_duration, stats_text, summarize
from tests.conftest import BIG_NAME, DEMO_NAME, write_config


@pytest.mark.parametrize(
    ("default", "keywords", "expected"),
    [
        pytest.param(0, [None, None], {DEMO_NAME: 0, BIG_NAME: 0}, id="unlimited"),
        pytest.param(3, [None, 1], {DEMO_NAME: 3, BIG_NAME: 1}, id="keyword-overrides"),
        pytest.param(2, [None, 0], {DEMO_NAME: 2, BIG_NAME: 0}, id="keyword-unlimits"),
    ],
)
def test_download_limits(
    tmp_path: Path,
    files_dir: Path,
    default: int,
    keywords: list[int | None],
    expected: dict[str, int],
) -> None:
    table: list[dict[str, Any]] = [
        {"match": "a", "file": DEMO_NAME},
        {"match": "b", "file": BIG_NAME},
    ]
    for keyword, limit in zip(table, keywords, strict=True):
        if limit is not None:
            keyword["max_downloads"] = limit
    config = write_config(tmp_path, keywords=table, links={"max_downloads": default})
    assert download_limits(load_settings(config)) == expected


def test_a_file_named_twice_gets_the_strictest_limit(tmp_path: Path, files_dir: Path) -> None:
    table = [
        {"match": "a", "file": DEMO_NAME, "max_downloads": 0},
        {"match": "b", "file": DEMO_NAME, "max_downloads": 5},
        {"match": "c", "file": DEMO_NAME, "max_downloads": 2},
    ]
    assert download_limits(load_settings(write_config(tmp_path, keywords=table))) == {DEMO_NAME: 2}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("90s", 90, id="seconds"),
        pytest.param("30m", 1800, id="minutes"),
        pytest.param("12h", 43200, id="hours"),
        pytest.param("7d", 604800, id="days"),
        pytest.param(" 2W ", 1209600, id="weeks-upper"),
    ],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "7", "d", "7x", "-1d", "1.5h"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_stats_table_counts_and_aligns_chinese_names() -> None:
    links = [
        LinkRecord("l1", "o_a", "k", DEMO_NAME, 0, 600),
        LinkRecord("l2", "o_a", "k", DEMO_NAME, 1, 601),
        LinkRecord("l3", "o_b", "big", "x.bin", 2, 602),
    ]
    attempts = [
        Attempt(3, "served", "l1", DEMO_NAME, bytes_sent=10, complete=True, counted=True),
        Attempt(4, "served", "l2", DEMO_NAME, bytes_sent=1_000_000, complete=False),
        Attempt(5, "expired", "l3", "x.bin", status=410),
        Attempt(6, "bad_token", status=403),
        Attempt(7, "bad_token", status=403),
    ]
    text = stats_text(*summarize(links, attempts))
    lines = text.splitlines()
    assert lines[0].split() == [
        "file", "links", "followers", "downloads", "bytes", "expired", "hits", "bad", "tokens"
    ]  # fmt: skip
    assert lines[1].split() == ["x.bin", "1", "1", "0", "0", "1", "-"]
    assert lines[2].split() == [DEMO_NAME, "2", "1", "1", "1,000,010", "0", "-"]
    assert lines[3].split() == ["total", "3", "2", "1", "1,000,010", "1", "2"]
    widths = {len(line) + sum(1 for c in line if ord(c) > 0x2E80) for line in lines}
    assert len(widths) == 1  # columns line up in a terminal (CJK characters are two wide)


def test_quota_text_names_the_time_in_beijing() -> None:
    text = quota_text(10, retry_at=1_800_003_600, now=1_800_001_800)  # 09:00 UTC
    assert "10 个" in text and "17:00" in text and "30 分钟" in text


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param("sqlite:///state/bot.db", "CONFIG/state/bot.db", id="relative"),
        pytest.param("sqlite:////var/lib/bot.db", "/var/lib/bot.db", id="absolute"),
        pytest.param("redis://127.0.0.1:6379/0", None, id="redis"),
    ],
)
def test_state_url_is_resolved_next_to_the_config(
    tmp_path: Path, files_dir: Path, url: str, expected: str | None
) -> None:
    settings = load_settings(write_config(tmp_path, state={"url": url}))
    path = sqlite_path(settings.state.url)
    want = None if expected is None else Path(expected.replace("CONFIG", str(tmp_path)))
    assert path == want
    if expected is None:
        assert settings.state.url == url


class FakeStore:
    """A third store, as a new backend would add it: a class with ``from_url``."""

    def __init__(self, url: str) -> None:
        self.url = url

    @classmethod
    def from_url(cls, url: str, **_: Any) -> FakeStore:
        return cls(url)


def test_a_store_registered_in_one_line_is_chosen_and_its_url_accepted(
    tmp_path: Path, files_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(STORES, ("memory://",), Backend(f"{__name__}:FakeStore", "memory://NAME"))
    store = store_from_url("memory://here")
    assert isinstance(store, FakeStore) and store.url == "memory://here"
    settings = load_settings(write_config(tmp_path, state={"url": "memory://here"}))
    assert settings.state.url == "memory://here"


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("postgres://db/bot", id="unknown-scheme"),
        pytest.param("sqlite:///", id="sqlite-without-path"),
        pytest.param("sqlite://state/bot.db", id="sqlite-two-slashes"),
    ],
)
def test_an_unknown_state_url_is_refused_naming_every_store(
    tmp_path: Path, files_dir: Path, url: str
) -> None:
    forms = "sqlite:///PATH (e.g. sqlite:///state/bot.db) or redis://HOST:PORT/DB"
    with pytest.raises(ConfigError, match=r"state\.url") as caught:
        load_settings(write_config(tmp_path, state={"url": url}))
    assert f"must be {forms}" in str(caught.value)
    with pytest.raises(ConfigError, match=re.escape(forms)):
        store_from_url(url)
