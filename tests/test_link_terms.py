"""Issue #9, the link half: a link keeps what it was issued with, only its exact token verifies,
and only bad tokens are throttled. Real uvicorn over real sockets, both state backends."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from itsdangerous.encoding import base64_decode

from bot.links import LinkSigner
from tests.conftest import BIG_NAME, DEMO_NAME, SECRET, Clock, Start
from tests.helpers.webhook import ask, get, push_fields, reply_of, urls

ROOT = Path(__file__).resolve().parent.parent
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
SAME_FILE = [
    {"match": "芝麻开门", "file": DEMO_NAME},
    {"match": "Big", "file": BIG_NAME},  # unlimited, and the file's first keyword
    {"match": "一次", "file": BIG_NAME, "max_downloads": 1},
]


def test_seen_6_each_keyword_keeps_its_own_limit_and_pages_name_it(
    start: Start, files_dir: Path
) -> None:
    """Issue #9 seen 6: two keywords, one file; the unlimited one is not held to the other's 1."""
    server = start(keywords=SAME_FILE)
    _, free = ask(server, "big")
    _, once = ask(server, "一次")
    original = (files_dir / BIG_NAME).read_bytes()
    free_results = [get(server, free) for _ in range(3)]
    assert [r.status_code for r in free_results] == [200, 200, 200]
    assert all(r.content == original for r in free_results)
    first, second = get(server, once), get(server, once)
    assert first.status_code == 200 and first.content == original
    assert second.status_code == 410
    assert (second.json()["error"], second.json()["keyword"]) == ("link_exhausted", "一次")
    with server.client() as client:
        page = client.get(once)
    assert page.status_code == 410 and "一次" in page.text and "Big" not in page.text
    server.clock.advance(601)
    expired = get(server, free)
    assert (expired.status_code, expired.json()["keyword"]) == (410, "Big")
    gone = get(server, once)
    assert (gone.status_code, gone.json()["keyword"]) == (410, "一次")


def bot(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=60,
        check=False,
    )


@pytest.mark.slow
def test_seen_7_a_link_keeps_its_expiry_and_limit_across_a_config_edit(
    start: Start, clock: Clock, tmp_path: Path
) -> None:
    """Issue #9 seen 7: issued for 600 s, restarted with ttl 60 (and a limit): still valid at 100 s."""
    before = start(links={"ttl_seconds": 600})
    text, path = ask(before, "big")
    issued = clock()
    assert "10 分钟" in text
    after = start(links={"ttl_seconds": 60, "max_downloads": 1})
    clock.advance(100)
    assert [get(after, path).status_code for _ in range(2)] == [200, 200]  # issued unlimited
    _, fresh = ask(after, "big")  # a new link gets the edited terms
    assert [get(after, fresh).status_code for _ in range(2)] == [200, 410]
    link_id = LinkSigner([SECRET], 600, files=[BIG_NAME], clock=clock).verify(path[3:]).link_id
    audit = bot(tmp_path / "config.toml", "audit", link_id)
    assert audit.returncode == 0, audit.stderr
    from bot.state.report import when

    assert f"expires {when(issued + 600)}" in audit.stdout
    clock.advance(501)  # 601 s after issue
    expired = get(after, path)
    assert expired.status_code == 410 and expired.json()["error"] == "link_expired"


def _spare_bits(token: str) -> str:
    """The same token with the last character's unused low bits changed (decodes the same)."""
    last = B64.index(token[-1])
    return token[:-1] + B64[last ^ 1]


