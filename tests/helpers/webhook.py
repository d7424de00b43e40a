"""Pushing messages to a running bot as WeChat's server does, and reading its replies."""

from __future__ import annotations

import itertools
import re
import secrets
from typing import Any

import httpx
import xmltodict
from wechatpy.fields import ArticlesField
from wechatpy.replies import ArticlesReply, deserialize_reply

from bot.wechat import build_message_xml, parse_message
from tests.conftest import WECHAT, RunningServer, push

MSG_IDS = itertools.count(1001)


def send(
    server: RunningServer,
    *,
    content: str = "",
    msg_type: str = "text",
    event: str = "",
    user: str = "o_follower_1",
    msg_id: str | None = "auto",
    encrypt: bool = False,
    compatible: bool = False,
) -> httpx.Response:
    if msg_id == "auto":  # every message a fresh MsgId, as WeChat does (retries are deduplicated)
        msg_id = str(next(MSG_IDS))
    return push(
        server.url,
        timestamp=server.clock(),
        msg_id=msg_id,
        content=content,
        msg_type=msg_type,
        event=event,
        user=user,
        encrypt=encrypt,
        compatible=compatible,
    )


def reply_text(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return parse_message(WECHAT.read_reply(response.content)).content


def link_path(text: str) -> str:
    match = re.search(r"/d/([A-Za-z0-9_.\-]+)", text)
    assert match, text
    return match.group(0)


MSG = iter(range(5000, 10**6))


def ask(server: RunningServer, content: str) -> tuple[str, str]:
    """The reply text to ``content`` and the link path it carries."""
    response = push(server.url, timestamp=server.clock(), msg_id=str(next(MSG)), content=content)
    assert response.status_code == 200, response.text
    text = parse_message(WECHAT.read_reply(response.content)).content
    match = re.search(r"/d/[A-Za-z0-9_.\-]+", text)
    assert match, text
    return text, match.group(0)


def get(server: RunningServer, path: str, **headers: str) -> httpx.Response:
    with server.client(headers={"Accept": "application/json", **headers}) as client:
        return client.get(path)


def post(
    url: str,
    *,
    msg_id: str,
    timestamp: float,
    content: str = "芝麻开门",
    user: str = "o_follower_1",
    encrypt: bool = False,
) -> httpx.Response:
    """A text message pushed as WeChat's server would (a retry is the same msg_id again)."""
    return push(
        url,
        timestamp=timestamp,
        msg_id=msg_id,
        content=content,
        user=user,
        nonce=secrets.token_hex(4),
        encrypt=encrypt,
    )


def text_of(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    if response.content == b"success":
        return "success"
    return parse_message(WECHAT.read_reply(response.content)).content


def link_of(text: str) -> str:
    match = re.search(r"/d/[A-Za-z0-9_.\-]+", text)
    assert match, text
    return match.group(0)


_ids = itertools.count(1000)


def push_fields(server: RunningServer, *, encrypt: bool, **fields: Any) -> httpx.Response:
    """One push as WeChat sends it; ``fields`` go to ``build_message_xml``."""
    fields.setdefault("to_user", "gh_account")
    fields.setdefault("from_user", "o_follower_1")
    if fields.get("msg_type", "text") != "event":
        fields.setdefault("msg_id", str(next(_ids)))
    xml = build_message_xml(create_time=int(server.clock()), **fields)
    params, body = WECHAT.build_request(
        xml,
        timestamp=str(int(server.clock())),
        nonce=secrets.token_hex(5),  # as WeChat: a fresh nonce per push (#10: replays)
        encrypt=encrypt,
    )
    return httpx.post(server.url + "/wechat", params=params, content=body, timeout=10)


def reply_of(response: httpx.Response) -> Any:
    """The reply as wechatpy parses it (decrypted and MsgSignature-checked when sealed)."""
    assert response.status_code == 200, response.text
    xml = WECHAT.read_reply(response.content)
    fields = xmltodict.parse(xml, force_list=("item",))["xml"]
    if fields["MsgType"] == "news":
        # wechatpy's deserialize_reply cannot read a one-article card (xmltodict hands it a
        # dict, not a list); its own Articles field parser reads the list.
        assert int(fields["ArticleCount"]) == len(fields["Articles"]["item"])
        return ArticlesReply(articles=ArticlesField.from_xml(fields["Articles"]))
    return deserialize_reply(xml)


def urls(text: str) -> list[str]:
    return re.findall(r"http://127\.0\.0\.1:\d+/d/[A-Za-z0-9_.\-]+", text)
