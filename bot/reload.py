"""Hot reload: SIGHUP (or ``bot reload``) re-reads rules, replies and the file catalogue.

Each worker reloads in its own process: the new rules are swapped in as a whole, requests in
flight finish with the old ones, and a config that fails validation is logged and ignored. With
``--workers N`` the supervisor passes SIGHUP on to every worker (uvicorn's own supervisor would
replace the workers one by one, each waiting for its downloads to finish).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from loguru import logger
from uvicorn.supervisors import Multiprocess

from bot.clock import Clock
from bot.config import load_settings
from bot.delivery import Delivery, build_catalog
from bot.delivery.catalog import Catalog
from bot.delivery.gate import download_limits
from bot.errors import ConfigError
from bot.keywords.patterns import risky
from bot.keywords.router import Router
from bot.links import LinkSigner

if TYPE_CHECKING:
    from fastapi import FastAPI

    from bot.config import Settings
    from bot.web.deps import Services


@dataclasses.dataclass(frozen=True, slots=True)
class RuleParts:
    """What a reload replaces: everything built from rules, replies and the catalogue."""

    router: Router
    signer: LinkSigner
    catalog: Catalog
    keyword_for_file: dict[str, str]
    sendable: frozenset[str]  # rule names a follower can type (not menu keys or scenes)


def rule_parts(
    settings: Settings,
    clock: Clock,
    delivery: Delivery | None = None,
    keep_files: frozenset[str] = frozenset(),
) -> RuleParts:
    """Router, signer and catalogue for these rules; links to ``keep_files`` keep working."""
    keyword_for_file: dict[str, str] = {}  # what pages tell a follower to send again
    for keyword in sorted(settings.keywords, key=lambda k: not k.aliases):  # typable ones first
        for name in keyword.file_list:
            keyword_for_file.setdefault(name, keyword.aliases[0] if keyword.aliases else "")
    files = set(keyword_for_file) | keep_files
    signer = LinkSigner(
        settings.links.secret_keys,
        settings.links.ttl_seconds,
        files=files,
        keywords=[rule.name for rule in settings.keywords],  # what Router.issue signs
        max_clock_skew=settings.wechat.max_clock_skew,
        legacy_limits=download_limits(settings),  # tokens issued before links carried a limit
        clock=clock,
    )
    router = Router(
        settings.keywords,
        settings.replies,
        signer,
        settings.server.public_url,
        max_downloads=settings.links.max_downloads,
        clock=clock,
        files=settings.files.dir,
    )
    sendable = frozenset(rule.name for rule in settings.keywords if rule.aliases)
    catalog = (
        Catalog(settings.files.dir, files)
        if delivery is None
        else build_catalog(settings, delivery, files)
    )
    return RuleParts(router, signer, catalog, keyword_for_file, sendable)


def reload_app(app: FastAPI, config: Path) -> bool:
    """Swap in the rules of ``config``; False (logged, old rules kept) if it fails validation."""
    old: Services = app.state.services
    try:
        fresh = load_settings(config)
    except ConfigError as exc:
        logger.error("reload refused, running config kept: {}", exc)
        return False
    settings = old.settings.model_copy(
        update={"keywords": fresh.keywords, "replies": fresh.replies, "files": fresh.files}
    )
    parts = rule_parts(settings, old.clock, old.delivery, old.catalog.keys)
    old.answerer.router = parts.router  # limits are signed into each link: the gate keeps none
    app.state.services = dataclasses.replace(
        old,
        settings=settings,
        signer=parts.signer,
        catalog=parts.catalog,
        keyword_for_file=parts.keyword_for_file,
        sendable=parts.sendable,
    )
    logger.info("reloaded {}: {} rule(s)", config, len(settings.keywords))
    for warning in risky(settings.keywords):
        logger.warning(warning)
    return True


def listen_for_reload(app: FastAPI, config: Path | None) -> None:
    """Reload on SIGHUP (only where signals can be handled: the main thread of a server)."""
    if config is None or threading.current_thread() is not threading.main_thread():
        return
    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload_app, app, config)


def pid_file(config: Path) -> Path:
    """Where ``bot serve`` notes its process id, next to the config it serves."""
    config = config.resolve()
    return config.with_name(config.name + ".pid")


def note_server(config: Path, url: str = "") -> None:
    """Record this process, and the address it answers at, as the server for ``config`` (not
    where the config's folder is read-only, as in docker/compose.yaml: send SIGHUP instead)."""
    try:
        pid_file(config).write_text(f"{os.getpid()}\n{url}\n", encoding="utf-8")
    except OSError as exc:
        logger.warning(
            "cannot note this server in {} ({}): `bot reload` will not find it; send SIGHUP",
            pid_file(config),
            exc.strerror,
        )


def forget_server(config: Path) -> None:
    """Remove the note if it is still ours."""
    path = pid_file(config)
    if running_server(config) == os.getpid():
        path.unlink(missing_ok=True)


def _note(config: Path) -> tuple[int, str] | None:
    """The live server's pid and address ("" when it noted none) from the note, if any."""
    try:
        words = pid_file(config).read_text(encoding="utf-8").split()
        pid = int(words[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return pid, words[1] if len(words) > 1 else ""


def running_server(config: Path) -> int | None:
    """The pid of the live ``bot serve`` for ``config``, if there is one."""
    note = _note(config)
    return note[0] if note else None


def served_url(config: Path) -> str:
    """Where the live ``bot serve`` for ``config`` answers (``http://127.0.0.1:8005``), or ""."""
    note = _note(config)
    return note[1] if note else ""


class ReloadingSupervisor(Multiprocess):
    """uvicorn's worker supervisor, but SIGHUP makes each worker reload in place."""

    def handle_hup(self) -> None:
        logger.info("SIGHUP: asking {} worker(s) to reload", len(self.processes))
        for process in self.processes:
            if process.pid is not None:
                os.kill(process.pid, signal.SIGHUP)
