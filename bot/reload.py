"""Hot reload: SIGHUP (or ``bot reload``) re-reads rules, replies and the file catalogue.

Each worker reloads in its own process: the new rules are swapped in as a whole, requests in
flight finish with the old ones, and a config that fails validation is logged and ignored. With
``--workers N`` the supervisor (``bot.cli.running``) passes SIGHUP on to every worker (uvicorn's
own supervisor would replace the workers one by one, each waiting for its downloads to finish).
What a reload applies is ``LIVE``; every other changed key is named, in the log and in the
outcome the server notes beside the config for ``bot reload`` (the server, not ``bot reload``,
compares: only it knows the settings it runs with, ``BOT_*`` variables included).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger

from bot.clock import Clock
from bot.config import load_settings
from bot.delivery import Delivery, build_catalog
from bot.delivery.catalog import Catalog
from bot.delivery.records import download_limits
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


# What a reload applies: a key listed here, or any key under it. Every other changed key is
# named as waiting for a restart (the store, the WeChat codec, limits, slots, logs, the mode).
LIVE = (
    "keywords",
    "replies",
    "menu",  # read by `bot menu push`, never by the server
    "files.dir",
    "links.ttl_seconds",
    "links.max_downloads",
    "links.landing",
    "server.public_url",
    "server.account_name",
    "state.keep_days",
)


@dataclasses.dataclass(frozen=True, slots=True)
class Reloaded:
    """What one reload did: the rules now in force and the changed keys that wait for a
    restart, or why the config was refused (the running one kept)."""

    rules: int = 0
    restart: tuple[str, ...] = ()
    error: str = ""
    nonce: str = dataclasses.field(default_factory=lambda: secrets.token_hex(6))

    def to_json(self) -> str:
        """One JSON object (the outcome file beside the config)."""
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Reloaded:
        """The outcome ``to_json`` wrote."""
        fields = json.loads(text)
        return cls(fields["rules"], tuple(fields["restart"]), fields["error"], fields["nonce"])


def _leaves(value: object, key: str = "") -> dict[str, object]:
    """``{"links.ttl_seconds": 600, ...}``: every value of a dump by its dotted key."""
    if not isinstance(value, dict):
        return {key: value}
    leaves: dict[str, object] = {}
    for name, item in value.items():
        leaves.update(_leaves(item, f"{key}.{name}" if key else str(name)))
    return leaves


def changed_keys(old: Settings, new: Settings) -> list[str]:
    """The dotted keys whose values differ (a list, such as ``keywords``, is one value)."""
    before, after = _leaves(old.model_dump()), _leaves(new.model_dump())
    missing = object()
    return sorted(
        k for k in before.keys() | after.keys() if before.get(k, missing) != after.get(k, missing)
    )


def is_live(key: str) -> bool:
    """True when a reload applies ``key``."""
    return any(key == live or key.startswith(live + ".") for live in LIVE)


def apply_live(running: Settings, fresh: Settings) -> Settings:
    """``running`` with every ``LIVE`` key taken from ``fresh``."""
    updates: dict[str, Any] = {}
    for key in LIVE:
        section, _, name = key.partition(".")
        if not name:
            updates[section] = getattr(fresh, section)
            continue
        current = updates.get(section, getattr(running, section))
        value = getattr(getattr(fresh, section), name)
        updates[section] = current.model_copy(update={name: value})
    return running.model_copy(update=updates)


def reloaded(
    running: Settings, config: Path, text: str | None = None
) -> tuple[Settings | None, Reloaded]:
    """The settings to run with after reading ``config`` (or its ``text``, read before; None:
    refused), and the outcome."""
    try:
        fresh = load_settings(config, text=text)
    except ConfigError as exc:
        return None, Reloaded(error=str(exc))
    restart = tuple(key for key in changed_keys(running, fresh) if not is_live(key))
    return apply_live(running, fresh), Reloaded(len(fresh.keywords), restart)


@dataclasses.dataclass(slots=True)
class WorkerStart:
    """What ``bot serve --workers N`` hands each worker it starts: the config text the
    supervisor started with and the text of its last reload that applied. A worker started
    after the file was edited (a late one, or one uvicorn starts again after a crash) so runs
    what its siblings run, not the edited file. uvicorn's supervisor pickles this to each new
    worker through a pipe: never the environment (readable in /proc/<pid>/environ, inherited
    by every child a worker starts) nor a file, for the text holds the secrets."""

    path: Path
    # The texts hold the secrets: never in a repr (a log line, a traceback's locals).
    started: str | None = dataclasses.field(repr=False)  # None: no config file
    applied: str | None = dataclasses.field(default=None, repr=False)

    def settings(self) -> Settings:
        """What a reload cannot change as the supervisor started, the rest as its last applied
        reload (the files were checked by the supervisor: a worker never exits over one gone
        since, it answers 404 for it as its siblings do)."""
        settings = load_settings(self.path, text=self.started, check_files=False)
        if self.applied is not None:
            fresh = load_settings(self.path, text=self.applied, check_files=False)
            settings = apply_live(settings, fresh)
        return settings


def reload_app(app: FastAPI, config: Path) -> Reloaded:
    """Swap in what ``config`` changes that can change while running; the outcome is logged
    (and noted beside the config by the process ``bot reload`` signals)."""
    old: Services = app.state.services
    settings, outcome = reloaded(old.settings, config)
    if settings is not None:
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
        for warning in risky(settings.keywords):
            logger.warning(warning)
    log_outcome(config, outcome)
    if getattr(app.state, "reports_reloads", False):
        write_outcome(config, outcome)
    return outcome


def log_outcome(config: Path, outcome: Reloaded) -> None:
    """One line: refused (error), applied but some keys wait for a restart (warning), or done."""
    if outcome.error:
        logger.error("reload refused, running config kept: {}", outcome.error)
    elif outcome.restart:
        logger.warning(
            "reloaded {}: {} rule(s); changed but not applied until a restart: {}",
            config,
            outcome.rules,
            ", ".join(outcome.restart),
        )
    else:
        logger.info("reloaded {}: {} rule(s)", config, outcome.rules)


def outcome_file(config: Path) -> Path:
    """Where the server notes its last reload's outcome, for ``bot reload`` to read."""
    config = config.resolve()
    return config.with_name(config.name + ".reloaded")


def write_outcome(config: Path, outcome: Reloaded) -> None:
    """Note the outcome beside the config (whole or not at all); a read-only folder is skipped."""
    path = outcome_file(config)
    partial = path.with_name(path.name + ".new")
    try:
        partial.write_text(outcome.to_json() + "\n", encoding="utf-8")
        partial.replace(path)
    except OSError:
        return  # no note (read-only folder): the log says it all


def read_outcome(config: Path) -> Reloaded | None:
    """The last outcome noted beside the config, if any."""
    try:
        return Reloaded.from_json(outcome_file(config).read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def forget_outcome(config: Path) -> None:
    """Remove the outcome note (the server stopped)."""
    outcome_file(config).unlink(missing_ok=True)


def listen_for_reload(app: FastAPI, config: Path | None) -> None:
    """Reload on SIGHUP (only where signals can be handled: the main thread of a server)."""
    if config is None or threading.current_thread() is not threading.main_thread():
        return
    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload_app, app, config)
