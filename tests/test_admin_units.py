"""The owner's page without a server: the password hash, sessions, CSRF, the throttle, the
overview's sums and periods, the chart (all pure, clocks injected)."""

from __future__ import annotations

import hashlib
from datetime import datetime

import pytest

from bot.clock import CHINA
from bot.links import LinkSigner
from bot.owner.chart import bar_chart, nice_top
from bot.owner.overview import PERIODS, mask_openid, overview, size_text
from bot.owner.password import (
    Cost,
    PasswordRefused,
    fingerprint,
    hash_password,
    parse,
    verify_password,
)
from bot.owner.session import SESSION_SECONDS, Sessions
from bot.state import Attempt, LinkRecord
from bot.state.report import summarize
from tests.conftest import Clock

CHEAP = Cost(ln=10)
KEYS = ["owner-test-key-0123456789"]


def test_hash_is_scrypt_with_its_cost_and_a_fresh_salt() -> None:
    salt = bytes(range(16))
    stored = hash_password("correct horse", cost=CHEAP, salt=salt)
    expected = hashlib.scrypt(b"correct horse", salt=salt, n=1024, r=8, p=1, dklen=32)
    cost, got_salt, key = parse(stored)
    assert stored.startswith("$scrypt$ln=10,r=8,p=1$")
    assert (cost, got_salt, key) == (CHEAP, salt, expected)
    assert hash_password("correct horse", cost=CHEAP) != hash_password("correct horse", cost=CHEAP)
    assert Cost() == Cost(17, 8, 1)  # OWASP's scrypt parameters by default


@pytest.mark.parametrize(
    ("typed", "right"),
    [
        pytest.param("correct horse", True, id="same"),
        pytest.param("Correct horse", False, id="case"),
        pytest.param("correct horse ", False, id="space"),
        pytest.param("ｃｏｒｒｅｃｔ　ｈｏｒｓｅ", True, id="full-width"),  # NFKC
        pytest.param("", False, id="empty"),
        pytest.param("x" * 5000, False, id="huge-unhashed"),
    ],
)
def test_verify(typed: str, right: bool) -> None:
    assert verify_password(typed, hash_password("correct horse", cost=CHEAP)) is right


