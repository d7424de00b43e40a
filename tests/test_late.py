"""Issue #18 item 5: the reply that misses WeChat's 5 s goes by 客服消息, once, within quotas.

Real uvicorn servers on real SQLite and redis-server, WeChat's API faked on a real socket. Each
store call is cut at ``STORE_TIMEOUT`` (1 s) and the process's memory stands in, so a stalled
store alone is still answered in time; an answer misses its window when delays add up. Here: a
body that trickles in for 3.6 s (a slow network) and a push's one store trip (#20) that takes
0.9 s (tests/helpers/stores.Stalled): it answers, but after the body it ends past the deadline.
"""

from __future__ import annotations

import logging
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn

from bot.app import create_app
from bot.config import load_settings
from bot.logs.setup import InterceptHandler
from bot.state import store_from_url
from bot.wechat import build_message_xml
from tests.conftest import (
    DEMO_NAME,
    SECRET,
    WECHAT,
    Clock,
    LogCapture,
    RunningServer,
    start_server,
    write_config,
)
from tests.fake_wechat import APP_ID, APP_SECRET, FakeWeChat, running_fake
from tests.helpers.stores import Stalled
from tests.helpers.waiting import wait_for
from tests.helpers.webhook import link_of, text_of

pytestmark = pytest.mark.slow  # pushes made late in real time (a trickled body, slow store calls)

# Each call answers within the store's own timeout (1 s); after a slow body (SLOW_BODY), the
# push's one store trip (#20: the replay record, the pick-up code and the claim together, in
# ``answer_push``) ends past the deadline (4.5 s from arrival, less the 0.2 s margin). The
# margins are real time, so both are wide: the trip ends 0.5 s past the deadline (3.9 + 0.9 -
# 4.3; at 3.6 s, four pushes accepted 0.2 s late on a loaded machine were answered in time),
# and the body comes 0.6 s before the deadline ends its read.
SLOW = {"answer_push": 0.9}
SLOW_BODY = 3.9
Bot = Callable[..., tuple[RunningServer, Stalled]]


@pytest.fixture
def fake() -> Iterator[FakeWeChat]:
    with running_fake() as fake:
        yield fake


@pytest.fixture
def every_log(logs: LogCapture) -> Iterator[LogCapture]:
    """loguru's lines and the standard library's (httpx, uvicorn), routed as `bot serve` does."""
    root, handler = logging.getLogger(), InterceptHandler()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield logs
    root.removeHandler(handler)
    root.setLevel(level)


def api_keys(fake: FakeWeChat) -> dict[str, str]:
    """[wechat] for the fake's account (pushes are plaintext: the AES appid is not checked)."""
    return {"app_id": APP_ID, "app_secret": APP_SECRET, "api_base_url": fake.url}


@pytest.fixture
def bot(tmp_path: Path, files_dir: Path, clock: Clock, state_url: str) -> Iterator[Bot]:
    """Start a bot on a slowed store of this backend: ``bot(fake, keywords=…, **delays)``."""
    running: list[tuple[uvicorn.Server, threading.Thread]] = []

    def _start(
        fake: FakeWeChat | None, keywords: list[dict[str, Any]] | None = None, **delays: float
    ) -> tuple[RunningServer, Stalled]:
        sections: dict[str, Any] = {"state": {"url": state_url}}
        if fake is not None:
            sections["wechat"] = api_keys(fake)
        settings = load_settings(write_config(tmp_path, keywords=keywords, **sections))
        stalled = Stalled(store_from_url(settings.state.url, clock=clock), **delays)
        app = create_app(settings, clock=clock, store=stalled)  # type: ignore[arg-type]
        server, thread, url = start_server(app)
        running.append((server, thread))
        return RunningServer(url, settings, clock, app), stalled

    yield _start
    for server, thread in running:
        server.should_exit = True
        thread.join(20)


