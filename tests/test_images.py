"""Issue #18 item 6: image replies (temporary media, media_id kept under 3 days), and one access
token for every worker and instance on one Redis."""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import SecretStr

from bot.app import create_app
from bot.config import load_settings
from bot.errors import ConfigError
from bot.state import store_from_url
from bot.wechat import build_message_xml, parse_message
from bot.wechat.api import MemoryTokenCache, WeChatAPI
from bot.wechat.api.late import Answered, LateReplies
from bot.wechat.api.media import KEEP, Pictures
from bot.wechat.api.qr import render_png
from bot.wechat.messages import parse_tree
from bot.wechat.replies import ImageReply
from tests.conftest import (
    WECHAT,
    Clock,
    LogCapture,
    Start,
    free_port,
    start_server,
    write_config,
)
from tests.fake_wechat import APP_ID, APP_SECRET, FakeWeChat, running_fake
from tests.helpers.botproc import BotProcess
from tests.helpers.waiting import wait_for

pytestmark = pytest.mark.slow  # `bot serve --workers 2` and instances on one Redis

POSTER = {"match": "海报", "style": "image", "image": "poster.png"}
GIF = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"


@pytest.fixture
def fake() -> Iterator[FakeWeChat]:
    with running_fake() as fake:
        yield fake


def api_keys(fake: FakeWeChat) -> dict[str, str]:
    return {"app_id": APP_ID, "app_secret": APP_SECRET, "api_base_url": fake.url}


def png(text: str = "poster") -> bytes:
    """A real PNG (a QR code of ``text``)."""
    return render_png(f"https://example.com/{text}", scale=2)


def ask(
    url: str, clock: Callable[[], float], content: str = "海报", msg_id: str | None = None
) -> str:
    """The media_id of the image reply to ``content`` ("" when the reply is not an image)."""
    xml = build_message_xml(
        to_user="gh_account",
        from_user="o_follower_1",
        create_time=int(clock()),
        content=content,
        msg_id=msg_id or str(secrets.randbelow(10**9)),
    )
    params, body = WECHAT.build_request(
        xml, timestamp=str(int(clock())), nonce=secrets.token_hex(5), encrypt=False
    )
    response = httpx.post(url + "/wechat", params=params, content=body, timeout=15)
    assert response.status_code == 200, response.text
    if response.content == b"success":
        return ""
    root = parse_tree(WECHAT.read_reply(response.content))
    return root.findtext("Image/MediaId") or ""


@pytest.mark.parametrize(
    ("rule", "files", "secret", "says"),
    [
        pytest.param(
            POSTER, {"poster.png": png()}, False, "needs [wechat] app_secret", id="no-secret"
        ),
        pytest.param({**POSTER, "image": "a.gif"}, {"a.gif": GIF}, True, "not GIF", id="gif-name"),
        pytest.param(POSTER, {"poster.png": GIF}, True, "not a PNG or JPEG", id="gif-inside"),
        pytest.param(POSTER, {}, True, "is not a file inside", id="missing"),
        pytest.param(
            {**POSTER, "image": "../x.png"}, {}, True, "is not a file inside", id="outside"
        ),
        pytest.param(
            {**POSTER, "file": "poster.png"}, {"poster.png": png()}, True, "alone", id="and-file"
        ),
        pytest.param(
            {**POSTER, "style": "text"}, {"poster.png": png()}, True, "go together", id="no-style"
        ),
    ],
)
def test_image_rules_are_checked_at_load(
    tmp_path: Path,
    files_dir: Path,
    rule: dict[str, Any],
    files: dict[str, bytes],
    secret: bool,
    says: str,
) -> None:
    for name, data in files.items():
        (files_dir / name).write_bytes(data)
    wechat = {"app_secret": APP_SECRET} if secret else {}
    with pytest.raises(ConfigError, match=r"keywords\[0\]") as refused:
        load_settings(write_config(tmp_path, keywords=[rule], wechat=wechat))
    assert says in str(refused.value)
    if not secret:
        assert "BOT_WECHAT__APP_SECRET" in str(refused.value)  # the fix


