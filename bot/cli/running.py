"""The running ``bot serve``: its note beside the config, its server and its worker supervisor.

The note (``config.toml.pid``) names the process and when it started (boot id and start time
from /proc), so ``bot reload`` never signals a process that merely reuses the number after a
crash or a reboot. It is removed when the server stops cleanly.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import uvicorn
from loguru import logger
from uvicorn.supervisors import Multiprocess

from bot.cli.common import local_url
from bot.config import Settings, config_text
from bot.errors import ConfigError
from bot.reload import WorkerStart, forget_outcome, log_outcome, reloaded, write_outcome

PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class Note:
    """What ``config.toml.pid`` says: the server's process, when it started, where it listens."""

    pid: int
    boot: str  # /proc/sys/kernel/random/boot_id: a note from before a reboot names nobody
    started: str  # field 22 of /proc/PID/stat: a reused pid has another start time
    host: str = ""
    port: int = 0

    def where(self) -> str:
        """``pid 123 on 127.0.0.1:8000`` for messages."""
        return f"pid {self.pid} on {self.host}:{self.port}"


def pid_file(config: Path) -> Path:
    """Where ``bot serve`` notes its process, next to the config it serves."""
    config = config.resolve()
    return config.with_name(config.name + ".pid")


def identity(pid: int, proc: Path = PROC) -> tuple[str, str] | None:
    """(boot id, start time) of a live process, or None (gone, or no /proc on this system)."""
    try:
        boot = (proc / "sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
        stat = (proc / str(pid) / "stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # the name may hold spaces and parentheses
    return (boot, fields[19]) if len(fields) > 19 else None


def serves(pid: int, proc: Path = PROC) -> bool:
    """True when the process's command line is a ``bot serve``."""
    try:
        argv = (proc / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"serve" in argv


def note_server(config: Path, host: str, port: int) -> None:
    """Record this process as the server for ``config`` (not where the config's folder is
    read-only, as in docker/compose.yaml: then send SIGHUP to the process instead)."""
    pid = os.getpid()
    me = identity(pid)
    note = Note(pid, *(me or ("", "")), host=host, port=port)
    path = pid_file(config)
    try:
        partial = path.with_name(path.name + ".new")
        partial.write_text(json.dumps(asdict(note)) + "\n", encoding="ascii")
        partial.replace(path)
    except OSError as exc:
        logger.warning(
            "cannot note this server in {} ({}): `bot reload` will not find it; send SIGHUP",
            path,
            exc.strerror,
        )


def noted(config: Path) -> Note | None:
    """The note as written (maybe stale), or None when there is none or it is unreadable."""
    try:
        fields: Any = json.loads(pid_file(config).read_text(encoding="ascii"))
        return Note(**fields) if isinstance(fields, dict) else Note(int(fields), "", "")
    except (OSError, ValueError, TypeError):
        return None


def running_server(config: Path) -> Note | None:
    """The note, if the process it names is the very ``bot serve`` that wrote it."""
    note = noted(config)
    if note is None or not note.boot or identity(note.pid) != (note.boot, note.started):
        return None
    return note if serves(note.pid) else None


def served_url(config: Path) -> str:
    """Where the live ``bot serve`` for ``config`` answers (``http://127.0.0.1:8005``), or ""."""
    note = running_server(config)
    return local_url(note.host, note.port) if note is not None and note.port else ""


def forget_server(config: Path) -> None:
    """Remove the note (and the last reload's outcome) if they are this process's."""
    note = noted(config)
    if note is not None and note.pid == os.getpid():
        pid_file(config).unlink(missing_ok=True)
        forget_outcome(config)


class NotedServer(uvicorn.Server):
    """uvicorn's server, calling ``on_stop`` before it re-raises the signal that stopped it
    (uvicorn ends a SIGTERM-stopped process with that signal: no ``finally`` runs after it)."""

    def __init__(self, config: uvicorn.Config, on_stop: Callable[[], None]) -> None:
        super().__init__(config)
        self.on_stop = on_stop

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """uvicorn's signal handling, with ``on_stop`` run first on the way out."""
        with super().capture_signals():
            try:
                yield
            finally:
                self.on_stop()


class ReloadingSupervisor(Multiprocess):
    """uvicorn's worker supervisor, but SIGHUP makes each worker reload in place; the
    supervisor checks the config against what it started with and reports the outcome."""

    def __init__(
        self, config: uvicorn.Config, sockets: Any, *, settings: Settings, start: WorkerStart
    ) -> None:
        super().__init__(config, sockets)
        self.settings, self.start = settings, start

    def handle_hup(self) -> None:
        """Check, log and note the outcome, then pass SIGHUP on to every worker."""
        path = self.start.path
        try:
            text = config_text(path)
        except ConfigError:
            text = None  # unreadable: reloaded() reads it again and names the problem
        settings, outcome = reloaded(self.settings, path, text)
        log_outcome(path, outcome)
        write_outcome(path, outcome)
        if outcome.error or settings is None:
            return  # every worker would refuse it too
        self.settings = settings
        self.start.applied = text  # what a worker started from now on applies
        logger.info("SIGHUP: asking {} worker(s) to reload", len(self.processes))
        for process in self.processes:
            if process.pid is not None:
                os.kill(process.pid, signal.SIGHUP)
