"""The Store contract, per concern (replies, counts, audit), against SQLite and a real Redis.

Direct calls on a store, no web server: what every backend must do the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from bot.owner.session import LoginThrottle
from bot.state import (
    Attempt,
    Claim,
    CodeFound,
    CodeTaken,
    CodeWrong,
    FirstAnswer,
    Fresh,
    Grant,
    GuessLimits,
    GuessRefused,
    Known,
    LinkRecord,
    Outcome,
    OverQuota,
    PickupCode,
    PushSeen,
    Remembered,
    Replayed,
    SendClaim,
    SendQuota,
    Store,
    store_from_url,
)
from tests.conftest import Clock

T = TypeVar("T")
Run = Callable[[Callable[[Store], Awaitable[T]]], T]


@pytest.fixture
def run(state_url: str, tmp_path: Path, clock: Clock) -> Run[object]:
    """Run a coroutine against a fresh store of this backend (the injected clock)."""
    url = state_url.replace("sqlite:///state", f"sqlite:///{tmp_path}/state")

    def _run(work: Callable[[Store], Awaitable[T]]) -> T:
        async def main() -> T:
            store = store_from_url(url, clock=clock)
            await store.open()
            try:
                return await work(store)
            finally:
                await store.close()

        return asyncio.run(main())

    return _run  # type: ignore[return-value]


def claim(lease: str, start: int = 0, end: int = 100, limit: int = 1) -> Claim:
    return Claim("L", lease, start, end, 100, limit, lease_seconds=30, keep=600)


def test_replies_first_claim_owns_the_answer(run: Run[object]) -> None:
    async def work(store: Store) -> list[object]:
        first = await store.claim_message("m", 60)
        second = await store.claim_message("m", 60)
        await store.save_reply("m", "hi", 60)
        return [first, second, await store.read_reply("m"), await store.read_reply("x")]

    assert run(work) == [None, Remembered(done=False), Remembered(done=True, text="hi"), None]


def test_replies_claim_and_record_answers_with_tagged_values(
    run: Run[object], clock: Clock
) -> None:
    now = clock()

    def link(name: str, at: float) -> LinkRecord:
        return LinkRecord(name, "o_q", "k", "f", at, at + 600)

    async def work(store: Store) -> list[object]:
        return [
            await store.claim_and_record("m1", 60, "one", link("L1", now), 1),
            await store.claim_and_record("m1", 60, "again", link("L2", now), 1),  # a retry
            await store.claim_and_record("m2", 60, "two", link("L3", now + 1), 1),  # over quota
            await store.claim_and_record("m2", 60, "two", link("L4", now + 1), 1),  # its retry
            await store.claim_and_record("m3", 60, None, None, 1),  # no link: success
        ]

    fresh, known, over, pending, silent = run(work)
    assert fresh == Fresh() and silent == Fresh()
    assert known == Known(Remembered(done=True, text="one"))
    assert over == OverQuota(now + 3600) and pending == Known(Remembered(done=False))


def test_replies_answer_push_keeps_a_whole_first_answer_in_one_step(
    run: Run[object], clock: Clock
) -> None:
    """#20: the replay record, claim, quota, links, codes and answer of a push in one call."""
    now = clock()

    def link(name: str, at: float, openid: str = "o_q", file: str = "f") -> LinkRecord:
        return LinkRecord(name, openid, "k", file, at, at + 600)

    def first(key: str, *links: LinkRecord, seen: str = "", codes: str = "") -> FirstAnswer:
        kept = tuple(
            PickupCode(code, f"token-{n}", lk.link_id, lk.expires_at)
            for n, (code, lk) in enumerate(zip(codes.split(), links, strict=False))
        )
        push = PushSeen(*seen.split(), 300.0) if seen else None
        return FirstAnswer(key, 60, f"answer {key}", links, 1, kept, push)

    async def work(store: Store) -> list[object]:
        return [
            await store.answer_push(
                first("m1", link("L1", now), link("L1b", now, file="g"), seen="t1 a", codes="AB")
            ),
            await store.answer_push(first("m1", link("L2", now), seen="t1 a", codes="CD")),
            await store.answer_push(first("m9", link("L9", now), seen="t1 b")),  # a replay
            await store.answer_push(first("m2", link("L3", now + 1, "o_r"), codes="AB")),  # taken
            await store.answer_push(first("m2", link("L4", now + 1, "o_r"), codes="EF")),
            await store.answer_push(first("m3", link("L5", now + 2))),  # o_q is over the quota
            await store.answer_push(first("m4")),  # no link, no triple: success
            await store.resolve_code("AB"),
            await store.resolve_code("CD"),
            await store.resolve_code("EF"),
            await store.read_reply("m9"),
            await store.read_reply("m3"),
            sorted(await store.links_of(openid="o_q")),
            await store.links_of(file="g"),
            await store.remember_push("t1", "a", 300),
            await store.remember_push("t1", "b", 300),
        ]

    got = run(work)
    assert got[:7] == [
        Fresh(),
        Known(Remembered(done=True, text="answer m1")),
        Replayed("a"),
        CodeTaken("AB"),
        Fresh(),
        OverQuota(now + 3600),
        Fresh(),
    ]
    assert got[7:10] == [("token-0", "L1"), None, ("token-0", "L4")]
    assert got[10:] == [None, Remembered(done=False), ["L1", "L1b"], ["L1b"], "a", "a"]


