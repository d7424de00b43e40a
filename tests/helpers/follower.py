"""Plays WeChat's server and a follower against a running bot, remembering what it sent."""

from __future__ import annotations

import re
import time

import httpx

from bot.wechat import Simulator, build_message_xml, parse_message
from tests.conftest import AES_KEY, APP_ID, TOKEN


class Follower:
    """Plays WeChat's server and a follower against a running bot, remembering what it sent."""

    def __init__(self, url: str) -> None:
        self.url, self.codec = url, Simulator(TOKEN, APP_ID, AES_KEY)
        self.sent: set[str] = set()
        self.client = httpx.Client(base_url=url, timeout=10)

    def push(self, text: str, *, encrypt: bool, **change: str) -> httpx.Response:
        now = str(int(time.time()))
        xml = build_message_xml(
            to_user="gh", from_user="o_secret_test", create_time=int(now), content=text, msg_id=now
        )
        params, body = self.codec.build_request(xml, timestamp=now, nonce="n0", encrypt=encrypt)
        params |= change
        self.sent.update(v for k, v in params.items() if k.endswith("signature"))
        return self.client.post("/wechat", params=params, content=body)

    def link(self, *, encrypt: bool) -> str:
        reply = self.push("芝麻开门", encrypt=encrypt)
        assert reply.status_code == 200, reply.text
        text = parse_message(self.codec.read_reply(reply.content)).content
        match = re.search(r"/d/([A-Za-z0-9_.\-]+)", text)
        assert match, text
        self.sent.add(match.group(1))
        return match.group(0)
