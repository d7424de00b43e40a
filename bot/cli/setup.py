"""`bot init` and `bot check`: write a config, then check it and list its rules."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from bot.cli.common import ConfigOpt, checked_files, fail, settings_of, usage_error
from bot.config import ServerSettings, config_path
from bot.errors import ConfigError

EXAMPLE = "config.example.toml"


def _example_text() -> str:
    for base in (Path(__file__).resolve().parents[2], Path.cwd()):
        if (base / EXAMPLE).is_file():
            return (base / EXAMPLE).read_text(encoding="utf-8")
    raise fail(ConfigError(EXAMPLE, "not found next to the package or here"))


def init(
    config: ConfigOpt = None,
    public_url: Annotated[
        str | None, typer.Option(help="base URL of links, e.g. https://files.example.com")
    ] = None,
) -> None:
    """Write config.toml from the example with a fresh secret key and WeChat token."""
    path = config_path(config)
    if path.exists():
        typer.echo(f"{path} exists; leaving it alone")
        raise typer.Exit(0)
    if public_url is not None:
        public_url = _checked_url(public_url)
    text = _example_text()
    text = re.sub(r'(?m)^token = ".*"', f'token = "{secrets.token_hex(16)}"', text, count=1)
    key = secrets.token_urlsafe(32)
    text = re.sub(r"(?m)^secret_keys = \[.*\]", f'secret_keys = ["{key}"]', text, count=1)
    if public_url:
        text = re.sub(r'(?m)^public_url = ".*"', f'public_url = "{public_url}"', text, count=1)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        path.chmod(0o600)
    except OSError as exc:
        raise usage_error(f"cannot write {path}: {exc.strerror}") from None
    typer.echo(f"wrote {path} with a fresh secret key and WeChat token")
    files = path.parent / "files"
    if not files.is_dir():
        typer.echo(f"next: put the files your rules give in {files} (`bot check` lists them)")


def _checked_url(value: str) -> str:
    """``--public-url`` as ``[server] public_url`` will take it, or exit 2 saying why."""
    try:
        return ServerSettings(public_url=value).public_url
    except ValidationError as exc:
        problem = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise usage_error(f"--public-url {value!r} {problem}") from None


def check(config: ConfigOpt = None) -> None:
    """Check config.toml and list every rule: what triggers it, which files, limit, window."""
    settings = settings_of(config)
    mode = "safe/compatible (AES)" if settings.wechat.encoding_aes_key else "plaintext"
    typer.echo(f"config ok: {config_path(config)}")
    typer.echo(f"webhook: {settings.server.public_url}{settings.wechat.path} ({mode})")
    typer.echo(
        f"links: valid {settings.links.ttl_seconds}s, {len(settings.links.secret_keys)} key(s)"
    )
    from bot.keywords.table import render, rows

    found = checked_files(settings)
    typer.echo(render(rows(settings.keywords, found, settings.links.max_downloads)))
    from bot.cli.wechat import menu_warnings
    from bot.keywords.patterns import risky

    # risky: still runs, but may be cut off; a menu key no rule answers: a tap gets nothing
    for warning in risky(settings.keywords) + menu_warnings(settings):
        typer.secho(f"warning: {warning}", err=True, fg=typer.colors.YELLOW)