def test_counts_lease_release_and_count(run: Run[object]) -> None:
    async def work(store: Store) -> list[object]:
        a = await store.claim(claim("a"))
        b = await store.claim(claim("b"))  # a second whole copy in flight: held (503), for now
        busy = await store.usage("L")
        alive = await store.renew("L", "a", 60, 30)
        counted = await store.release("L", "a", 100)
        done = await store.usage("L")
        again = await store.claim(claim("c", 1, 100))
        return [a, b, busy.active, alive, counted, done, again]

    a, b, active, alive, counted, done, again = run(work)
    assert (a, b, active, alive, counted) == (Grant.GRANTED, Grant.HELD, 1, True, True)
    assert (done.active, done.completed, done.sent) == (0, 1, 100)  # type: ignore[attr-defined]
    assert again is Grant.EXHAUSTED


def test_counts_a_lapsed_lease_frees_the_link(run: Run[object], clock: Clock) -> None:
    async def work(store: Store) -> list[object]:
        await store.claim(claim("dead"))
        await store.renew("L", "dead", 40, 30)
        held = await store.claim(claim("early"))
        clock.advance(31)  # the worker died: nobody renews
        after = await store.claim(claim("after"))
        lapsed = await store.renew("L", "dead", 50, 30)
        usage = await store.usage("L")
        return [held, after, lapsed, usage.sent, usage.active]

    assert run(work) == [Grant.HELD, Grant.GRANTED, False, 40, 1]  # held: 503, never 410


def test_counts_a_claim_that_notes_its_span_counts_it_if_it_lapses(
    run: Run[object], clock: Clock
) -> None:
    """#20: a span handed to nginx is noted by its claim (no second write on the answer)."""

    async def work(store: Store) -> list[object]:
        noted = Claim("L", "x", 0, 100, 100, 1, lease_seconds=30, keep=600, handed=True)
        refused = Claim("M", "y", 0, 100, 100, 1, lease_seconds=30, keep=600, handed=True)
        granted = [await store.claim(noted), await store.claim(refused)]
        returned = await store.release("M", "y", 0)  # nginx refused it: nothing counted
        clock.advance(31)  # nginx never called back about x
        return [*granted, returned, await store.usage("L"), await store.usage("M")]

    x, y, returned, lapsed, refused = run(work)
    assert (x, y, returned) == (Grant.GRANTED, Grant.GRANTED, False)
    assert (lapsed.completed, lapsed.sent) == (1, 100)  # type: ignore[attr-defined]
    assert (refused.completed, refused.sent) == (0, 0)  # type: ignore[attr-defined]


def test_counts_a_span_handed_over_holds_until_nginx_reports_what_it_sent(
    run: Run[object],
) -> None:
    """#19 done-when 3 (x-accel): a transfer in flight holds a one-use link (503, not 410);
    broken halfway, nginx reports 40 of 100 bytes: the link restarts and resumes."""

    async def work(store: Store) -> list[object]:
        handed = Claim("L", "x", 0, 100, 100, 1, lease_seconds=30, keep=600, handed=True)
        first = await store.claim(handed)
        meanwhile = await store.claim(claim("y"))
        counted = await store.release("L", "x", 40)  # the follower went away after 40 bytes
        usage = await store.usage("L")
        restart = await store.claim(claim("z"))
        return [first, meanwhile, counted, usage.sent, usage.completed, restart]

    assert run(work) == [Grant.GRANTED, Grant.HELD, False, 40, 0, Grant.GRANTED]


def test_counts_a_release_voids_a_claim_that_lands_late(run: Run[object]) -> None:
    async def work(store: Store) -> list[object]:
        late = await store.claim(claim("late"))  # landed after the bot answered 503 ...
        await store.release("L", "late", 0)  # ... and the release queued behind it voids it
        return [late, await store.claim(claim("next"))]

    assert run(work) == [Grant.GRANTED, Grant.GRANTED]


