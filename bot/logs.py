"""loguru set-up: human or JSON lines, an optional rotated file, uvicorn's logs routed in."""

from __future__ import annotations

import logging
import sys

from loguru import logger

from bot.config import LogSettings

FORMAT = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <7} | {message}"


class _Intercept(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage())


def setup_logging(settings: LogSettings) -> None:
    """Replace loguru's default sink with the configured ones; idempotent."""
    logger.remove()
    # diagnose=False: a traceback must not print local variables (secrets) and costs ~20 ms.
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
    logging.basicConfig(handlers=[_Intercept()], level=level, force=True)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers = [_Intercept()]
        logging.getLogger(name).propagate = False
        logging.getLogger(name).setLevel(level)
