"""The bench's peers and its tables (issue #12): the seed-style bot for real, the ratio columns."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.load import keyword_answer
from bench.peers.seed import create_seed_app, serializer
from bench.report import Results, Target, markdown, summarize
from bench.servers import SECRET, peer_env
from tests.conftest import start_server


@pytest.fixture
def seed_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    files = tmp_path / "files"
    files.mkdir()
    (files / "1KB.bin").write_bytes(bytes(range(256)) * 4)
    for name, value in peer_env(0, files).items():
        monkeypatch.setenv(name, value)
    server, thread, url = start_server(create_seed_app())
    yield url
    server.should_exit = True
    thread.join(10)


@pytest.mark.parametrize("encrypt", [False, True], ids=["plaintext", "safe"])
def test_seed_bot_answers_the_keyword_with_a_link_that_downloads(
    seed_url: str, encrypt: bool
) -> None:
    """Issue #12 deliver 1: the seed-style peer answers the bench's keyword with a working link."""
    reply = keyword_answer(seed_url, encrypt=encrypt)
    link = re.search(r"/d/([\w.-]+)", reply)
    assert link is not None, reply
    response = httpx.get(seed_url + link.group(0), timeout=10)
    assert response.status_code == 200
    assert response.content == bytes(range(256)) * 4
    assert serializer(SECRET).loads(link.group(1)) == "1KB.bin"


def test_seed_bot_refuses_a_forged_push(seed_url: str) -> None:
    """Issue #12 deliver 1: the seed bot checks signatures (wechatpy.utils.check_signature)."""
    response = httpx.post(
        seed_url + "/wechat",
        params={"signature": "0" * 40, "timestamp": "1", "nonce": "n"},
        content=b"<xml/>",
        timeout=10,
    )
    assert response.status_code == 403


def results() -> Results:
    r = Results(references={"32 × 1 MB": "nginx", "webhook": "bare"})
    for server, rps, p99 in [("nginx", 3000, 20), ("seed", 800, 40), ("direct", 1600, 30)]:
        r.add("32 × 1 MB", "wrk -c32", server, "req/s", rps)
        r.add("32 × 1 MB", "wrk -c32", server, "p99 ms", p99)
    return r


def test_table_has_a_vs_seed_column_next_to_vs_nginx() -> None:
    """Issue #12 deliver 1: the results table gains a "vs seed bot" column next to "vs nginx"."""
    text = markdown(summarize(results(), [], {**MACHINE}))
    header = next(line for line in text.splitlines() if line.startswith("| group"))
    assert header.endswith("| vs nginx / bare | vs seed |")
    row = next(line for line in text.splitlines() if "| direct | req/s |" in line)
    assert row.endswith("| 0.53x nginx | 2.00x |")


@pytest.mark.parametrize(
    ("target", "measured", "met"),
    [
        pytest.param(Target("t", ("32 × 1 MB", "wrk -c32", "direct", "req/s"), 0.5), 0.533, True),
        pytest.param(
            Target("t", ("32 × 1 MB", "wrk -c32", "direct", "req/s"), 1.5, "seed"), 2.0, True
        ),
        pytest.param(
            Target("t", ("32 × 1 MB", "wrk -c32", "direct", "p99 ms"), 1.0, "seed", "<="),
            0.75,
            True,
        ),
        pytest.param(
            Target("t", ("32 × 1 MB", "wrk -c32", "direct", "p99 ms"), 25, None, "<"), 30, False
        ),
    ],
)
def test_targets_compare_with_nginx_the_seed_bot_or_a_bound(
    target: Target, measured: float, met: bool
) -> None:
    """Issue #12 deliver 2: a target is a ratio to nginx or the seed bot, or an absolute bound."""
    value, ok = results().check(target)
    assert value == pytest.approx(measured, abs=0.001)
    assert ok is met


MACHINE = {
    "date": "2026-12-01 10:00 UTC",
    "cores": 2,
    "cpu": "test",
    "kernel": "test",
    "rounds": 1,
    "workers": 2,
    "versions": {"bot": "0"},
}
