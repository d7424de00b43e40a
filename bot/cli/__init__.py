"""The ``bot`` command: loads settings once at the edge and passes them down."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import httpx
import typer
import uvicorn

from bot.config import Settings, config_path, load_settings
from bot.errors import BotError, ConfigError

if TYPE_CHECKING:
    from bot.keywords.router import Issued
    from bot.state import Store

T = TypeVar("T")

OWNER_HELP = (
    "Your WeChat official account's bot: it answers followers' keywords, menu taps and QR scans "
    "with short-lived download links.\n\n"
    "Start with `bot init` (writes config.toml), edit the rules in it (the keywords tables) and "
    "check them with `bot check`. Run `bot serve`, and try it with `bot simulate 芝麻开门`. "
    "After editing the rules of a running bot, `bot reload` applies them without a restart."
)
app = typer.Typer(add_completion=False, no_args_is_help=True, help=OWNER_HELP)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML file (default: $BOT_CONFIG, else ./config.toml)"),
]
EXAMPLE = "config.example.toml"


def _fail(exc: BotError) -> typer.Exit:
    typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
    return typer.Exit(2)


def _usage(problem: str) -> typer.Exit:
    """A wrong command line (not a configuration problem): exit 2."""
    typer.secho(f"error: {problem}", err=True, fg=typer.colors.RED)
    return typer.Exit(2)


def _settings(path: Path | None, *, check_files: bool = True) -> Settings:
    try:
        return load_settings(path, check_files=check_files)
    except ConfigError as exc:
        raise _fail(exc) from None


def _with_store(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
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


async def _record(issued: Issued, codes: bool, store: Store) -> str:
    """Record a link issued by `bot link`; its pick-up code ("" when codes are off)."""
    from bot.codes import codes_of, reserve

    await store.record_link(issued.record, 0)
    keeper = codes_of(codes, store)
    return await reserve(keeper, issued.token, issued.link) if keeper else ""


def _example_text() -> str:
    for base in (Path(__file__).resolve().parents[2], Path.cwd()):
        if (base / EXAMPLE).is_file():
            return (base / EXAMPLE).read_text(encoding="utf-8")
    raise _fail(ConfigError(EXAMPLE, "not found next to the package or here"))


@app.command()
def init(
    config: ConfigOpt = None,
    public_url: Annotated[str | None, typer.Option(help="base URL of links")] = None,
) -> None:
    """Write config.toml from the example with a fresh secret key and WeChat token."""
    path = config_path(config)
    if path.exists():
        typer.echo(f"{path} exists; leaving it alone")
        raise typer.Exit(0)
    text = _example_text()
    text = re.sub(r'(?m)^token = ".*"', f'token = "{secrets.token_hex(16)}"', text, count=1)
    key = secrets.token_urlsafe(32)
    text = re.sub(r"(?m)^secret_keys = \[.*\]", f'secret_keys = ["{key}"]', text, count=1)
    if public_url:
        text = re.sub(r'(?m)^public_url = ".*"', f'public_url = "{public_url}"', text, count=1)
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    typer.echo(f"wrote {path} with a fresh secret key and WeChat token")


@app.command()
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

    settings = _settings(config)
    setup_logging(settings.log)
    _files(settings)  # every keyword's file (s3: object) is there, or exit 2
    from loguru import logger

    from bot.keywords.patterns import risky

    for warning in risky(settings.keywords):
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


@app.command()
def reload(config: ConfigOpt = None) -> None:
    """Make the running bot re-read its rules, replies and files (checks the config first)."""
    import signal

    from bot.reload import pid_file, running_server

    path = config_path(config).resolve()
    _settings(path)  # a config that fails validation is refused here, with the reason (exit 2)
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


@app.command()
def check(config: ConfigOpt = None) -> None:
    """Check config.toml and list every rule: what triggers it, which files, limit, window."""
    settings = _settings(config)
    mode = "safe/compatible (AES)" if settings.wechat.encoding_aes_key else "plaintext"
    typer.echo(f"config ok: {config_path(config)}")
    typer.echo(f"webhook: {settings.server.public_url}{settings.wechat.path} ({mode})")
    typer.echo(
        f"links: valid {settings.links.ttl_seconds}s, {len(settings.links.secret_keys)} key(s)"
    )
    from bot.keywords.table import render, rows

    found = _files(settings)
    typer.echo(render(rows(settings.keywords, found, settings.links.max_downloads)))
    from bot.keywords.patterns import risky

    for warning in risky(settings.keywords):  # still runs, but may be cut off: say so
        typer.secho(f"warning: {warning}", err=True, fg=typer.colors.YELLOW)


def _files(settings: Settings) -> dict[str, tuple[int, str]]:
    """File → (size, where), checked where the delivery finds it (a bucket: HEAD each object);
    exit 2 naming the key if one is missing or the bucket does not answer."""
    from bot.delivery import check_files

    try:
        return check_files(settings)
    except ConfigError as exc:
        raise _fail(exc) from None


@app.command()
def link(
    keyword: str,
    config: ConfigOpt = None,
    user: Annotated[str, typer.Option(help="openid to log as the requester")] = "cli",
) -> None:
    """Print a fresh download URL for a keyword (one per file of its rule)."""
    from bot.reload import rule_parts

    settings = _settings(config)
    router = rule_parts(settings, time.time).router
    rule = router.book.for_text(keyword)
    if rule is None or not rule.settings.file_list:
        raise _usage(f"no keyword {keyword!r} gives a file; `bot check` lists them")
    from bot.codes import PATH

    for issued in router.issue(rule.settings, user):
        code = _with_store(settings, partial(_record, issued, settings.links.pickup_codes))
        typer.echo(issued.url)
        expires = issued.link.expires_at.isoformat()
        typer.echo(f"link {issued.link.link_id} for {user}, expires {expires}", err=True)
        if code:
            typer.echo(f"pick-up code {code} at {settings.server.public_url}{PATH}", err=True)


@app.command()
def simulate(
    text: Annotated[str, typer.Argument(help="what the follower types")] = "",
    config: ConfigOpt = None,
    event: Annotated[
        str | None, typer.Option(help="an event instead, e.g. subscribe (a new follower)")
    ] = None,
    click: Annotated[str | None, typer.Option(help="tap the menu button with this key")] = None,
    scan: Annotated[
        str | None, typer.Option(help="scan the QR code of this scene (add --event subscribe)")
    ] = None,
    voice: Annotated[str | None, typer.Option(help="a voice message recognised as TEXT")] = None,
    user: Annotated[str, typer.Option(help="the follower's openid")] = "o_simulated_user",
    url: Annotated[str | None, typer.Option(help="webhook URL (default from config)")] = None,
) -> None:
    """Play a follower: send a message, menu tap or QR scan as WeChat would; print the reply."""
    from bot.wechat.simulator import Simulator, describe_reply, follower_push

    if sum(x is not None for x in (click, scan, voice)) > 1:
        raise _usage("give at most one of --click, --scan, --voice")
    if event and (click is not None or voice is not None):
        raise _usage("--event goes with --scan only")
    settings = _settings(config, check_files=False)
    wechat = settings.wechat
    codec = Simulator(wechat.token, wechat.app_id, wechat.encoding_aes_key)
    now = int(time.time())
    xml = follower_push(
        account=wechat.app_id,
        user=user,
        now=now,
        msg_id=str(secrets.randbits(62)),
        text=text,
        event=event,
        click=click,
        scan=scan,
        voice=voice,
    )
    params, body = codec.build_request(
        xml, timestamp=str(now), nonce=secrets.token_hex(5), encrypt=codec.encrypted
    )
    host = "127.0.0.1" if settings.server.host in ("0.0.0.0", "::") else settings.server.host  # noqa: S104
    target = url or f"http://{host}:{settings.server.port}{wechat.path}"
    try:
        response = httpx.post(target, params=params, content=body, timeout=10)
    except httpx.HTTPError as exc:
        typer.secho(f"error: cannot reach {target}: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
    if response.status_code != 200:
        typer.secho(f"error: HTTP {response.status_code}: {response.text}", err=True, fg="red")
        raise typer.Exit(1)
    typer.echo(describe_reply(codec.read_reply(response.content)))


@app.command()
def revoke(
    link_ids: Annotated[
        list[str] | None,
        typer.Argument(help="link ids (see `bot audit`, logs)", show_default=False),
    ] = None,
    user: Annotated[str | None, typer.Option(help="every link issued to this openid")] = None,
    file: Annotated[str | None, typer.Option(help="every link to this file")] = None,
    config: ConfigOpt = None,
) -> None:
    """Revoke links: later requests for them get 410 link_revoked.

    Exits 1, naming them, when an id, follower or file is not in the audit trail.
    """
    if sum(bool(x) for x in (link_ids, user is not None, file is not None)) != 1:
        raise _usage("give exactly one of LINK_ID..., --user, --file")
    settings = _settings(config, check_files=False)

    async def work(store: Store) -> Revocation:
        if link_ids:
            unknown = [i for i in link_ids if await store.link(i) is None]
            # An unknown id is revoked too: a link issued while the store was down is unrecorded.
            new = await store.revoke(link_ids)
            known = len(link_ids) - len(unknown)
            return Revocation(min(new, known), known, unknown_ids=unknown)
        ids = await store.links_of(openid=user, file=file)
        return Revocation(await store.revoke(ids) if ids else 0, len(ids))

    done = _with_store(settings, work)
    typer.echo(f"revoked {done.new} link(s) ({done.found - done.new} already revoked)")
    problems = [
        f"unknown link id {i}: not in the audit trail (mistyped, pruned, or issued while the"
        " store was down); its revocation is stored anyway"
        for i in done.unknown_ids
    ]
    if user is not None and not done.found:
        problems.append(f"no links issued to {user!r} in the audit trail")
    named = {name for rule in settings.keywords for name in rule.file_list}
    if file is not None and not done.found and file not in named:
        problems.append(f"no such file {file!r}: not in the keywords, no links to it recorded")
    for problem in problems:
        typer.secho(f"error: {problem}", err=True, fg=typer.colors.RED)
    if problems:
        raise typer.Exit(1)


@dataclass(frozen=True, slots=True)
class Revocation:
    """What ``bot revoke`` did: newly revoked, found in the audit trail, ids it did not know."""

    new: int
    found: int
    unknown_ids: list[str] = field(default_factory=list)


@app.command()
def stats(
    since: Annotated[str | None, typer.Option(help="e.g. 24h, 7d, 2w (default: all kept)")] = None,
    config: ConfigOpt = None,
) -> None:
    """Per-file table: links issued, followers, complete downloads, bytes, expired, bad tokens."""
    from bot.state.report import parse_duration, stats_text, summarize

    settings = _settings(config, check_files=False)
    try:
        start = time.time() - parse_duration(since) if since else 0.0
    except ValueError as exc:
        raise _usage(f"--since: {exc}") from None

    async def work(store: Store) -> str:
        links, attempts = await store.links_since(start), await store.attempts_since(start)
        return stats_text(*summarize(links, attempts))

    typer.echo(_with_store(settings, work))


@app.command()
def audit(link_id: str, config: ConfigOpt = None) -> None:
    """One link's record and every request for it."""
    from bot.state.report import audit_text

    settings = _settings(config, check_files=False)

    async def work(store: Store) -> str:
        link, usage = await store.link(link_id), await store.usage(link_id)
        return audit_text(link_id, link, usage, await store.attempts_since(0, link_id))

    typer.echo(_with_store(settings, work))


@app.command()
def prune(config: ConfigOpt = None) -> None:
    """Delete audit rows older than [state] keep_days now (the server also does it hourly)."""
    settings = _settings(config, check_files=False)
    before = time.time() - settings.state.keep_days * 86400
    removed = _with_store(settings, lambda store: store.prune(before))
    typer.echo(f"removed {removed} row(s) older than {settings.state.keep_days} days")


def main() -> None:
    """Console-script entry point."""
    app()
