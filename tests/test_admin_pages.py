"""The owner's pages after a scripted day on each store: the numbers are `bot stats`' numbers, a
link's story lists every request, Revoke works, and the rules show their week."""

from __future__ import annotations

import dataclasses
import html
import re
from pathlib import Path

import httpx
import pytest

from bot.config import load_settings
from bot.errors import StoreUnavailable
from tests.conftest import Clock, RunningServer, Start, write_config
from tests.helpers.admin import (
    IDS,
    login,
    scripted_day,
    set_password,
    table_text,
    text_by_id,
    value_by_id,
)
from tests.helpers.processes import bot_on as bot
from tests.helpers.stores import LIMITED

pytestmark = pytest.mark.slow  # runs `bot stats` and `bot audit` as child processes


def stats_rows(config: Path) -> dict[str, list[str]]:
    """`bot stats` as the owner runs it: each row's cells by its first column."""
    result = bot(config, "stats")
    assert result.returncode == 0, result.stderr
    return {
        line.split("  ")[0]: re.split(r"\s{2,}", line)[1:] for line in result.stdout.splitlines()
    }


def page_rows(page: str) -> dict[str, list[str]]:
    """The overview's files table, as `bot stats` rows (links, followers, downloads, bytes)."""
    rows = {}
    for name, row in re.findall(r'<tr data-file="([^"]*)">(.*?)</tr>', page, re.S):
        cells = re.findall(r"<td[^>]*?(?:data-value=\"(\d+)\")?>(.*?)</td>", row, re.S)
        texts = [value or html.unescape(text).strip() for value, text in cells]
        rows[html.unescape(name)] = [*texts[1:4], f"{int(texts[4]):,}"]
    return rows


@pytest.fixture
def day(start: Start, clock: Clock) -> tuple[RunningServer, httpx.Client, dict[str, str]]:
    server = start(keywords=LIMITED)
    set_password(server.settings, clock)
    owner = server.client()
    assert login(owner).status_code == 303
    paths = scripted_day(server, clock, owner)
    yield server, owner, paths
    owner.close()


def test_the_page_counts_what_bot_stats_counts(
    day: tuple[RunningServer, httpx.Client, dict[str, str]], tmp_path: Path
) -> None:
    server, owner, _ = day
    stats = stats_rows(tmp_path / "config.toml")
    total = stats.pop("total")
    stats.pop("file")
    for period in ("today", "7d", "30d"):
        page = owner.get("/admin", params={"period": period}).text
        shown = [
            text_by_id(page, "n-links"),
            value_by_id(page, "n-followers"),
            text_by_id(page, "n-downloads"),
            f"{int(value_by_id(page, 'n-bytes')):,}",
            text_by_id(page, "n-expired"),
            text_by_id(page, "n-bad"),
        ]
        assert shown == total, period
        assert page_rows(page) == {name: cells[:4] for name, cells in stats.items()}, period
    assert total[:3] == ["6", "4", "2"]  # links, followers, complete downloads
    page = owner.get("/admin").text
    assert text_by_id(page, "n-share") == "33%"  # a1 and b1 of six links
    assert text_by_id(page, "n-refused") == "5"
    refusals = table_text(page, "refusals")
    for reason, count in (("bad token", 2), ("expired", 1), ("used up", 1), ("revoked", 1)):
        assert re.search(rf"{reason}\s*{count}", refusals), refusals
    assert re.search(r"芝麻开门\s*</td>\s*<td[^>]*>4</td>\s*<td[^>]*>1</td>", page)
    assert "正常 · healthy" in page and server.settings.state.url.split(":")[0] in page
    assert "<script" not in page and page.count("<svg") >= 1 and 'id="chart"' in page


