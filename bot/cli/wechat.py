"""`bot menu push/show/pull/delete`, `bot qr` and `bot import-autoreply`: WeChat's server API."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bot.cli.common import ConfigOpt, fail, settings_of, usage_error, with_api
from bot.errors import ConfigError

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.wechat.api import QRCode, WeChatAPI
    from bot.wechat.api.autoreply import Skipped
    from bot.wechat.api.menu import Menu
    from bot.wechat.api.selfmenu import Pulled

DAY = 86400
MAX_DAYS = 30  # WeChat's longest temporary QR code
menu = typer.Typer(
    no_args_is_help=True,
    help="The account's custom menu: push it from config.toml's menu tables, show, pull or delete"
    " it. Needs the AppSecret (wechat.app_secret).",
)


def _warn(text: str) -> None:
    typer.secho(f"warning: {text}", err=True, fg=typer.colors.YELLOW)


def _new_file(path: Path) -> Path:
    """``path`` if nothing is there yet: an owner's edited TOML is never overwritten."""
    if path.exists():
        raise usage_error(f"{path} exists: give another --out, or move it away first")
    return path


def _left_behind(skipped: list[Skipped]) -> None:
    if skipped:
        typer.echo("not carried over (their media belong to the admin page):")
    for item in skipped:
        typer.echo(f"  {item.where}: {item.kind} {item.content}")


def menu_warnings(settings: Settings) -> list[str]:
    """One line per click or scancode key in ``[menu]`` that no rule answers."""
    if settings.menu is None:
        return []
    from bot.keywords.book import RuleBook
    from bot.wechat.api.menu import unanswered_keys

    book = RuleBook(settings.keywords)
    leaves = [leaf for top in settings.menu.button for leaf in top.sub_button or [top]]
    answered = {b.key for b in leaves if b.key and book.find("click", b.key) is not None}
    return [
        f"{found}: no rule answers it (a tap gets no reply) — add a [[keywords]] rule with"
        f" click = that key, or a match rule for it"
        for found in unanswered_keys(settings.menu, answered)
    ]


def _config_menu(settings: Settings) -> Menu:
    if settings.menu is None:
        raise fail(
            ConfigError(
                "menu",
                "is not in the config",
                "add [[menu.button]] tables (config.example.toml shows one), or start from the"
                " live menu: `bot menu pull --out menu.toml`",
            )
        )
    return settings.menu


@menu.command()
def push(config: ConfigOpt = None) -> None:
    """Create the account's menu from config.toml's menu tables (replaces the live one)."""
    settings = settings_of(config, check_files=False)
    wanted = _config_menu(settings)
    for warning in menu_warnings(settings):
        _warn(warning)
    with_api(settings, lambda api: api.create_menu(wanted))
    subs = sum(len(top.sub_button or []) for top in wanted.button)
    typer.echo(
        f"menu created: {len(wanted.button)} button(s), {subs} sub-button(s). Followers see it"
        " when they next open the chat (WeChat re-fetches a menu older than 5 minutes)."
    )


async def _live(api: WeChatAPI) -> Pulled | None:
    """The API's menu, else the admin page's (which any account may read), else None."""
    from bot.wechat.api.errors import AccountLacksAPI
    from bot.wechat.api.selfmenu import from_menu_get, from_selfmenu

    try:
        answer = await api.get_menu()
    except AccountLacksAPI:  # an unverified 订阅号: no menu API, but its admin-page menu reads
        answer = None
    if answer is not None:
        return from_menu_get(answer)
    return from_selfmenu(await api.get_selfmenu_info())


def _describe(button: dict[str, Any]) -> str:
    if "sub_button" in button:
        return str(button.get("name", ""))
    fields = ", ".join(f"{k}={v}" for k, v in button.items() if k not in ("name", "type"))
    return f"{button.get('name', '')}  ({button.get('type', '')}{': ' if fields else ''}{fields})"


@menu.command()
def show(config: ConfigOpt = None) -> None:
    """Print the live menu; `*` marks buttons that differ from config.toml's menu."""
    from bot.wechat.api.menu import diff_menus

    settings = settings_of(config, check_files=False)
    pulled = with_api(settings, _live)
    if pulled is None:
        typer.echo("the account has no menu")
        if settings.menu is not None:
            typer.echo("[menu] in the config is not on WeChat yet: `bot menu push` creates it")
        return
    diffs = diff_menus(pulled.as_live(), settings.menu) if settings.menu is not None else []
    differing = {line.split(":", 1)[0] for line in diffs}
    typer.echo(f"live menu, {pulled.source}:")
    for i, top in enumerate(pulled.buttons):
        where = f"menu.button[{i}]"
        typer.echo(f"{'*' if where in differing else ' '} {_describe(top)}")
        for j, sub in enumerate(top.get("sub_button") or []):
            mark = "*" if f"{where}.sub_button[{j}]" in differing else " "
            typer.echo(f"{mark}     {_describe(sub)}")
    for note in pulled.notes:
        typer.echo(f"note: {note}")
    if settings.menu is None:
        typer.echo("no [menu] in the config to compare with (`bot menu pull` writes one)")
    elif diffs:
        typer.echo("differs from [menu] in the config (`bot menu push` makes it the config's):")
        for line in diffs:
            typer.echo(f"* {line}")
    else:
        typer.echo("same as [menu] in the config")


