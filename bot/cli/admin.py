"""`bot admin-password`: set (or clear) the password of the owner's page at /admin."""

from __future__ import annotations

import getpass
import sys
from typing import Annotated

import typer

from bot.cli.common import ConfigOpt, settings_of, usage_error, with_store


def _read_password() -> str:
    """Twice from the terminal (hidden), or one line from standard input when it is not one."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    first = getpass.getpass("New password for /admin: ")
    if getpass.getpass("The same again: ") != first:
        raise usage_error("the two passwords differ; nothing was changed")
    return first


def admin_password(
    config: ConfigOpt = None,
    off: Annotated[
        bool, typer.Option("--off", help="forget the password: /admin answers 404 again")
    ] = False,
) -> None:
    """Set the password of the owner's page ({public_url}/admin); ends every open session.

    Read twice from the terminal, or once from standard input (`bot admin-password < file`).
    Only a slow hash (scrypt) is kept, in the state store, so every instance shares it.
    """
    from bot.owner.password import PasswordRefused, hash_password

    settings = settings_of(config, check_files=False)
    if off:
        with_store(settings, lambda store: store.set_owner_password(None))
        typer.echo("password forgotten: /admin is off (404) until `bot admin-password` sets one")
        return
    try:
        hashed = hash_password(_read_password())
    except PasswordRefused as exc:
        raise usage_error(f"the password {exc}; nothing was changed") from None
    with_store(settings, lambda store: store.set_owner_password(hashed))
    typer.echo(f"password set: log in at {settings.server.public_url}/admin")
    typer.echo("(sessions opened with an earlier password have ended)")
