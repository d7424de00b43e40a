"""Issue #20: log lines written in batches under load, at once when idle, urgent or stopped."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from loguru import logger

from bot.logs.batch import BatchedSink
from tests.helpers.waiting import wait_for


@pytest.fixture
def writes() -> Iterator[list[str]]:
    """Each write the sink made (one string per batch), through loguru as setup_logging adds it."""
    out: list[str] = []
    sink = BatchedSink(out.append, interval=1.0)
    sink_id = logger.add(
        sink, format="{message}", level="INFO", filter=lambda r: "batch" in r["extra"]
    )
    yield out
    logger.remove(sink_id)


def log(text: str, level: str = "INFO") -> None:
    logger.bind(batch=True).log(level, text)


def test_an_idle_sink_writes_each_line_at_once(writes: list[str]) -> None:
    log("first")
    assert writes == ["first\n"]  # loguru ends every line


def test_a_burst_is_one_write_from_the_sink_thread(writes: list[str]) -> None:
    log("first")  # written at once: the sink was idle
    for n in range(50):
        log(f"line {n}")
    assert writes == ["first\n"]  # the burst waits for the sink's thread
    wait_for(lambda: len(writes) == 2, timeout=5)
    assert writes[1] == "".join(f"line {n}\n" for n in range(50))


def test_a_warning_takes_what_waits_with_it(writes: list[str]) -> None:
    log("first")
    log("waiting")
    log("trouble", "WARNING")
    assert writes == ["first\n", "waiting\ntrouble\n"]


def test_removing_the_sink_writes_what_waits() -> None:
    out: list[str] = []
    sink_id = logger.add(
        BatchedSink(out.append, interval=60),
        format="{message}",
        filter=lambda r: "batch" in r["extra"],
    )
    log("first")
    log("last")
    logger.remove(sink_id)
    assert out == ["first\n", "last\n"]
