"""Issue #17: one request budget from a push's arrival, on injected clocks, and a stalled store."""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from bot.answers import Answerer
from bot.app import create_app
from bot.config import Settings
from bot.reload import rule_parts
from bot.state import Store, store_from_url
from bot.wechat import build_message_xml
from bot.wechat.messages import parse_message
from bot.wechat.replies import SuccessReply
from tests.conftest import WECHAT, Clock, LogCapture, start_server
from tests.helpers.stores import Stalled


class Ticking:
    """A monotonic clock that moves on by ``step`` every time it is read (no real waiting)."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 100.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def xml(msg_id: str, content: str = "芝麻开门") -> str:
    return build_message_xml(
        to_user="gh_account",
        from_user="o_follower_1",
        create_time=1_800_000_000,
        msg_type="text",
        content=content,
        msg_id=msg_id,
    )


def test_a_pending_retry_gets_success_at_the_deadline_on_the_injected_clock(
    settings: Settings, tmp_path: Path, clock: Clock, logs: LogCapture
) -> None:
    """The first attempt never finishes: the retry answers success when the budget is spent,
    measured on the injected monotonic clock (the real wait is a few polls, not 4.5 s)."""
    mono = Ticking(0.25)

    async def run() -> tuple[object, float, float]:
        store = store_from_url(f"sqlite:///{tmp_path / 'answers.db'}", clock=clock)
        await store.open()
        try:
            message = parse_message(xml("78").encode())
            await store.claim_message(message.dedup_key, 60)  # the first attempt, still running
            router = rule_parts(settings, clock).router
            answerer = Answerer(router, store, per_hour=10, clock=clock, mono=mono)
            deadline = answerer.start()
            began = time.monotonic()
            reply = await answerer.answer(message, deadline)
            return reply, deadline.at - mono.now, time.monotonic() - began
        finally:
            await store.close()

    reply, left, real = asyncio.run(run())
    assert isinstance(reply, SuccessReply)
    assert -mono.step <= left <= 0.5  # answered at the deadline (minus a margin), not past it
    assert real < 4.0  # the injected clock, not real time, spent the budget
    assert logs.find("at the deadline", level="WARNING")


@pytest.mark.slow
def test_slow_body_slow_replay_slow_claim_still_answer_within_the_budget(
    settings: Settings, clock: Clock
) -> None:
    """A body trickled over 3 s, then a replay check and a claim that each stall 3 s: the
    answer leaves within 4.8 s of the push's arrival (one deadline, not three)."""
    inner = store_from_url(settings.state.url, clock=clock)
    app = create_app(settings, clock=clock, store=Stalled(inner, 3.0))  # type: ignore[arg-type]
    answer, elapsed = trickled_push(app, xml("79"), clock, pauses=(1.5, 1.5))
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert elapsed < 4.8, f"answered {elapsed:.2f} s after the push arrived"


@pytest.fixture
def settings(tmp_path: Path, files_dir: Path) -> Settings:
    from bot.config import load_settings
    from tests.conftest import write_config

    return load_settings(write_config(tmp_path, state={"url": "sqlite:///state/bot.db"}))


def trickled_push(
    app: Any, message: str, clock: Clock, *, pauses: tuple[float, ...]
) -> tuple[bytes, float]:
    """POST a push whose body arrives in len(pauses) + 1 pieces with these pauses between (the
    slow sender under test); the whole answer and the seconds from the push's first byte."""
    server, thread, url = start_server(app)
    try:
        params, body = WECHAT.build_request(
            message, timestamp=str(int(clock())), nonce=secrets.token_hex(5), encrypt=False
        )
        head = (
            f"POST /wechat?{urlencode(params)} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: text/xml\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        size = len(body) // (len(pauses) + 1)
        with socket.create_connection(
            ("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=15
        ) as sock:
            arrived = time.monotonic()
            sock.sendall(head)
            for n, pause in enumerate(pauses):
                sock.sendall(body[n * size : (n + 1) * size])
                time.sleep(pause)
            sock.sendall(body[len(pauses) * size :])
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
            return answer, time.monotonic() - arrived
    finally:
        server.should_exit = True
        thread.join(10)


class StalledTrip:
    """The real store, with a push's one trip (#20: replay record, claim, links, codes) stalled."""

    def __init__(self, inner: Store, seconds: float) -> None:
        self._inner, self._seconds = inner, seconds

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def answer_push(self, *args: Any) -> Any:
        await asyncio.sleep(self._seconds)
        return await self._inner.answer_push(*args)


@pytest.mark.slow
def test_slow_body_then_a_stalled_store_trip_still_answers_with_a_link_in_budget(
    settings: Settings, clock: Clock, logs: LogCapture
) -> None:
    """#20: a body trickled over 3 s, then the push's one store trip stalls 3 s: the answer (the
    link, from this process's memory) leaves within 4.8 s of the push's arrival."""
    inner = store_from_url(settings.state.url, clock=clock)
    app = create_app(settings, clock=clock, store=StalledTrip(inner, 3.0))  # type: ignore[arg-type]
    answer, elapsed = trickled_push(app, xml("80"), clock, pauses=(3.0,))
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert elapsed < 4.8, f"answered {elapsed:.2f} s after the push arrived"
    assert b"/d/" in answer and logs.find("falls back to this process", level="ERROR")
