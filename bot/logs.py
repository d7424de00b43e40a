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
    logger.add(sys.stderr, level=settings.level, format=FORMAT, serialize=settings.json_lines)
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
        )
    logging.basicConfig(handlers=[_Intercept()], level=0, force=True)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers = [_Intercept()]
        logging.getLogger(name).propagate = False