def test_a_links_story_search_and_revoke(
    day: tuple[RunningServer, httpx.Client, dict[str, str]], clock: Clock
) -> None:
    server, owner, paths = day
    b1 = IDS[paths["b1"]]
    found = owner.get("/admin/links", params={"q": b1})
    assert (found.status_code, found.headers["location"]) == (303, f"/admin/links/{b1}")
    story = owner.get(f"/admin/links/{b1}").text
    assert text_by_id(story, "link-id") == b1 and text_by_id(story, "follower") == "o_…"
    outcomes = re.findall(r'<tr class="outcome-(\w+)">', story)
    assert outcomes == ["served", "exhausted"]
    assert "完成 1" in text_by_id(story, "usage") and "used up" in table_text(story, "attempts")
    assert 'id="ended"' in story and 'id="revoke"' not in story  # expired: nothing to revoke
    pasted = server.settings.server.public_url + paths["a3"]  # expired: still found
    expired = owner.get("/admin/links", params={"q": pasted})
    assert expired.headers["location"] == f"/admin/links/{IDS[paths['a3']]}"
    follower = owner.get("/admin/links", params={"q": "o_c"}).text
    assert follower.count('<li><a href="/admin/links/') == 2
    assert "o_c<" not in follower  # the openid is shown masked only
    nobody = owner.get("/admin/links", params={"q": "nobody"}).text
    assert 'id="none"' in nobody
    recent = owner.get("/admin/links").text
    assert recent.count('<li><a href="/admin/links/') == 6
    missing = owner.get("/admin/links/ffffffffffffffff")
    assert missing.status_code == 404 and "not in the audit trail" in missing.text
    revoked = owner.get(f"/admin/links/{IDS[paths['a4']]}").text
    assert 'id="revoked"' in revoked and 'id="revoke"' not in revoked
    assert re.findall(r'<tr class="outcome-(\w+)">', revoked) == ["revoked"]


def test_rules_show_the_check_table_with_seven_day_counts_and_the_menu(
    day: tuple[RunningServer, httpx.Client, dict[str, str]],
) -> None:
    _, owner, _ = day
    page = owner.get("/admin/rules").text
    rows = re.findall(r"<tr>\s*<td class=\"lead\">(.*?)</td>(.*?)</tr>", page, re.S)
    cells = {name: re.findall(r">([^<>]*)</td>", rest) for name, rest in rows}
    assert cells["芝麻开门"][-2:] == ["4", "1"] and cells["Big"][-2:] == ["2", "1"]
    assert cells["Big"][2] == "1"  # its limit, as `bot check` shows it
    assert "no [menu]" in page


def test_rules_list_the_menu(tmp_path: Path, files_dir: Path, serve: object, clock: Clock) -> None:
    config = write_config(tmp_path)
    menu = (
        '\n[[menu.button]]\nname = "下载"\ntype = "click"\nkey = "芝麻开门"\n'
        '[[menu.button]]\nname = "更多"\n[[menu.button.sub_button]]\nname = "官网"\n'
        'type = "view"\nurl = "https://example.com/about"\n'
    )
    config.write_text(config.read_text(encoding="utf-8") + menu, encoding="utf-8")
    server = serve(load_settings(config))  # type: ignore[operator]
    set_password(server.settings, clock)
    with server.client() as owner:
        login(owner)
        page = owner.get("/admin/rules").text
    assert 'id="menu"' in page and "官网" in page and "https://example.com/about" in page
    assert "下载" in page and "click" in page


def test_the_overview_shows_a_store_that_fails_its_health_check(
    day: tuple[RunningServer, httpx.Client, dict[str, str]],
) -> None:
    """Reads still answer, writes do not (a full disk, a read-only replica): the page says so."""
    server, owner, _ = day

    async def full_disk() -> bool:
        raise StoreUnavailable("sqlite: disk full (4,096 bytes free)")

    server.app.state.services = dataclasses.replace(server.app.state.services, health=full_disk)
    page = owner.get("/admin").text
    health = re.search(r'<section class="card" id="health">(.*?)</section>', page, re.S)
    assert health and "not answering" in health.group(1) and "disk full" in health.group(1)
    assert text_by_id(page, "n-links") == "6"