@pytest.mark.parametrize(
    "stored",
    [
        pytest.param("", id="empty"),
        pytest.param("plain-text-password", id="plain"),
        pytest.param("$scrypt$ln=30,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 43, id="too-dear"),
        pytest.param("$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA", id="other-kind"),
    ],
)
def test_a_stored_value_we_did_not_write_is_refused(stored: str) -> None:
    with pytest.raises(ValueError, match="scrypt"):
        verify_password("anything", stored)


@pytest.mark.parametrize("password", ["short", "x" * 1025])
def test_new_passwords_have_bounds(password: str) -> None:
    with pytest.raises(PasswordRefused, match="characters"):
        hash_password(password, cost=CHEAP)


def test_sessions_last_eight_hours_and_one_password() -> None:
    clock = Clock()
    sessions = Sessions(KEYS, clock=clock)
    value = sessions.issue("fp1")
    session = sessions.read(value, "fp1")
    assert session is not None and sessions.read(value, "fp2") is None
    clock.advance(SESSION_SECONDS)
    assert sessions.read(value, "fp1") == session
    clock.advance(1)
    assert sessions.read(value, "fp1") is None
    assert sessions.read(None, "fp1") is None and sessions.read("x" * 600, "fp1") is None
    assert sessions.read(value[:-2] + "xx", "fp1") is None


def test_sessions_survive_key_rotation_but_not_other_purposes() -> None:
    clock = Clock()
    old = Sessions(KEYS, clock=clock).issue("fp")
    assert Sessions([*KEYS, "owner-test-key-NEW-0123456789"], clock=clock).read(old, "fp")
    assert Sessions(["another-key-0123456789abc"], clock=clock).read(old, "fp") is None
    signer = LinkSigner(KEYS, 600, files=["a.txt"], clock=clock)
    token, _ = signer.issue("a.txt")
    assert Sessions(KEYS, clock=clock).read(token, "fp") is None  # a download link is no session


def test_csrf_is_bound_to_the_session() -> None:
    sessions = Sessions(KEYS, clock=Clock())
    one = sessions.read(sessions.issue("fp"), "fp")
    two = sessions.read(sessions.issue("fp"), "fp")
    assert one and two and one != two
    assert sessions.csrf_ok(one, sessions.csrf(one))
    assert not sessions.csrf_ok(one, sessions.csrf(two))
    assert not sessions.csrf_ok(one, "") and not sessions.csrf_ok(one, "ü" * 27)


def test_fingerprint_changes_with_every_new_hash() -> None:
    first, second = hash_password("same one!", cost=CHEAP), hash_password("same one!", cost=CHEAP)
    assert fingerprint(first) != fingerprint(second) and len(fingerprint(first)) == 16


NOW = datetime(2027, 1, 15, 16, 30, tzinfo=CHINA).timestamp()
MIDNIGHT = datetime(2027, 1, 15, tzinfo=CHINA).timestamp()


def test_periods_start_at_beijing_midnight() -> None:
    assert PERIODS["today"].start(NOW) == MIDNIGHT
    assert PERIODS["7d"].start(NOW) == MIDNIGHT - 6 * 86400
    assert PERIODS["30d"].start(NOW) == MIDNIGHT - 29 * 86400
    assert [label for _, label in PERIODS["7d"].columns(NOW)] == [
        "1/9", "1/10", "1/11", "1/12", "1/13", "1/14", "1/15",
    ]  # fmt: skip
    assert len(PERIODS["today"].columns(NOW)) == 24


def link(link_id: str, openid: str, keyword: str, file: str, at: float) -> LinkRecord:
    return LinkRecord(link_id, openid, keyword, file, at, at + 600)


def test_overview_adds_up_as_bot_stats_does() -> None:
    links = [
        link("L1", "o_a", "芝麻开门", "a.txt", MIDNIGHT + 3600),
        link("L2", "o_b", "芝麻开门", "a.txt", MIDNIGHT + 7200),
        link("L3", "o_a", "big", "b.bin", MIDNIGHT - 86400 + 60),  # yesterday
    ]
    attempts = [
        Attempt(
            MIDNIGHT + 3700, "served", "L1", "a.txt", bytes_sent=10, complete=True, counted=True
        ),
        Attempt(
            MIDNIGHT + 3800, "served", "L1", "a.txt", bytes_sent=10, complete=True, counted=True
        ),
        Attempt(MIDNIGHT + 7300, "served", "L2", "a.txt", bytes_sent=4, method="HEAD"),
        Attempt(MIDNIGHT + 9000, "expired", "L2", "a.txt", status=410),
        Attempt(MIDNIGHT + 9100, "bad_token", status=403, count=3),
        Attempt(MIDNIGHT - 86000, "served", "L3", "b.bin", bytes_sent=99, counted=True),
    ]
    week = overview(PERIODS["7d"], NOW, links, attempts)
    files, bad = summarize(links, attempts)
    assert (week.files, week.bad_tokens) == (files, bad) == (files, 3)
    assert (week.links, week.followers, week.downloads, week.bytes_sent) == (3, 2, 3, 123)
    assert (week.downloaded_links, week.downloading_followers, week.expired) == (2, 1, 1)
    assert round(week.share, 3) == 0.667
    assert week.refusals == [("无效链接 · bad token", 3), ("链接过期 · expired", 1)]
    assert [(k.keyword, k.links, k.downloads) for k in week.keywords] == [
        ("芝麻开门", 2, 2),
        ("big", 1, 1),
    ]
    assert [(c.links, c.downloads) for c in week.columns][-2:] == [(1, 1), (2, 2)]
    assert [f.file for f in week.top_files] == ["a.txt", "b.bin"]
    today = overview(PERIODS["today"], NOW, links[:2], attempts[:5])
    assert [(c.label, c.links, c.downloads) for c in today.columns][1:3] == [
        ("01", 1, 2),
        ("02", 1, 0),
    ]


def test_chart_scales_to_a_round_top() -> None:
    assert [nice_top(v) for v in (0, 1, 3, 10, 11, 40, 120)] == [1, 1, 5, 10, 20, 50, 200]
    chart = bar_chart(["a", "b"], [[2, 4], [1, 0]])
    assert [t for _, t in chart.y_ticks] == ["0", "2", "5"]
    tall = max(chart.bars, key=lambda b: b.height)
    assert (tall.value, tall.series, tall.label) == (4, 0, "b")
    assert all(b.y + b.height == pytest.approx(chart.base) for b in chart.bars)
    assert len(bar_chart([str(d) for d in range(30)], [[0] * 30]).x_labels) == 8


def test_sizes_and_masked_openids() -> None:
    assert [size_text(n) for n in (316, 2048, 3 * 1024 * 1024 + 17)] == [
        "316 B",
        "2.0 KB",
        "3.0 MB",
    ]
    assert mask_openid("o6_bmjrPTlm6_2sgVt7hMZOPfL2M") == "o6_b…fL2M"
    assert mask_openid("o_a") == "o_…"
