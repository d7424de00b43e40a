"""`bot serve` and `bot reload`: run the bot, and make a running one re-read its config."""

from __future__ import annotations

import os
from typing import Annotated

import typer
import uvicorn

from bot.cli.common import ConfigOpt, checked_files, settings_of
from bot.config import config_path


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
    setup_logging(settings.log)
    checked_files(settings)  # every keyword's file (s3: object) is there, or exit 2
    from loguru import logger

    from bot.cli.wechat import menu_warnings
    from bot.keywords.patterns import risky

    for warning in risky(settings.keywords) + menu_warnings(settings):
        logger.warning(warning)
    bind_host = host or settings.server.host
    bind_port = port or settings.server.port
    common = {"host": bind_host, "port": bind_port, **uvicorn_options(settings)}
    path = config_path(config).resolve()
    note_server(path)  # `bot reload` finds this process through it
    try:
        if workers == 1:
            app = create_app(settings, config=path)
            settle_memory()
            uvicorn.run(app, **common)
            return
        # Worker processes rebuild the same settings from the same file.
        os.environ["BOT_CONFIG"] = str(path)
        supervised = uvicorn.Config(
            "bot.app:app_from_environment", factory=True, workers=workers, **common
        )
        with one_log_writer(settings.log):  # workers send their lines; this process writes them
            ReloadingSupervisor(supervised, sockets=[supervised.bind_socket()]).run()
    finally:
        forget_server(path)


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
