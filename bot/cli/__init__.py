"""The ``bot`` command: loads settings once at the edge and passes them down.

Each group of commands is a module; ``COMMANDS`` lists them in the order ``bot --help`` shows,
``GROUPS`` the ones with subcommands.
"""

from __future__ import annotations

import typer

from bot.cli import admin, links, serve, setup, store, wechat

OWNER_HELP = (
    "Your WeChat official account's bot: it answers followers' keywords, menu taps and QR scans "
    "with short-lived download links.\n\n"
    "Start with `bot init` (writes config.toml), edit the rules in it (the keywords tables) and "
    "check them with `bot check`. Run `bot serve`, and try it with `bot simulate 芝麻开门`. "
    "After editing the rules of a running bot, `bot reload` applies them without a restart."
)
app = typer.Typer(add_completion=False, no_args_is_help=True, help=OWNER_HELP)
COMMANDS = (
    setup.init,
    serve.serve,
    serve.reload,
    setup.check,
    links.link,
    links.simulate,
    links.revoke,
    store.stats,
    store.audit,
    store.prune,
    wechat.qr,
    wechat.import_autoreply,
    admin.admin_password,
)
GROUPS = (("menu", wechat.menu),)  # `bot menu push`: a group is a Typer of its own
for command in COMMANDS:
    app.command()(command)
for name, group in GROUPS:
    app.add_typer(group, name=name)


def main() -> None:
    """Console-script entry point."""
    app()
