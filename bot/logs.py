"""loguru set-up: human or JSON lines, an optional rotated file, uvicorn's logs routed in."""

from __future__ import annotations

import logging
import re
import sys

from loguru import logger

from bot.config import LogSettings

FORMAT = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <7} | {message}"
# Request lines (uvicorn's access log) must not carry WeChat's signatures or whole link tokens.
_SIGNATURES = re.compile(r"(signature=)[^&\s\"]*", re.IGNORECASE)
_TOKENS = re.compile(r"(/d/)[^/\s\"?#]+")
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
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, redact(record.getMessage()))


def setup_logging(settings: LogSettings) -> None:
    """Replace loguru's default sink with the configured ones; idempotent."""
    logger.remove()
    # diagnose=False: a traceback must not print local variables (keys, tokens) and costs ~20 ms.
    logger.add(
        sys.stderr,
        level=settings.level,
        format=FORMAT,
        serialize=settings.json_lines,
        diagnose=False,
    )
    if settings.file is not None:
        settings.file.parent.mkdir(parents=True, exist_ok=True)
        logger.add(
            settings.file,
            level=settings.level,
            format=FORMAT,
            serialize=settings.json_lines,
            rotation="20 MB",
            retention=10,
            enqueue=True,
            encoding="utf-8",
            diagnose=False,
        )
    # Records below the level are dropped by `logging` itself, before any formatting; at level 0
    # uvicorn also wraps the app in its TRACE message logger, which cost half the webhook's time.
    level = logger.level(settings.level).no
    logging.basicConfig(handlers=[InterceptHandler()], level=level, force=True)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers = [InterceptHandler()]
        logging.getLogger(name).propagate = False
        logging.getLogger(name).setLevel(level)
