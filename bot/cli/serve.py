"""`bot serve` and `bot reload`: run the bot, and make a running one re-read its config."""

from __future__ import annotations

import errno
import os
import socket
from typing import Annotated
from urllib.parse import urlsplit

import typer
import uvicorn

from bot.cli.common import ConfigOpt, checked_files, local_url, settings_of, usage_error
from bot.config import Settings, config_path

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def serve(
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option(help="overrides server.host")] = None,
    port: Annotated[int | None, typer.Option(help="overrides server.port")] = None,
    workers: Annotated[int, typer.Option(min=1, help="worker processes")] = 1,
) -> None:
    """Run the bot: answer WeChat and serve the download links."""
    from bot.app import create_app, settle_memory
    from bot.logs.setup import one_log_writer, setup_logging
    from bot.reload import ReloadingSupervisor, forget_server, note_server
    from bot.web.edge import uvicorn_options

    settings = settings_of(config)
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
    path = config_path(config).resolve()
    url = local_url(bind_host, bind_port)
    typer.echo(f"serving {url} (links: {settings.server.public_url}/d/…)", err=True)
    note_server(path, url)  # `bot reload` and `bot simulate` find this process through it
    try:
        if workers == 1:
            app = create_app(settings, config=path)
            settle_memory()
            uvicorn.run(app, **common)
            return
        # Worker processes rebuild the same settings from the same file (and these overrides).
        os.environ["BOT_CONFIG"] = str(path)
        if settings.server.public_url != configured_url:  # moved by --port
            os.environ["BOT_SERVER__PUBLIC_URL"] = settings.server.public_url
        supervised = uvicorn.Config(
            "bot.app:app_from_environment", factory=True, workers=workers, **common
        )
        with one_log_writer(settings.log):  # workers send their lines; this process writes them
            ReloadingSupervisor(supervised, sockets=[supervised.bind_socket()]).run()
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
    """Make the running bot re-read its rules, replies and files (checks the config first)."""
    import signal

    from bot.reload import pid_file, running_server

    path = config_path(config).resolve()
    settings_of(path)  # a config that fails validation is refused here, with the reason (exit 2)
    pid = running_server(path)
    if pid is None:
        typer.secho(
            f"error: no running `bot serve` for {path} ({pid_file(path)} names none)",
            err=True,
            fg=typer.colors.RED,
        )
        raise typer.Exit(1)
    os.kill(pid, signal.SIGHUP)
    typer.echo(f"asked the bot (pid {pid}) to reload {path}")