def test_counts_revoked_links_refuse(run: Run[object]) -> None:
    async def work(store: Store) -> list[object]:
        first = await store.revoke(["L", "M"])
        again = await store.revoke(["L"])
        return [first, again, await store.claim(claim("a")), (await store.usage("L")).revoked]

    assert run(work) == [2, 0, Grant.REVOKED, True]


def test_audit_keeps_method_and_outcome(run: Run[object], clock: Clock) -> None:
    now = clock()

    async def work(store: Store) -> list[object]:
        await store.record_link(LinkRecord("L", "o", "k", "f", now, now + 600), 0)
        head = Attempt(now, Outcome.SERVED, "L", "f", status=200, method="HEAD")
        await store.record_attempt(head)
        await store.record_attempt(Attempt(now + 1, Outcome.EXHAUSTED, "L", "f", status=410))
        rows = await store.attempts_since(0, "L")
        return [[(a.method, a.outcome, a.status) for a in rows], await store.links_of(file="f")]

    rows, links = run(work)
    assert rows == [("HEAD", "served", 200), ("GET", "exhausted", 410)]
    assert links == ["L"]


CLICKS = SendQuota("event", 3, 60)
MESSAGES = SendQuota("message", 5, 48 * 3600)


def test_late_sends_once_per_message_and_the_retry_then_answers_success(run: Run[object]) -> None:
    async def work(store: Store) -> list[object]:
        await store.claim_and_record("m", 60, "the reply", None, 0)
        first = await store.claim_send("m", 60, "o_1", MESSAGES)
        again = await store.claim_send("m", 60, "o_1", MESSAGES)  # another worker, a retry
        return [first, again, await store.read_reply("m")]

    assert run(work) == [SendClaim.GRANTED, SendClaim.SENT, Remembered(done=True, text=None)]


@pytest.mark.parametrize(
    ("quota", "trigger_window"),
    [
        pytest.param(CLICKS, 60, id="click-3-a-minute"),
        pytest.param(MESSAGES, 48 * 3600, id="5-in-48h"),
    ],
)
def test_late_sends_keep_wechats_quota_per_trigger_and_follower(
    run: Run[object], clock: Clock, quota: SendQuota, trigger_window: float
) -> None:
    async def work(store: Store) -> list[object]:
        claims = [await store.claim_send(f"k{i}", 60, "o_1", quota) for i in range(quota.limit + 1)]
        other = await store.claim_send("other-follower", 60, "o_2", quota)
        other_trigger = await store.claim_send("k-other", 60, "o_1", SendQuota("x", 1, 60))
        clock.advance(trigger_window - 1)
        still = await store.claim_send("late", 60, "o_1", quota)
        clock.advance(2)  # the first sends left the window
        after = await store.claim_send("later", 60, "o_1", quota)
        return [claims, other, other_trigger, still, after]

    claims, other, other_trigger, still, after = run(work)
    assert claims == [SendClaim.GRANTED] * quota.limit + [SendClaim.OVER_QUOTA]
    assert (other, other_trigger) == (SendClaim.GRANTED, SendClaim.GRANTED)
    assert (still, after) == (SendClaim.OVER_QUOTA, SendClaim.GRANTED)


def test_media_ids_are_kept_until_they_expire(run: Run[object], clock: Clock) -> None:
    async def work(store: Store) -> list[object]:
        missing = await store.media_id("poster.png:1")
        await store.keep_media_id("poster.png:1", "MEDIA_1", clock() + 100)
        kept = await store.media_id("poster.png:1")
        clock.advance(101)
        expired = await store.media_id("poster.png:1")
        await store.keep_media_id("poster.png:1", "MEDIA_2", clock() + 100)
        return [missing, kept, expired, await store.media_id("poster.png:1")]

    assert run(work) == [None, "MEDIA_1", None, "MEDIA_2"]


def test_audit_links_since_reads_every_record_in_order(run: Run[object], clock: Clock) -> None:
    """What `bot stats` and the owner's page read (#21: one trip on Redis for all records)."""
    now = clock()

    async def work(store: Store) -> list[object]:
        for i in range(30):
            await store.record_link(
                LinkRecord(f"L{i}", f"o{i % 3}", "k", "f", now + i, now + 600), 0
            )
        return [
            [link.link_id for link in await store.links_since(now + 25)],
            len(await store.links_since(0)),
            await store.links_since(now + 100),
        ]

    assert run(work) == [["L25", "L26", "L27", "L28", "L29"], 30, []]


