"""Issue #19 item 7: `/k` stays usable under a guessing attack, on SQLite and on Redis.

Addresses come from X-Forwarded-For, believed from 127.0.0.1 (`[server] trusted_proxies`).
"""

from __future__ import annotations

import itertools
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from bot.codes import guesser, new_code, normalize
from tests.conftest import Clock, RunningServer, Start
from tests.helpers.pickup import WRONG, issue

PROXIED = {"trusted_proxies": ["127.0.0.1/32"]}
FOLLOWER = "203.0.113.7"


def at(server: RunningServer, ip: str, code: str) -> httpx.Response:
    """``GET /k/<code>`` as the address ``ip`` (through the trusted proxy)."""
    with server.client(headers={"X-Forwarded-For": ip}) as client:
        return client.get(f"/k/{quote(code, safe='')}")


def wrong_code(exclude: str) -> str:
    while (code := new_code()) == exclude:
        pass
    return code


def test_seen_7_a_guessing_attack_from_many_addresses_leaves_the_right_code_working(
    start: Start, clock: Clock
) -> None:
    """Issue #19 seen 7: 60 wrong codes a minute per worker, from any addresses, made /k answer
    429 to every follower, including those with the right code."""
    server = start(server=PROXIED, limits={"wrong_codes_per_minute": 4})
    path, code = issue(server)
    attackers = [f"198.51.100.{i}" for i in range(1, 21)]
    first = [at(server, ip, wrong_code(code)).status_code for ip in attackers]
    again = [at(server, ip, wrong_code(code)) for ip in attackers]
    assert first == [404] * 20  # each address's first guess is looked up, and counted
    assert {r.status_code for r in again} == {429}  # under pressure: one wrong code a minute
    assert all(int(r.headers["retry-after"]) > 0 for r in again)
    found = at(server, FOLLOWER, code)  # a follower with the right code, during the attack
    assert found.status_code == 302 and found.headers["location"] == path
    assert at(server, "198.51.100.200", code).status_code == 302  # any address without a miss
    clock.advance(61)  # the minute moves on: the attackers' misses leave the window
    assert at(server, attackers[0], wrong_code(code)).status_code == 404


def test_seen_7_the_limits_are_shared_by_every_worker_and_instance(
    start: Start, clock: Clock
) -> None:
    """Issue #19 seen 7: the caps were per process: 2 instances x 2 workers allowed 240 lookups
    a minute. Four servers on one store (as 2 x 2 processes would be) now count together."""
    servers = [start(server=PROXIED) for _ in range(4)]  # defaults: 10 per address, 60 in all
    _, code = issue(servers[0])
    spread = itertools.cycle(servers)
    one = [at(next(spread), "198.51.100.1", wrong_code(code)).status_code for _ in range(10)]
    assert one == [404] * 10
    assert {at(s, "198.51.100.1", code).status_code for s in servers} == {429}
    clock.advance(61)
    many = [f"198.51.100.{i}" for i in range(2, 62)]  # 60 wrong codes from 60 addresses
    assert {at(next(spread), ip, wrong_code(code)).status_code for ip in many} == {404}
    assert {at(s, many[0], wrong_code(code)).status_code for s in servers} == {429}
    assert {at(s, FOLLOWER, code).status_code for s in servers} == {302}


SPELLINGS = [
    pytest.param(lambda c: c.translate({ord(x): ord(x) + 0xFEE0 for x in c}), id="full-width"),
    pytest.param(lambda c: c[:3] + "\u3000" + c[3:], id="ideographic-space"),
    pytest.param(lambda c: c[:3] + "\u00a0" + c[3:], id="no-break-space"),
    pytest.param(lambda c: c[:3] + "\t" + c[3:], id="tab"),
    pytest.param(lambda c: c[:3] + "\u200b" + c[3:], id="zero-width-space"),
    pytest.param(lambda c: f"\ufeff {c[:2]}\u2014{c[2:4].lower()}\u30fb{c[4:]}\r\n", id="mixed"),
]


@pytest.mark.parametrize("spell", SPELLINGS)
def test_seen_7_full_width_and_every_kind_of_space_fold_before_lookup(
    start: Start, spell: Any
) -> None:
    """Issue #19 seen 7: full-width characters, a no-break space, a tab or a zero-width space
    in a code counted as wrong guesses."""
    server = start(limits={"wrong_codes_per_ip_per_minute": 2})
    path, code = issue(server)
    typed = spell(code)
    assert typed != code
    for _ in range(3):  # past the limit if any of them counted as wrong
        assert at(server, "127.0.0.1", typed).headers.get("location") == path
        with server.client() as client:
            form = client.get("/k", params={"code": typed})
        assert form.status_code == 302 and form.headers["location"] == path


def test_wrong_codes_from_one_address_wait_but_its_links_download(
    start: Start, clock: Clock
) -> None:
    """#9 deliver 7 (valid links are never throttled, carrier NAT) over #14: the address's codes
    wait; its links download; a forged /d/ token is not a wrong code (no lookup can win it)."""
    server = start(limits={"wrong_codes_per_ip_per_minute": 2, "bad_tokens_per_ip_per_minute": 1})
    path, code = issue(server)
    with server.client() as client:
        assert client.get("/d/forged.token").status_code == 403
        wrong = [client.get(f"/k/{c}") for c in ("AAAAAA", "short")]
        refused = client.get(f"/k/{code}")
        link = client.get(path)
    assert [r.status_code for r in wrong] == [404, 404] and all(WRONG in r.text for r in wrong)
    assert refused.status_code == 429 and 0 < int(refused.headers["retry-after"]) <= 60
    assert link.status_code == 200
    clock.advance(61)
    assert at(server, "127.0.0.1", code).status_code == 302


@pytest.mark.parametrize(
    ("ip", "counted_as"),
    [
        pytest.param("198.51.100.7", "198.51.100.7", id="ipv4"),
        pytest.param("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64", id="ipv6-its-64"),
        pytest.param("::ffff:198.51.100.7", "198.51.100.7", id="ipv4-mapped"),
        pytest.param("-", "-", id="unknown"),
    ],
)
def test_guesser(ip: str, counted_as: str) -> None:
    assert guesser(ip) == counted_as


@pytest.mark.parametrize(
    "typed",
    [
        "Ｋ７ＱＰ３Ｍ",
        "ｋ７ｑｐ３ｍ",
        "K7Q\u3000P3M",
        "K7Q\u00a0P3M",
        "K7Q\tP3M",
        "K7Q\u200bP3M",
        "K7Q－P3M",
    ],
)
def test_normalize_folds_what_phones_and_ime_type(typed: str) -> None:
    assert normalize(typed) == "K7QP3M"
