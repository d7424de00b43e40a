"""`bot link`, `bot simulate` and `bot revoke`: issue a link, play a follower, take links back."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Annotated

import httpx
import typer

from bot.cli.common import ConfigOpt, local_url, settings_of, usage_error, with_store
from bot.config import config_path

if TYPE_CHECKING:
    from pathlib import Path

    from bot.config import Settings
    from bot.keywords.router import Issued
    from bot.state import Store


async def _record(issued: Issued, codes: bool, store: Store) -> str:
    """Record a link issued by `bot link`; its pick-up code ("" when codes are off)."""
    from bot.codes import codes_of, reserve

    await store.record_link(issued.record, 0)
    keeper = codes_of(codes, store)
    return await reserve(keeper, issued.token, issued.link) if keeper else ""


def link(
    keyword: Annotated[str, typer.Argument(help="a rule's keyword, menu key or QR scene")],
    config: ConfigOpt = None,
    user: Annotated[str, typer.Option(help="openid to log as the requester")] = "cli",
) -> None:
    """Print a fresh download URL for a rule (one per file of its rule)."""
    from bot.keywords.triggers import INDEXES
    from bot.logs.safe import readable
    from bot.reload import rule_parts

    settings = settings_of(config)
    router = rule_parts(settings, time.time).router
    found = (router.book.find(index, keyword) for index in INDEXES)  # text, menu key, scene
    rule = next((r for r in found if r is not None), None)
    if rule is None or not rule.settings.file_list:
        raise usage_error(
            f"no keyword, menu key or scene {keyword!r} gives a file; `bot check` lists them"
        )
    from bot.codes import PATH

    for issued in router.issue(rule.settings, user):
        code = with_store(settings, partial(_record, issued, settings.links.pickup_codes))
        typer.echo(issued.url)
        expires = readable(issued.link.expires_at.timestamp())
        typer.echo(f"link {issued.link.link_id} for {user}, expires {expires}", err=True)
        if code:
            typer.echo(f"pick-up code {code} at {settings.server.public_url}{PATH}", err=True)


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
    user: Annotated[
        str | None, typer.Option(help="the follower's openid (default: a new one each time)")
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(help="webhook URL (default: the running `bot serve` for this config)"),
    ] = None,
) -> None:
    """Play a follower: send a message, menu tap or QR scan as WeChat would; print the reply."""
    from bot.wechat.simulator import Simulator, describe_reply, follower_push

    if sum(x is not None for x in (click, scan, voice)) > 1:
        raise usage_error("give at most one of --click, --scan, --voice")
    if event and (click is not None or voice is not None):
        raise usage_error("--event goes with --scan only")
    settings = settings_of(config, check_files=False)
    wechat = settings.wechat
    codec = Simulator(wechat.token, wechat.app_id, wechat.encoding_aes_key)
    user = user or f"o_simulated_{secrets.token_hex(4)}"  # a new follower: no quota carried over
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
    target, where = _webhook(settings, config, url)
    typer.echo(f"POST {target} ({where}) as follower {user}", err=True)
    try:
        response = httpx.post(target, params=params, content=body, timeout=10)
    except httpx.HTTPError as exc:
        typer.secho(f"error: cannot reach {target}: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
    if response.status_code != 200:
        said = response.text.strip()[:300] or response.reason_phrase
        typer.secho(
            f"error: {target} answered HTTP {response.status_code}: {said}", err=True, fg="red"
        )
        for needle, hint in HINTS.items():
            if needle in f"{response.status_code} {said}":
                typer.echo(f"hint: {hint.format(config=config_path(config))}", err=True)
        raise typer.Exit(1)
    typer.echo(describe_reply(codec.read_reply(response.content)))


# What a refused push most likely means, by a piece of the answer (`bot simulate`'s hints).
HINTS = {
    "signature does not match": "the bot there checks another [wechat] token than {config} "
    "holds: is it serving another config? (--config, or --url for the right bot)",
    "appid does not match": "[wechat] app_id differs between {config} and the bot there",
    "stale timestamp": "this machine's clock and the bot's differ by more than max_clock_skew",
    "require_encryption": "the bot there wants encrypted pushes: set [wechat] encoding_aes_key "
    "in {config} as the bot has it",
    "404 ": "nothing answers that path: is [wechat] path the same in {config} and the bot's?",
}


def _webhook(settings: Settings, config: Path | None, url: str | None) -> tuple[str, str]:
    """Where `bot simulate` posts, and why there: --url, the running server, or [server]."""
    from bot.cli.running import served_url

    if url:
        return url, "--url"
    path = settings.wechat.path
    served = served_url(config_path(config).resolve())
    if served:
        return served + path, "the running `bot serve` for this config"
    server = settings.server
    return local_url(server.host, server.port) + path, "[server] host and port"


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
        raise usage_error("give exactly one of LINK_ID..., --user, --file")
    settings = settings_of(config, check_files=False)

    async def work(store: Store) -> Revocation:
        if link_ids:
            unknown = [i for i in link_ids if await store.link(i) is None]
            # An unknown id is revoked too: a link issued while the store was down is unrecorded.
            new = await store.revoke(link_ids)
            known = len(link_ids) - len(unknown)
            return Revocation(min(new, known), known, unknown_ids=unknown)
        ids = await store.links_of(openid=user, file=file)
        return Revocation(await store.revoke(ids) if ids else 0, len(ids))

    done = with_store(settings, work)
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