def push(
    server: RunningServer,
    *,
    msg_id: str | None = None,
    content: str = "芝麻开门",
    event: str = "",
    event_key: str = "",
    create_time: int | None = None,
    user: str = "o_follower_1",
    slow_body: float = 0.0,
) -> tuple[httpx.Response, float]:
    """One push as WeChat sends it (an event when ``event``), its body's second half sent
    ``slow_body`` seconds after the first; and how long its answer took from the first byte."""
    xml = build_message_xml(
        to_user="gh_account",
        from_user=user,
        create_time=create_time or int(server.clock()),
        msg_type="event" if event else "text",
        content="" if event else content,
        event=event,
        event_key=event_key,
        msg_id=None if event else msg_id,
    )
    params, body = WECHAT.build_request(
        xml, timestamp=str(int(server.clock())), nonce=secrets.token_hex(5), encrypt=False
    )
    head = (
        f"POST /wechat?{urlencode(params)} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: text/xml\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    half = len(body) // 2
    answer = b""
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        began = time.monotonic()
        sock.sendall(head + body[:half])
        if slow_body:
            time.sleep(slow_body)  # the slow network under test
        sock.sendall(body[half:])
        while chunk := sock.recv(65536):
            answer += chunk
        took = time.monotonic() - began
    status, _, content = answer.partition(b"\r\n\r\n")
    return httpx.Response(int(status.split()[1]), content=content), took


def sent_text(fake: FakeWeChat, n: int = 0) -> str:
    message = fake.sent[n]
    assert message["msgtype"] == "text", message
    return str(message["text"]["content"])


@pytest.mark.slow
def test_a_push_answered_late_gets_success_in_time_and_the_link_by_kefu_once(
    fake: FakeWeChat, bot: Bot, every_log: LogCapture
) -> None:
    """Done when: success within 5 s, then the link by 客服, once; WeChat's retries send nothing
    more; the link downloads; no log line holds the access token or the AppSecret."""
    server, stalled = bot(fake, **SLOW)
    first, took = push(server, msg_id="501", slow_body=SLOW_BODY)
    assert text_of(first) == "success" and took < 5.0, took
    assert wait_for(lambda: fake.sent), "no 客服 message"
    retry, _ = push(server, msg_id="501", slow_body=SLOW_BODY)  # WeChat's retry, all still slow
    assert text_of(retry) == "success"
    stalled.delays.clear()
    again, took = push(server, msg_id="501")  # its last retry, the store well again
    assert text_of(again) == "success" and took < 1.0
    assert fake.calls["cgi-bin/message/custom/send"] == 1
    text = sent_text(fake)
    assert fake.sent[0]["touser"] == "o_follower_1" and DEMO_NAME in text
    with server.client() as client:
        download = client.get(link_of(text))
    assert download.status_code == 200 and "演示文件" in download.text
    line = every_log.wait_for("sent by 客服 (text)")
    link_id = server.app.state.services.signer.verify(link_of(text).removeprefix("/d/")).link_id
    assert len(line) == 1 and f"links={link_id}" in line[0]
    assert_no_secrets(every_log, fake)


def assert_no_secrets(logs: LogCapture, fake: FakeWeChat) -> None:
    """No line the bot logged holds an access token, the AppSecret or the link key."""
    # The fake's own access lines are WeChat's side of the wire, not the bot's log.
    lines = [line for line in logs.messages() if '"POST /cgi-bin/' not in line]
    assert any("cgi-bin/message/custom/send" in line for line in lines)  # httpx's request line
    for line in lines:
        assert APP_SECRET not in line and SECRET not in line
        assert not any(token in line for token in fake.issued), line


@pytest.mark.slow
def test_a_news_card_goes_as_a_news_message(fake: FakeWeChat, bot: Bot) -> None:
    card = {"match": "卡片", "file": DEMO_NAME, "style": "news", "title": "说明"}
    card["description"] = "提取码 {code}"  # a pick-up code: one more (slow) store call
    server, _ = bot(fake, keywords=[card], **SLOW)
    response, _ = push(server, msg_id="601", content="卡片", slow_body=SLOW_BODY)
    assert text_of(response) == "success"
    assert wait_for(lambda: fake.sent)
    (article,) = fake.sent[0]["news"]["articles"]
    assert (
        article["title"] == "说明"
        and "/d/" in article["url"]
        and "提取码" in article["description"]
    )
    assert set(article) == {"title", "description", "url", "picurl"}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("trigger", "pushes", "allowed"),
    [
        pytest.param("click", 4, 3, id="click-3-a-minute"),
        pytest.param("message", 6, 5, id="message-5-in-48h"),
    ],
)
def test_late_replies_keep_wechats_quota_per_trigger(
    fake: FakeWeChat, bot: Bot, logs: LogCapture, trigger: str, pushes: int, allowed: int
) -> None:
    """Several late answers to one follower at once: WeChat's quota for the trigger is kept."""
    rules = [{"click": "GET_IT", "file": DEMO_NAME}, {"match": "芝麻开门", "file": DEMO_NAME}]
    server, _ = bot(fake, keywords=rules, **SLOW)
    now = int(server.clock())

    def one(i: int) -> httpx.Response:
        if trigger == "click":  # distinct events: each its own CreateTime
            return push(
                server, event="CLICK", event_key="GET_IT", create_time=now - i, slow_body=SLOW_BODY
            )[0]
        return push(server, msg_id=str(700 + i), slow_body=SLOW_BODY)[0]

    with ThreadPoolExecutor(pushes) as pool:
        answers = [text_of(r) for r in pool.map(one, range(pushes))]
    assert answers == ["success"] * pushes
    assert wait_for(lambda: len(logs.find("late reply to")) >= pushes), logs.find("late reply")
    assert len(fake.sent) == allowed
    refused = logs.find("客服 messages within", level="WARNING")
    assert (
        len(refused) == pushes - allowed
        and f"of a {'event' if trigger == 'click' else trigger}" in refused[0]
    )


@pytest.mark.slow
@pytest.mark.parametrize("errcode", [48001, 45015])
def test_where_kefu_is_refused_it_is_logged_once_and_answers_go_as_before(
    fake: FakeWeChat, bot: Bot, logs: LogCapture, errcode: int
) -> None:
    """48001 (account type) or 45015: logged once, then the degrade path answers in time."""
    server, _ = bot(fake, **SLOW)
    fake.script("cgi-bin/message/custom/send", errcode)
    first, _ = push(server, msg_id="801", slow_body=SLOW_BODY)
    assert text_of(first) == "success"
    assert wait_for(lambda: logs.find("lost:", level="ERROR"))
    later, took = push(server, msg_id="802", slow_body=SLOW_BODY)
    assert "/d/" in text_of(later) and took < 5.0  # as before #18: the link, in time
    assert fake.calls["cgi-bin/message/custom/send"] == 1 and not fake.sent
    assert len(logs.find("客服消息 are not available", level="WARNING")) == 1
    assert str(errcode) in logs.find("客服消息 are not available")[0]


@pytest.mark.slow
def test_without_an_app_secret_it_says_so_once_and_answers_as_before(
    bot: Bot, logs: LogCapture
) -> None:
    server, _ = bot(None, **SLOW)
    for msg_id in ("901", "902"):
        response, took = push(server, msg_id=msg_id, slow_body=SLOW_BODY)
        assert "/d/" in text_of(response) and took < 5.0
    assert len(logs.find("no [wechat] app_secret")) == 1
