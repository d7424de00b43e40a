"""Waiting on a condition instead of sleeping a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(probe: Callable[[], T], timeout: float = 10.0, interval: float = 0.02) -> T:
    """Call ``probe`` until its answer is truthy or ``timeout`` seconds pass; return the last answer.

    The caller asserts on the answer, so a timeout fails with the test's own message."""
    deadline = time.monotonic() + timeout
    while not (answer := probe()) and time.monotonic() < deadline:
        time.sleep(interval)
    return answer
