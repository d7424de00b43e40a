"""`bot stats`, `bot audit` and `bot prune`: read and trim the audit trail in the store."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer

from bot.cli.common import ConfigOpt, settings_of, usage_error, with_store

if TYPE_CHECKING:
    from bot.state import Store


def stats(
    since: Annotated[str | None, typer.Option(help="e.g. 24h, 7d, 2w (default: all kept)")] = None,
    config: ConfigOpt = None,
) -> None:
    """Per-file table: links issued, followers, complete downloads, bytes, expired, bad tokens."""
    from bot.state.report import parse_duration, stats_text, summarize

    settings = settings_of(config, check_files=False)
    try:
        start = time.time() - parse_duration(since) if since else 0.0
    except ValueError as exc:
        raise usage_error(f"--since: {exc}") from None

    async def work(store: Store) -> str:
        links, attempts = await store.links_since(start), await store.attempts_since(start)
        files = (name for rule in settings.keywords for name in rule.file_list)
        return stats_text(*summarize(links, attempts, files))

    typer.echo(with_store(settings, work))


def audit(link_id: str, config: ConfigOpt = None) -> None:
    """One link's record and every request for it."""
    from bot.state.report import audit_text

    settings = settings_of(config, check_files=False)

    async def work(store: Store) -> tuple[str, bool]:
        link, usage = await store.link(link_id), await store.usage(link_id)
        attempts = await store.attempts_since(0, link_id)
        return audit_text(link_id, link, usage, attempts), link is not None or bool(attempts)

    text, known = with_store(settings, work)
    if not known:  # a mistyped id: say so, and exit 1 as `bot revoke` does
        typer.secho(f"error: {text}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1)
    typer.echo(text)


def prune(config: ConfigOpt = None) -> None:
    r"""Delete audit rows older than \[state] keep_days now (the server also does it hourly)."""
    settings = settings_of(config, check_files=False)
    before = time.time() - settings.state.keep_days * 86400
    removed = with_store(settings, lambda store: store.prune(before))
    typer.echo(f"removed {removed} row(s) older than {settings.state.keep_days} days")