def test_an_image_reply_uploads_once_reuses_its_media_id_and_renews_it_after_expiry(
    fake: FakeWeChat, files_dir: Path, start: Start, clock: Clock
) -> None:
    (files_dir / "poster.png").write_bytes(png())
    server = start(keywords=[POSTER], wechat=api_keys(fake))
    first = ask(server.url, clock)
    assert first == "MEDIA_1" and ask(server.url, clock) == "MEDIA_1"
    assert [(name, data[:8]) for name, data, _ in fake.uploads] == [("poster.png", png()[:8])]
    clock.advance(KEEP - 60)  # still within its 2.5 days
    assert ask(server.url, clock) == "MEDIA_1" and len(fake.uploads) == 1
    clock.advance(61)  # WeChat keeps it 3 days; the bot stops using it after 2.5
    assert ask(server.url, clock) == "MEDIA_2" and len(fake.uploads) == 2
    assert ask(server.url, clock) == "MEDIA_2" and len(fake.uploads) == 2


@pytest.mark.slow
def test_a_late_image_reply_goes_by_kefu_and_is_uploaded_again_after_40007(
    fake: FakeWeChat, files_dir: Path, start: Start, clock: Clock, logs: LogCapture
) -> None:
    """WeChat's media API slow past the deadline: success, then the image by 客服; WeChat
    refuses the media_id (40007), the picture is uploaded again and sent with the new one."""
    (files_dir / "poster.png").write_bytes(png())
    server = start(keywords=[POSTER], wechat=api_keys(fake))
    fake.slow("cgi-bin/media/upload", 5.0)
    fake.script("cgi-bin/message/custom/send", 40007)
    assert ask(server.url, clock) == ""  # success
    assert wait_for(lambda: fake.sent, timeout=15)
    assert ask(server.url, clock) == "MEDIA_2"  # the renewed media_id was kept
    assert fake.sent == [
        {"touser": "o_follower_1", "msgtype": "image", "image": {"media_id": "MEDIA_2"}}
    ]
    assert len(fake.uploads) == 2 and fake.calls["cgi-bin/message/custom/send"] == 2
    assert logs.find("refused (40007)") and logs.find("sent by 客服 (image)")


def test_pictures_and_late_replies_need_no_server(
    fake: FakeWeChat, files_dir: Path, tmp_path: Path, clock: Clock
) -> None:
    """The same 40007 path called directly: an image nobody holds is not sent twice."""
    picture = files_dir / "poster.png"
    picture.write_bytes(png())
    message = parse_message(
        build_message_xml(
            to_user="gh", from_user="o_1", create_time=1, content="海报", msg_id="1"
        ).encode()
    )

    async def main() -> list[Any]:
        store = store_from_url(f"sqlite:///{tmp_path}/state/bot.db", clock=clock)
        await store.open()
        cache = MemoryTokenCache(clock)
        async with WeChatAPI(APP_ID, SecretStr(APP_SECRET), cache, base_url=fake.url) as api:
            pictures = Pictures(api, store, wall=clock)
            late = LateReplies(api, store, pictures, reply_ttl=60)
            media_id = await pictures.media_id(picture)
            fake.script("cgi-bin/message/custom/send", 40007)
            answered = Answered(ImageReply(media_id), owner=True, picture=picture)
            sent = [await late.send(message, answered), await late.send(message, answered)]
            kept = await pictures.media_id(picture)
        await store.close()
        return [media_id, sent, kept]

    assert asyncio.run(main()) == ["MEDIA_1", [True, False], "MEDIA_2"]
    assert fake.sent == [{"touser": "o_1", "msgtype": "image", "image": {"media_id": "MEDIA_2"}}]


