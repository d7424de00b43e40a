"""Issue #19 item 1: an owner's regex can't freeze a worker, crash `bot check`, or flood the log."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from bot.config import KeywordSettings, Settings, load_settings
from bot.keywords.patterns import MAX_TEXT, WARN_EVERY, Search, _shape, risky
from bot.reload import reload_app
from tests.conftest import Clock, LogCapture, RunningServer, write_config
from tests.helpers.processes import bot
from tests.helpers.webhook import reply_text, send

BACKTRACKS = r"^(\w+\s?)+$"  # the pattern: 9.2 s on re for "a"*26 + "#"
OVERLAPS = r"(a|aa)+$"  # backtracks even under `regex`'s own optimisations
NEXT = "下一条规则"
NESTED = "(" * 3000 + "a" + ")" * 3000


def rules(pattern: str) -> list[dict[str, object]]:
    """A regex rule, then a contains rule every test text also matches."""
    return [
        {"match": pattern, "mode": "regex", "reply": "正则"},
        {"match": "a", "mode": "contains", "reply": NEXT},
    ]


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        pytest.param(BACKTRACKS, "a" * 26 + "#", id="seen-1-nine-seconds"),
        pytest.param(BACKTRACKS, "a" * 2047 + "#", id="seen-1-2048-chars-never-ends"),
        pytest.param(OVERLAPS, "a" * 40 + "#", id="timeout-under-regex-too"),
    ],
)
def test_runaway_regex_answers_fast_and_healthz_keeps_answering(
    tmp_path: Path,
    files_dir: Path,
    serve: Callable[[Settings], RunningServer],
    pattern: str,
    text: str,
) -> None:
    """#19 seen 1: the message falls to the next rule in ms while /healthz answers meanwhile."""
    server = serve(load_settings(write_config(tmp_path, keywords=rules(pattern))))
    answer: dict[str, object] = {}

    def follower() -> None:
        started = time.monotonic()
        try:
            answer["reply"] = reply_text(send(server, content=text))
        except httpx.HTTPError as exc:  # the old code: the webhook never answers
            answer["reply"] = repr(exc)
        answer["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=follower, daemon=True)
    thread.start()
    time.sleep(0.05)  # the message is being matched (or was, in ms)
    started = time.monotonic()
    health = httpx.get(server.url + "/healthz", timeout=15)
    health_seconds = time.monotonic() - started
    thread.join(30)
    assert health.status_code == 200
    assert answer["reply"] == NEXT
    # The point is ms against 9 s or forever; 1 s leaves room for two busy shared cores.
    assert isinstance(answer["seconds"], float) and answer["seconds"] < 1.0
    assert health_seconds < 1.0


def test_a_timeout_warns_naming_the_rule_and_the_warning_is_rate_limited(
    logs: LogCapture,
) -> None:
    """#19 item 1: a flood of runaway texts gives one warning per rule a minute, then a count."""
    clock = Clock(0.0)
    search = Search("备用规则", OVERLAPS, clock=clock)
    for _ in range(5):
        assert not search("a" * 40 + "#")
    assert len(logs.find("'备用规则'", "WARNING")) == 1
    clock.advance(WARN_EVERY)
    assert not search("a" * 40 + "#")
    warned = logs.find("'备用规则'", "WARNING")
    assert len(warned) == 2 and "4 more since the last warning" in warned[1]
    assert all("aaaa" not in line for line in warned)  # the follower's text is not logged


def test_regex_keeps_re_semantics_on_chinese_text() -> None:
    """Why `regex` and not RE2: \\w matches Chinese and IGNORECASE holds, as under re."""
    assert Search("r", r"^\w+$")("芝麻开门")
    assert Search("r", "InstMsiW")("instmsiw")
    assert Search("r", r"(?<=v)\d+")("v12")  # lookbehind, which RE2 refuses
    assert not Search("r", "x")("x" * (MAX_TEXT + 1))  # over-long texts skip regex rules


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        pytest.param("a{4294967296}", "too big", id="seen-1-overflow"),
        pytest.param(NESTED, "deeper than", id="seen-1-recursion"),
        pytest.param("(" * 120 + ")" * 120, "deeper than", id="nesting"),
        pytest.param("a{2,1}", "min repeat", id="range"),
    ],
)
def test_unusable_pattern_refused_at_load(pattern: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        KeywordSettings(match=pattern, mode="regex", reply="x")


@pytest.mark.parametrize(
    "pattern",
    [
        pytest.param("a{4294967296}", id="seen-1-overflow"),
        pytest.param(NESTED, id="seen-1-3000-nested-parens"),
    ],
)
def test_bot_check_refuses_unusable_pattern_with_exit_2(
    tmp_path: Path, files_dir: Path, pattern: str
) -> None:
    """#19 seen 1: exit 2 naming the rule, no traceback, a short message."""
    keywords = [
        {"match": "芝麻开门", "reply": "好"},
        {"match": pattern, "mode": "regex", "reply": "x"},
    ]
    result = bot("check", "--config", str(write_config(tmp_path, keywords=keywords)))
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "keywords[1]" in result.stderr and "not a valid regex" in result.stderr
    assert "Traceback" not in output and len(output) < 1000


def test_bot_check_warns_about_nested_repeats(tmp_path: Path, files_dir: Path) -> None:
    """#19 item 1: `bot check` names the rule whose pattern backtracks; the config still loads."""
    keywords = [{"match": BACKTRACKS, "mode": "regex", "reply": "x"}]
    result = bot("check", "--config", str(write_config(tmp_path, keywords=keywords)))
    assert result.returncode == 0, result.stderr
    assert "warning: rule '^(\\\\w+\\\\s?)+$'" in result.stderr
    assert "backtracks catastrophically" in result.stderr


def test_reload_warns_about_nested_repeats(
    tmp_path: Path,
    files_dir: Path,
    serve: Callable[[Settings], RunningServer],
    logs: LogCapture,
) -> None:
    """#19 item 1: a reload that brings in a backtracking pattern applies it, with a warning."""
    server = serve(load_settings(write_config(tmp_path)))
    assert not logs.find("backtracks catastrophically", "WARNING")
    config = write_config(tmp_path, keywords=rules(BACKTRACKS))
    assert not reload_app(server.app, config).error
    assert logs.find("rule '^(\\\\w+\\\\s?)+$'", "WARNING")
    assert reply_text(send(server, content="a" * 26 + "#")) == NEXT


def test_risky_lists_only_regex_rules() -> None:
    found = risky(
        [
            KeywordSettings(match="(a+)+", reply="x"),  # exact: a literal text, never a regex
            KeywordSettings(match=["ok", "(a+)+"], mode="regex", reply="x"),
        ]
    )
    assert found == [found[0]] and found[0].startswith("rule 'ok': '(a+)+' repeats")


@pytest.mark.parametrize(
    ("pattern", "nested"),
    [
        pytest.param(BACKTRACKS, True, id="issue"),
        pytest.param(r"(a+)+", True, id="plus-plus"),
        pytest.param(r"(a*)*b", True, id="star-star"),
        pytest.param(r"(?:x+y)*", True, id="non-capturing"),
        pytest.param(r"(?P<n>a+)+", True, id="named"),
        pytest.param(r"(a{2,})*", True, id="open-range-inside"),
        pytest.param(r"(a+){2,}", True, id="open-range-outside"),
        pytest.param(r"((a+)b)+", True, id="deeper"),
        pytest.param(r"^v\d+$", False, id="plain"),
        pytest.param(r"(\d{1,3}\.){3}\d+", False, id="bounded"),
        pytest.param(r"(a+)?", False, id="optional"),
        pytest.param(r"(?>a+)+", False, id="atomic"),
        pytest.param(r"(a++)+", False, id="possessive"),
        pytest.param(r"[(]a+[)]+", False, id="class"),
        pytest.param(r"\(a+\)+", False, id="escaped"),
        pytest.param(r"(ab){2}", False, id="fixed"),
    ],
)
def test_nested_repeats_are_found(pattern: str, nested: bool) -> None:
    assert _shape(pattern).nested is nested