@pytest.mark.parametrize(
    "respell",
    [
        pytest.param(lambda t: t + "%C3%A9", id="appended-e-acute"),
        pytest.param(_spare_bits, id="last-char-spare-bits"),
        pytest.param(lambda t: t + "=", id="padding"),
        pytest.param(lambda t: t + "%00", id="nul"),
        pytest.param(lambda t: t.replace(".", ".%C3%A9", 1), id="inner-non-ascii"),
    ],
)
def test_seen_8_only_the_exact_issued_token_verifies(
    start: Start, respell: Callable[[str], str]
) -> None:
    """Issue #9 seen 8 (the token half): any other spelling of a link is 403."""
    server = start()
    _, path = ask(server, "芝麻开门")
    token = path[3:]
    other = respell(token)
    assert other != token
    if respell is _spare_bits:  # the variant really decodes to the same signature bytes
        assert base64_decode(other.rsplit(".", 1)[1]) == base64_decode(token.rsplit(".", 1)[1])
    assert get(server, path).status_code == 200
    with server.client() as client:
        refused = client.send(client.build_request("GET", httpx.URL(server.url + "/d/" + other)))
    assert refused.status_code == 403


def test_seen_8_a_trailing_slash_is_not_the_link(start: Start) -> None:
    """Issue #9 seen 8: ``/d/<token>/`` is not redirected to the link (another URI, same link)."""
    server = start()
    _, path = ask(server, "芝麻开门")
    with server.client() as client:
        slashed = client.get(path + "/")
    assert slashed.status_code == 404 and "location" not in slashed.headers


def test_seen_9_a_token_from_a_clock_ahead_within_the_skew_is_accepted(start: Start) -> None:
    """Issue #9 seen 9: a token signed by an instance whose clock is 1 s ahead downloads."""
    server = start(wechat={"max_clock_skew": 300})
    files = [DEMO_NAME, BIG_NAME]

    def token_from(ahead: float) -> str:
        signer = LinkSigner([SECRET], 600, files=files, clock=lambda: server.clock() + ahead)
        return signer.issue(DEMO_NAME)[0]

    assert get(server, "/d/" + token_from(1)).status_code == 200
    assert get(server, "/d/" + token_from(300)).status_code == 200
    assert get(server, "/d/" + token_from(302)).status_code == 403


def test_seen_13_bad_tokens_never_lock_out_a_valid_link(start: Start) -> None:
    """Issue #9 seen 13: after 30 bad tokens from one (carrier NAT) address a valid link still works."""
    server = start(limits={"bad_tokens_per_ip_per_minute": 30})
    _, path = ask(server, "芝麻开门")
    with server.client() as client:
        bad = [client.get(f"/d/garbage{i}").status_code for i in range(30)]
        valid = client.get(path)
        more_bad = client.get("/d/garbage-more")
        valid_again = client.get(path)
    assert bad == [403] * 30
    assert valid.status_code == 200
    assert more_bad.status_code == 429 and int(more_bad.headers["retry-after"]) > 0
    assert valid_again.status_code == 200


RULE_TERMS = [
    {"click": "MENU_BIG", "file": BIG_NAME, "max_downloads": 1},
    {"match": "Big", "file": BIG_NAME},  # unlimited ([links] max_downloads 0); typable
    {"match": ["多个", "many"], "files": [DEMO_NAME, BIG_NAME], "max_downloads": 1},
]


def test_every_link_of_a_rule_signs_its_name_and_limit(start: Start) -> None:
    """Issues #9 × #11: each file of a rule, and a menu tap, get the rule's own limit; pages name
    a keyword the follower can type (a menu key is not one)."""
    server = start(keywords=RULE_TERMS)
    many = urls(reply_of(push_fields(server, encrypt=False, content="MANY")).content)
    assert len(many) == 2
    for url in many:
        path = "/d/" + url.split("/d/", 1)[1]
        assert get(server, path).status_code == 200
        refused = get(server, path)
        assert (refused.status_code, refused.json()["keyword"]) == (410, "多个")
    tap = push_fields(server, encrypt=False, msg_type="event", event="CLICK", event_key="MENU_BIG")
    (menu,) = urls(reply_of(tap).content)
    path = "/d/" + menu.split("/d/", 1)[1]
    assert get(server, path).status_code == 200
    refused = get(server, path)
    assert (refused.status_code, refused.json()["keyword"]) == (410, "Big")
    _, free = ask(server, "big")
    assert [get(server, free).status_code for _ in range(3)] == [200, 200, 200]