@pytest.mark.slow
def test_two_workers_and_two_more_instances_on_one_redis_use_one_access_token(
    fake: FakeWeChat, tmp_path: Path, files_dir: Path, redis_url: str
) -> None:
    """Done when: with --workers 2 and two instances on one Redis, one token serves every call.

    Every image is new, so every reply is an upload: an API call that needs the token. Real
    time throughout: the token's expiry is read by every process's own clock."""
    names = [f"p{i}.png" for i in range(48)]  # a busy machine favours one worker
    for name in names:
        (files_dir / name).write_bytes(png(name))
    rules = [{"match": f"图{i}", "style": "image", "image": n} for i, n in enumerate(names)]
    sections: dict[str, Any] = {"state": {"url": redis_url}, "wechat": api_keys(fake)}
    workers_dir = tmp_path / "workers"
    workers_dir.mkdir()
    port = free_port()
    config = write_config(
        workers_dir,
        keywords=rules,
        server={"port": port, "public_url": f"http://127.0.0.1:{port}"},
        files={"dir": str(files_dir)},
        log={"json": True},
        **sections,
    )
    bot = BotProcess(config, port, workers=2).wait_ready()
    settings = load_settings(write_config(tmp_path, keywords=rules, **sections))
    running: list[tuple[uvicorn.Server, threading.Thread, str]] = []
    try:
        for _ in range(2):  # two more instances, in this process
            running.append(start_server(create_app(settings)))
        urls = [running[0][2], running[1][2]]
        # Four at once on the instances, then the workers one connection at a time (a burst
        # would be accepted by one worker) until both have uploaded.
        with ThreadPoolExecutor(4) as pool:
            first = list(pool.map(lambda i: ask(urls[i % 2], time.time, f"图{i}"), range(4)))
        later = []
        for i in range(4, len(names)):
            later.append(ask(bot.url, time.time, f"图{i}"))
            # The workers' lines reach the log through the supervisor a moment after the
            # answer: read it once every upload so far is in it (the last one decides).
            wait_for(lambda: upload_lines(bot) == len(later), timeout=15)
            if len(uploaders(bot)) == 2:
                break
        workers = uploaders(bot)
    finally:
        bot.stop()
        for server, thread, _ in running:
            server.should_exit = True
            thread.join(10)
    assert all(media_id.startswith("MEDIA_") for media_id in first + later)
    assert len(workers) == 2, f"one worker took every connection: {workers}"
    assert fake.calls["cgi-bin/stable_token"] == 1
    assert fake.calls["cgi-bin/media/upload"] == len(first + later)
    assert len(fake.issued) == 1
    output = bot.text()
    assert APP_SECRET not in output and fake.token not in output


def upload_lines(bot: BotProcess) -> int:
    """How many uploads the workers have logged."""
    return sum("uploaded as temporary media" in line for line in bot.text().splitlines())


def uploaders(bot: BotProcess) -> set[int]:
    """The worker processes that logged an upload (JSON lines carry the process id)."""
    pids = set()
    for line in bot.text().splitlines():
        if line.startswith("{") and "uploaded as temporary media" in line:
            pids.add(int(json.loads(line)["record"]["process"]["id"]))
    return pids


def test_bot_check_shows_an_image_rule(tmp_path: Path, files_dir: Path) -> None:
    from bot.keywords.table import rows

    (files_dir / "poster.png").write_bytes(png())
    settings = load_settings(
        write_config(tmp_path, keywords=[POSTER], wechat={"app_secret": APP_SECRET})
    )
    assert rows(settings.keywords, {}, 0) == [("海报", "", "image poster.png", "", "always")]


def test_simulate_describes_an_image_reply() -> None:
    from bot.wechat.simulator import describe_reply

    xml = ImageReply("MEDIA_9").render(to_user="o", from_user="gh", create_time=1)
    assert describe_reply(xml) == "[图片] media_id MEDIA_9"
    assert "<MsgType><![CDATA[image]]></MsgType><Image><MediaId><![CDATA[MEDIA_9]]>" in xml
