"""loguru set-up: human or JSON lines, an optional rotated file, uvicorn's logs routed in."""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from loguru import logger

from bot.config import LogSettings
from bot.logs.batch import BatchedSink
from bot.logs.collect import ENV, LogCollector, SocketSink
from bot.logs.intended import expected
from bot.logs.safe import one_line

FORMAT = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <7} | {message}"
KEEP_FILES = 10  # rotated log files kept besides the current one
# Request lines (uvicorn's access log) must not carry WeChat's signatures or whole link tokens.
_SIGNATURES = re.compile(r"(signature=)[^&\s\"]*", re.IGNORECASE)
_TOKENS = re.compile(r"(/d/[/\s]*)[^/\s\"?#]+")  # also /d//<token> (a damaged link)
# A whole token anywhere else in a line (payload.timestamp.signature), e.g. after another "/".
_TOKEN_SHAPES = re.compile(r"[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{16,}")
_CODES = re.compile(r"(/k/|[?&]code=)([^/\s\"?&#]{0,2})[^/\s\"?&#]*")


def redact(text: str) -> str:
    """Text with signatures, tokens (``/d/<token>`` or token-shaped) and pick-up codes (but 2
    characters) masked."""
    masked = _TOKEN_SHAPES.sub("…", _TOKENS.sub(r"\1…", _SIGNATURES.sub(r"\1…", text)))
    return _CODES.sub(r"\1\2…", masked)


class InterceptHandler(logging.Handler):
    """Hands standard-library records (uvicorn's) to loguru, redacted."""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        if expected(message):  # a download the bot cut off itself, its reason logged already
            level = "DEBUG"
        logger.opt(depth=6, exception=record.exc_info).log(level, redact(message))


def setup_logging(settings: LogSettings, *, collector: LogCollector | None = None) -> None:
    """Replace loguru's default sink with the configured ones; idempotent.

    With ``--workers N`` the file has one writer: the parent passes its ``collector``, and a
    worker (``$BOT_LOG_SOCKET`` set) sends its lines to it instead of opening the file.
    """
    logger.remove()
    logger.configure(patcher=one_line)  # a newline in any field cannot forge a line
    # diagnose=False: a traceback must not print local variables (keys, tokens) and costs ~20 ms.
    common: dict[str, Any] = {
        "level": settings.level,
        "format": FORMAT,
        "serialize": settings.json_lines,
        "diagnose": False,
    }
    # Under load lines are written in batches (bot.logs.batch): a write and a flush per line
    # cost as much as the line itself. At DEBUG and TRACE every line is written as it comes.
    batched = logger.level(settings.level).no > logger.level("DEBUG").no
    stderr = BatchedSink(sys.stderr.write, sys.stderr.flush) if batched else sys.stderr
    logger.add(stderr, **common)
    if settings.file is not None:
        forward = os.environ.get(ENV)
        if collector is not None:
            logger.add(collector.write, **common)
        elif forward:
            to_parent = SocketSink(forward)
            sink = BatchedSink(to_parent.write, close=to_parent.stop) if batched else to_parent
            logger.add(sink, **common)
        else:
            settings.file.parent.mkdir(parents=True, exist_ok=True)
            logger.add(
                settings.file,
                rotation=settings.file_max_bytes,
                retention=KEEP_FILES,
                enqueue=True,
                encoding="utf-8",
                **common,
            )
    # Records below the level are dropped by `logging` itself, before any formatting; at level 0
    # uvicorn also wraps the app in its TRACE message logger, which cost half the webhook's time.
    level = logger.level(settings.level).no
    logging.basicConfig(handlers=[InterceptHandler()], level=level, force=True)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers = [InterceptHandler()]
        logging.getLogger(name).propagate = False
        logging.getLogger(name).setLevel(level)
    if level > logger.level("DEBUG").no:
        # uvicorn's line per request only at DEBUG, in every worker: with no handler, uvicorn
        # does not even format it (it checks hasHandlers() per connection).
        logging.getLogger("uvicorn.access").handlers = []


@contextmanager
def one_log_writer(settings: LogSettings) -> Iterator[None]:
    """Around ``uvicorn.run(workers=N)``: this process writes the log file, workers send lines."""
    if settings.file is None:
        setup_logging(settings)
        yield
        return
    collector = LogCollector(settings.file, max_bytes=settings.file_max_bytes, keep=KEEP_FILES)
    os.environ[ENV] = collector.address  # inherited by the worker processes
    setup_logging(settings, collector=collector)
    try:
        yield
    finally:
        del os.environ[ENV]
        logger.remove()
        collector.close()  # every worker has exited: read their lines to the end
