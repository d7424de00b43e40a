"""One stack for a whole `make test-deploy` run: up before the first check, down after the last."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.stack import Stack, environment_ready
from tests.conftest import DEMO_NAME, free_port, write_config

DEDUP_NAME = "去重 dedup.txt"
LIMITED = "限量"
DEDUP = "去重"
BAD_TOKENS_PER_MINUTE = 3
LAST_RUN = Path(__file__).with_name("last-run.log")  # the containers' logs of the last run


def stack_config(folder: Path, url: str) -> Path:
    """The stack's config.toml: the demo keyword, a one-download one, one for the dedup check."""
    return write_config(
        folder,
        server={"public_url": url},
        limits={"bad_tokens_per_ip_per_minute": BAD_TOKENS_PER_MINUTE},
        keywords=[
            {"match": "芝麻开门", "file": DEMO_NAME},
            {"match": LIMITED, "file": DEMO_NAME, "max_downloads": 1},
            {"match": DEDUP, "file": DEDUP_NAME},
        ],
    )


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    environment_ready()
    with tempfile.TemporaryDirectory(prefix="wlb-deploy-") as tmp:
        running = Stack(Path(tmp), f"wlbdeploy{os.getpid()}", free_port(), free_port())
        running.prepare(lambda folder: stack_config(folder, running.url))
        (running.files / DEDUP_NAME).write_text("dedup check\n", encoding="utf-8")
        (running.files / DEDUP_NAME).chmod(0o644)
        try:
            running.up()
            running.wait_healthy()
            yield running
        finally:
            LAST_RUN.write_text(running.report(), encoding="utf-8")
            print(f"container logs: {LAST_RUN}")
            running.down()
