"""Log fields as one line each: control characters escaped (no forged lines), readable times."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from bot.clock import CHINA

# Everything that can end or rewrite a line on a terminal or in a file, except the tab.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 256 else f"\\u{ord(char):04x}")


def escape_controls(text: str) -> str:
    """``text`` with newlines and other control characters written as ``\\n``, ``\\x1b``…"""
    return _CONTROL.sub(_escape, text) if _CONTROL.search(text) else text


def one_line(record: Any) -> None:
    """loguru patcher: the formatted message of every record, escaped (tracebacks stay apart)."""
    record["message"] = escape_controls(record["message"])


def readable(epoch: float) -> str:
    """An epoch time as Beijing time with its offset, e.g. ``2026-12-01 17:30:05+08:00``."""
    return datetime.fromtimestamp(epoch, CHINA).isoformat(sep=" ", timespec="seconds")