def test_owner_password_is_kept_until_replaced_or_forgotten(run: Run[object], clock: Clock) -> None:
    """The owner's page password (#21): one value for every instance; pruning never drops it."""

    async def work(store: Store) -> list[object]:
        before = await store.owner_password()
        await store.set_owner_password("$scrypt$first")
        first = await store.owner_password()
        await store.set_owner_password("$scrypt$second")
        await store.prune(clock() + 10 * 86400)
        second = await store.owner_password()
        await store.set_owner_password(None)
        return [before, first, second, await store.owner_password()]

    assert run(work) == [None, "$scrypt$first", "$scrypt$second", None]


def test_codes_only_wrong_ones_count_per_guesser_and_server_wide(
    run: Run[object], clock: Clock
) -> None:
    """#19 item 7: one atomic step: refused before any lookup past the guesser's limit, or
    with a miss while the server is under pressure; a right code from anyone else resolves."""
    limits = GuessLimits(per_guesser=2, server=3)
    start = clock()

    async def work(store: Store) -> list[object]:
        await store.put_code("K7QP3M", "token-1", "L1", start + 600)
        a = [await store.try_code(c, "a", limits) for c in ("K7QP3M", "AAAAAA", "", "K7QP3M")]
        clock.advance(15)  # "a" has 2 misses: refused, even the right code, nothing counted
        b = await store.try_code("BBBBBB", "b", limits)  # 3 misses in all: under pressure now
        pressed = [await store.try_code("K7QP3M", who, limits) for who in ("b", "c", "d")]
        fresh_miss = await store.try_code("CCCCCC", "e", limits)  # no miss yet: looked up
        clock.advance(46)  # "a"'s misses (second 0) leave the window: 2 left, no pressure
        later = [await store.try_code("K7QP3M", who, limits) for who in ("a", "b")]
        off = GuessLimits(0, 0)
        free = [await store.try_code("DDDDDD", "b", off) for _ in range(3)]
        return [*a, b, *pressed, fresh_miss, *later, *free]

    found = CodeFound("token-1", "L1")
    assert run(work) == [
        found,
        CodeWrong(),
        CodeWrong(),  # "" (a malformed code) is never found, and counts
        GuessRefused(start + 60),  # when "a"'s first miss leaves the sliding minute
        CodeWrong(),
        GuessRefused(start + 70),  # "b" missed once under pressure (its bucket began at 10)
        found,  # "c" and "d" guessed nothing wrong: the right code opens during the attack
        found,
        CodeWrong(),
        found,
        found,  # "b" has 1 miss left in the window, under its limit of 2
        CodeWrong(),
        CodeWrong(),
        CodeWrong(),
    ]


def test_audit_a_batch_is_one_call_and_a_retried_one_lands_once(
    run: Run[object], clock: Clock
) -> None:
    """#19 item 8: ``record_attempts`` writes a batch at once; rows with a uid written again (a
    batch retried after a timeout that landed late) stay one row each; without one, two rows."""
    now = clock()
    batch = [Attempt(now, Outcome.BAD_TOKEN, ip=f"198.51.100.{i}", uid=f"u{i}") for i in range(3)]
    twin = Attempt(now, Outcome.BAD_TOKEN, ip="203.0.113.1")

    async def work(store: Store) -> list[object]:
        await store.record_attempts([])
        await store.record_attempts(batch)
        await store.record_attempts(batch)
        await store.record_attempts([twin, twin])
        rows = await store.attempts_since(0)
        return sorted((a.ip, a.uid) for a in rows)

    assert run(work) == [
        ("198.51.100.0", "u0"),
        ("198.51.100.1", "u1"),
        ("198.51.100.2", "u2"),
        ("203.0.113.1", ""),
        ("203.0.113.1", ""),
    ]


def test_login_throttle_per_address_and_server_wide(run: Run[object], clock: Clock) -> None:
    """The owner's wrong passwords, noted in the store: every worker and instance counts them
    (moved from test_admin_units, where the throttle counted in its process)."""

    async def work(store: Store) -> None:
        throttle = LoginThrottle(store, 2, 3, clock=clock)
        await throttle.wrong("a")
        assert await throttle.retry_after("a") == 0
        await throttle.wrong("a")
        assert await throttle.retry_after("a") == 3600 and await throttle.retry_after("b") == 0
        clock.advance(600)
        await throttle.wrong("b")  # the third wrong password on the server: everyone waits
        assert await throttle.retry_after("c") == 3000 and await throttle.retry_after("a") == 3000
        clock.advance(3000)
        assert await throttle.retry_after("c") == 0 and await throttle.retry_after("a") == 0
        other = LoginThrottle(store, 2, 3, clock=clock)  # another worker, the same store
        await throttle.wrong("d")
        await other.wrong("d")
        assert await other.retry_after("d") == 3600 and await throttle.retry_after("d") == 3600

    run(work)