@menu.command()
def pull(
    config: ConfigOpt = None,
    out: Annotated[
        Path | None, typer.Option(help="write here (a new file) instead of printing")
    ] = None,
) -> None:
    """Write the live menu as TOML to start from (an admin-page menu's texts become rules)."""
    from bot.wechat.api.selfmenu import to_toml

    settings = settings_of(config, check_files=False)
    target = _new_file(out) if out is not None else None
    pulled = with_api(settings, _live)
    if pulled is None:
        typer.secho("error: the account has no menu to pull", err=True, fg=typer.colors.RED)
        raise typer.Exit(1)
    text = to_toml(pulled)
    if target is None:
        typer.echo(text, nl=False)
        return
    target.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {target}: {pulled.source}; review it, then paste it into config.toml")
    _left_behind(pulled.skipped)


@menu.command()
def delete(config: ConfigOpt = None) -> None:
    """Remove the account's menu (conditional menus too)."""
    settings = settings_of(config, check_files=False)
    with_api(settings, lambda api: api.delete_menu())
    typer.echo("menu deleted (followers stop seeing it when their WeChat next fetches it)")


def qr(
    scene: Annotated[str, typer.Argument(help="the rule's scene (scene_str, 1-64 characters)")],
    out: Annotated[Path, typer.Option(help="PNG file to write, e.g. poster.png")],
    days: Annotated[
        int | None,
        typer.Option(min=1, max=MAX_DAYS, help=f"temporary code's lifetime (default {MAX_DAYS})"),
    ] = None,
    permanent: Annotated[
        bool, typer.Option(help="a permanent code (at most 100,000 per account)")
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Make a poster's parameter QR code for SCENE: a PNG, its ticket and expiry."""
    from bot.clock import CHINA
    from bot.wechat.api.errors import RequestRefused
    from bot.wechat.api.qr import qrcode_request, render_png

    if permanent and days is not None:
        raise usage_error("give --days or --permanent, not both")
    expire = None if permanent else (days or MAX_DAYS) * DAY
    try:
        qrcode_request(scene, expire)  # refused here, before any call
    except RequestRefused as exc:
        raise fail(exc) from None
    settings = settings_of(config, check_files=False)
    if not any(rule.scene == scene for rule in settings.keywords):
        _warn(
            f"no rule has scene = {scene!r}: a scan gets the welcome (new followers) or nothing"
            " — add a [[keywords]] rule with that scene"
        )

    async def create(api: WeChatAPI) -> QRCode:
        return await api.create_qrcode(scene, expire_seconds=expire)

    code = with_api(settings, create)
    try:
        out.write_bytes(render_png(code.url))
    except OSError as exc:
        raise usage_error(f"cannot write {out}: {exc.strerror}") from None
    typer.echo(f"wrote {out}: scene {scene!r}, {code.url}")
    typer.echo(f"ticket: {code.ticket}")
    if code.expire_seconds is None:
        typer.echo("expires: never (permanent, QR_LIMIT_STR_SCENE)")
    else:
        until = datetime.fromtimestamp(time.time() + code.expire_seconds, CHINA)
        typer.echo(f"expires: {until:%Y-%m-%d %H:%M} 北京时间 (in {code.expire_seconds} s)")


def import_autoreply(
    out: Annotated[
        Path | None, typer.Option(help="write here (a new file, e.g. rules.toml), not to stdout")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Read the admin page's 自动回复 and write them as rules to review (run before 启用)."""
    from bot.wechat.api.autoreply import convert, to_toml

    settings = settings_of(config, check_files=False)
    target = _new_file(out) if out is not None else None
    imported = convert(with_api(settings, lambda api: api.get_autoreply_info()))
    if target is None:  # what could not come along is in the TOML's comments
        typer.echo(to_toml(imported), nl=False)
        return
    target.write_text(to_toml(imported), encoding="utf-8")
    replies = ", ".join(f"[replies] {key}" for key in imported.replies)
    typer.echo(
        f"wrote {target}: {len(imported.keywords)} rule(s)"
        + (f" and {replies}" if replies else "")
        + "; review it, then paste it into config.toml"
    )
    _left_behind(imported.skipped)
