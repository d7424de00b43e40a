"""What every `bot` command shares: the --config option, loading settings, the store, exit codes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from bot.config import Settings, config_text, load_settings
from bot.errors import BotError, ConfigError

if TYPE_CHECKING:
    from bot.state import Store
    from bot.wechat.api import WeChatAPI

T = TypeVar("T")

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML file (default: $BOT_CONFIG, else ./config.toml)"),
]


def fail(exc: BotError) -> typer.Exit:
    typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
    return typer.Exit(2)


def usage_error(problem: str) -> typer.Exit:
    """A wrong command line (not a configuration problem): exit 2."""
    typer.secho(f"error: {problem}", err=True, fg=typer.colors.RED)
    return typer.Exit(2)


def settings_of(
    path: Path | None, *, check_files: bool = True, text: str | None = None
) -> Settings:
    try:
        return load_settings(path, check_files=check_files, text=text)
    except ConfigError as exc:
        raise fail(exc) from None


def config_text_of(path: Path | None) -> str | None:
    """The config file's text (None: no file); exit 2 when it cannot be read as text."""
    try:
        return config_text(path)
    except ConfigError as exc:
        raise fail(exc) from None


def with_store(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    """Run ``work`` against the configured store, opened for the call; exit 1 if it fails."""
    from bot.state import store_from_url

    async def run() -> T:
        store = store_from_url(settings.state.url)
        await store.open()
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except BotError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None


def with_api(settings: Settings, work: Callable[[WeChatAPI], Awaitable[T]]) -> T:
    """Run ``work`` with WeChat's API (the token shared through the store); a WeChat error or a
    missing key exits 2 with what to fix, a store that fails exits 1. Logs as `bot serve` does."""
    from bot.logs.setup import setup_logging
    from bot.wechat.api.errors import RequestRefused, WeChatAPIError, WeChatUnreachable
    from bot.wechat.api.settings import build_api, token_cache

    async def run() -> T:
        cache = token_cache(settings.state.url, settings.wechat.app_id)
        try:
            async with build_api(settings.wechat, cache) as api:
                return await work(api)
        finally:
            close = getattr(cache, "close", None)
            if close is not None:
                await close()

    setup_logging(settings.log)
    try:
        return asyncio.run(run())
    except (ConfigError, WeChatAPIError, WeChatUnreachable, RequestRefused) as exc:
        raise fail(exc) from None
    except BotError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None


def checked_files(settings: Settings) -> dict[str, tuple[int, str]]:
    """File → (size, where), checked where the delivery finds it (a bucket: HEAD each object);
    exit 2 naming the key if one is missing or the bucket does not answer."""
    from bot.delivery import check_files

    try:
        return check_files(settings)
    except ConfigError as exc:
        raise fail(exc) from None


def local_url(host: str, port: int) -> str:
    """``http://host:port`` as a client on this machine reaches a server bound to ``host``."""
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 (every address: this machine's loopback)
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
