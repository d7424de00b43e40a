"""`bot serve` and `bot reload`: run the bot, and make a running one re-read its config."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

import typer
import uvicorn

from bot.cli.common import (
    ConfigOpt,
    checked_files,
    config_text_of,
    local_url,
    settings_of,
    usage_error,
)
from bot.config import Settings, config_path

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})

if TYPE_CHECKING:
    from bot.reload import Reloaded

RELOAD_WAIT = 15.0  # seconds `bot reload` waits for the server's outcome (workers: ~0.5 s)
RESTART_NEEDED = 3  # `bot reload`'s exit status when some changed keys wait for a restart


def serve(
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option(help="overrides server.host")] = None,
    port: Annotated[int | None, typer.Option(help="overrides server.port")] = None,
    workers: Annotated[int, typer.Option(min=1, help="worker processes")] = 1,
) -> None:
    """Run the bot: answer WeChat and serve the download links."""
    from bot.app import WorkerApp, create_app, settle_memory
    from bot.cli.running import (
        NotedServer,
        ReloadingSupervisor,
        forget_server,
        note_server,
        running_server,
    )
    from bot.logs.setup import one_log_writer, setup_logging
    from bot.reload import WorkerStart
    from bot.web.edge import uvicorn_options

    path = config_path(config).resolve()
    text = config_text_of(path)  # read once: what the workers start from too
    settings = settings_of(path, text=text)
    other = running_server(path)
    if other is not None:  # two servers, one note: `bot reload` could reach only one of them
        typer.secho(
            f"error: {path} is already served ({other.where()}); `bot reload` reaches that one. "
            "Stop it first, or give a second instance a config file of its own.",
            err=True,
            fg=typer.colors.RED,
        )
        raise typer.Exit(1)
    bind_host = host or settings.server.host
    bind_port = port or settings.server.port
    _check_free(bind_host, bind_port)
    configured_url = settings.server.public_url
    settings = _links_follow_port(settings, bind_port)
    setup_logging(settings.log)
    checked_files(settings)  # every keyword's file (s3: object) is there, or exit 2
    from loguru import logger

    from bot.cli.wechat import menu_warnings
    from bot.keywords.patterns import risky

    for warning in risky(settings.keywords) + menu_warnings(settings):
        logger.warning(warning)
    common = {"host": bind_host, "port": bind_port, **uvicorn_options(settings)}
    url = local_url(bind_host, bind_port)
    typer.echo(f"serving {url} (links: {settings.server.public_url}/d/…)", err=True)
    note_server(path, bind_host, bind_port)  # `bot reload` and `bot simulate` find it through it
    try:
        if workers == 1:
            app = create_app(settings, config=path)
            app.state.reports_reloads = True  # this process is the one `bot reload` signals
            settle_memory()
            server = NotedServer(uvicorn.Config(app, **common), lambda: forget_server(path))
            with contextlib.suppress(KeyboardInterrupt):
                server.run()
            if not server.started:
                raise typer.Exit(3)  # uvicorn's STARTUP_FAILURE (the port is taken, say)
            return
        # Worker processes rebuild the same settings from the same text (and these overrides),
        # even one started after the file was edited (bot.reload.WorkerStart).
        os.environ["BOT_CONFIG"] = str(path)
        start = WorkerStart(path, text)
        if settings.server.public_url != configured_url:  # moved by --port
            os.environ["BOT_SERVER__PUBLIC_URL"] = settings.server.public_url
        supervised = uvicorn.Config(WorkerApp(start), factory=True, workers=workers, **common)
        sockets = [supervised.bind_socket()]
        with one_log_writer(settings.log):  # workers send their lines; this process writes them
            ReloadingSupervisor(supervised, sockets, settings=settings, start=start).run()
    finally:
        forget_server(path)


def _check_free(host: str, port: int) -> None:
    """Exit 2 naming a free port when ``host:port`` is taken (instead of uvicorn's Errno 98)."""
    problem = _bind_problem(host, port)
    if problem is None:
        return
    if problem.errno != errno.EADDRINUSE:
        raise usage_error(f"cannot listen on {host}:{port}: {problem.strerror}")
    free = next((p for p in range(port + 1, 65536) if not _bind_problem(host, p)), 0)
    raise usage_error(
        f"port {port} on {host} is taken (another `bot serve`, or another program); "
        f"use a free one: `bot serve --port {free}` (or `make run PORT={free}`)"
    )


def _bind_problem(host: str, port: int) -> OSError | None:
    """Why ``host:port`` cannot be listened on now, or None (bound as uvicorn binds it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc
    return None


def _links_follow_port(settings: Settings, port: int) -> Settings:
    """``--port`` moves a ``public_url`` that is this machine at the configured port (the
    example's ``http://127.0.0.1:8000``), so links point at the server that issued them."""
    public = urlsplit(settings.server.public_url)
    if port == settings.server.port or public.hostname not in LOOPBACK:
        return settings
    if public.port != settings.server.port:
        return settings  # behind a proxy, or another port on purpose: leave it
    host = f"[{public.hostname}]" if ":" in (public.hostname or "") else public.hostname
    moved = public._replace(netloc=f"{host}:{port}").geturl()
    server = settings.server.model_copy(update={"public_url": moved})
    return settings.model_copy(update={"server": server})


def reload(config: ConfigOpt = None) -> None:
    """Make the running bot re-read its rules, replies and files (checks the config first).

    Exit 0: all applied; 2: the config is refused; 3: applied, but some changed keys
    (named) wait for a restart; 1: no running server, or it did not answer.
    """
    import signal

    from bot.cli.running import noted, pid_file, running_server
    from bot.reload import read_outcome

    path = config_path(config).resolve()
    settings_of(path)  # a config that fails validation is refused here, with the reason (exit 2)
    server = running_server(path)
    if server is None:
        stale = noted(path)
        problem = (
            f"{pid_file(path)} names pid {stale.pid}, which is not the `bot serve` that wrote it "
            "(a note left by a crash or a reboot): no signal sent"
            if stale is not None
            else f"no running `bot serve` for {path} ({pid_file(path)} names none)"
        )
        typer.secho(f"error: {problem}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1)
    before = read_outcome(path)
    os.kill(server.pid, signal.SIGHUP)
    outcome = _wait_for_outcome(path, before)
    if outcome is None:
        typer.secho(
            f"error: asked the bot ({server.where()}) to reload {path}, but it noted no outcome "
            f"within {RELOAD_WAIT:.0f}s: see its log",
            err=True,
            fg=typer.colors.RED,
        )
        raise typer.Exit(1)
    if outcome.error:
        typer.secho(f"error: the bot refused it: {outcome.error}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2)
    done = f"reloaded {path} ({server.where()}): {outcome.rules} rule(s)"
    if outcome.restart:
        typer.secho(
            f"{done}; changed but not applied until a restart: {', '.join(outcome.restart)}",
            err=True,
            fg=typer.colors.YELLOW,
        )
        raise typer.Exit(RESTART_NEEDED)
    typer.echo(done)


def _wait_for_outcome(path: Path, before: Reloaded | None) -> Reloaded | None:
    """The server's new outcome note (another than ``before``), or None after RELOAD_WAIT."""
    from bot.reload import read_outcome

    deadline = time.monotonic() + RELOAD_WAIT
    while time.monotonic() < deadline:
        outcome = read_outcome(path)
        if outcome is not None and outcome != before:
            return outcome
        time.sleep(0.05)
    return None
