"""A fake of WeChat's server API on a real socket: tokens, errcodes, menus, QR, 客服, media."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import secrets
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.conftest import start_server

APP_ID = "wx1234567890abcdef"
APP_SECRET = "0123456789abcdef0123456789abcdef"
SERVER_IP = "203.0.113.7"
EXPIRES_IN = 7200
ERRMSG = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest rid: 1",
    40007: "invalid media_id rid: 1",
    40013: "invalid appid rid: 1",
    40125: "invalid appsecret rid: 1",
    40164: f"invalid ip {SERVER_IP} ipv6 ::ffff:{SERVER_IP}, not in whitelist rid: 1",
    45009: "reach max api daily quota limit rid: 1",
    45015: "response out of time limit or subscription is canceled rid: 1",
    45047: "out of response count limit rid: 1",
    46003: "menu no exist rid: 1",
    48001: "api unauthorized rid: 1",
}


@dataclass
class FakeWeChat:
    """WeChat's side: the current token, scripted errcodes per API, and what it was sent."""

    url: str = ""
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    calls: Counter[str] = field(default_factory=Counter)
    scripted: dict[str, list[int]] = field(default_factory=dict)
    delays: dict[str, list[float]] = field(default_factory=dict)
    menu: dict[str, Any] | None = None
    selfmenu: dict[str, Any] | None = None  # a menu made on the admin page (menu/get: 46003)
    bodies: dict[str, list[Any]] = field(default_factory=dict)
    sent: list[dict[str, Any]] = field(default_factory=list)
    uploads: list[tuple[str, bytes, str]] = field(default_factory=list)
    forced: int = 0
    issued: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.issued.append(self.token)

    def script(self, api: str, *errcodes: int) -> None:
        """The next calls of ``api`` answer these errcodes, in order."""
        self.scripted.setdefault(api, []).extend(errcodes)

    def slow(self, api: str, *seconds: float) -> None:
        """The next calls of ``api`` take these many seconds to answer, in order."""
        self.delays.setdefault(api, []).extend(seconds)

    def supersede(self) -> str:
        """A forced refresh by someone else: a new token, the old one answers 40001."""
        self.token = secrets.token_urlsafe(24)
        self.issued.append(self.token)
        return self.token

    def app(self) -> Starlette:
        """The Starlette app serving every API under /cgi-bin."""
        return Starlette(
            routes=[Route("/cgi-bin/{api:path}", self._serve, methods=["GET", "POST"])]
        )

    async def _serve(self, request: Request) -> JSONResponse:
        api = "cgi-bin/" + request.path_params["api"]
        self.calls[api] += 1
        raw = await request.body()
        kind = request.headers.get("content-type", "")
        body: Any = None
        if kind.startswith("multipart/"):
            name, data = _media(kind, raw)
            self.uploads.append((name, data, request.query_params["type"]))
        elif raw:
            body = json.loads(raw)
        self.bodies.setdefault(api, []).append(body)
        if delays := self.delays.get(api):
            await asyncio.sleep(delays.pop(0))
        if queue := self.scripted.get(api):
            return _error(queue.pop(0))
        if api == "cgi-bin/stable_token":
            return self._stable_token(body)
        if request.query_params.get("access_token") != self.token:
            return _error(40001)
        return self._answer(api, body)

    def _stable_token(self, body: dict[str, Any]) -> JSONResponse:
        if body.get("appid") != APP_ID:
            return _error(40013)
        if body.get("secret") != APP_SECRET:
            return _error(40125)
        if body.get("force_refresh"):
            self.forced += 1
            self.supersede()
        return JSONResponse({"access_token": self.token, "expires_in": EXPIRES_IN})

    def _answer(self, api: str, body: Any) -> JSONResponse:
        if api == "cgi-bin/menu/create":
            self.menu = body
        elif api == "cgi-bin/menu/get":
            if self.menu is None:
                return _error(46003)
            return JSONResponse({"menu": self.menu})
        elif api == "cgi-bin/menu/delete":
            self.menu = None
        elif api == "cgi-bin/get_current_selfmenu_info":
            if self.selfmenu is not None:
                return JSONResponse(self.selfmenu)
            return JSONResponse(
                {"is_menu_open": int(self.menu is not None), "selfmenu_info": self.menu or {}}
            )
        elif api == "cgi-bin/qrcode/create":
            scene = body["action_info"]["scene"]["scene_str"]
            answer: dict[str, Any] = {
                "ticket": "gQH47joAAAAAAAAAASxodHRwOi8vd2VpeGluLnFxLmNvbS9xL2taZ2Z3TVRtNzJXV1Brb3ZhYmJJAAIEZ23sUwMEmm",
                "url": f"http://weixin.qq.com/q/{scene}-kZgfwMTm72WWPkovabbI",
            }
            if "expire_seconds" in body:
                answer["expire_seconds"] = body["expire_seconds"]
            return JSONResponse(answer)
        elif api == "cgi-bin/get_current_autoreply_info":
            return JSONResponse(AUTOREPLY_EXAMPLE)
        elif api == "cgi-bin/message/custom/send":
            self.sent.append(body)
        elif api == "cgi-bin/media/upload":
            media_id = f"MEDIA_{len(self.uploads)}"
            return JSONResponse({"type": "image", "media_id": media_id, "created_at": 1})
        else:
            return JSONResponse({"errcode": 40066, "errmsg": "invalid url"})
        return JSONResponse({"errcode": 0, "errmsg": "ok"})


def _media(content_type: str, raw: bytes) -> tuple[str, bytes]:
    """The ``media`` part of a multipart body (python-multipart is not a dependency)."""
    message = email.message_from_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw, policy=email.policy.HTTP
    )
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "media":
            return str(part.get_filename()), part.get_payload(decode=True)
    raise AssertionError("no media part")


def _error(code: int) -> JSONResponse:
    return JSONResponse({"errcode": code, "errmsg": ERRMSG.get(code, "error")})


@contextmanager
def running_fake() -> Iterator[FakeWeChat]:
    """The fake, listening on a free port until the block ends."""
    fake = FakeWeChat()
    server, thread, url = start_server(fake.app())
    fake.url = url
    try:
        yield fake
    finally:
        server.should_exit = True
        thread.join(10)


# WeChat's documented example answer of get_current_autoreply_info (covers unwrapped).
AUTOREPLY_EXAMPLE: dict[str, Any] = json.loads(
    r"""
{"is_add_friend_reply_open":1,"is_autoreply_open":1,
 "add_friend_autoreply_info":{"type":"text","content":"Thanks for your attention!"},
 "message_default_autoreply_info":{"type":"text","content":"Hello, this is autoreply!"},
 "keyword_autoreply_info":{"list":[
  {"rule_name":"autoreply-news","create_time":1423028166,"reply_mode":"reply_all",
   "keyword_list_info":[{"type":"text","match_mode":"contain","content":"news测试"}],
   "reply_list_info":[
    {"type":"news","news_info":{"list":[{"title":"it's news","author":"jim",
     "digest":"it's digest","show_cover":1,"cover_url":"http://mmbiz.qpic.cn/mmbiz/GE7et87vE9vicuCibqXsX9GPPLuEtBfXfKbE8sWdt2DDcL0dMfQWJWTVn1N8DxI0gcRmrtqBOuwQHeuPKmFLK0ZQ/0",
     "content_url":"http://mp.weixin.qq.com/s?__biz=MjM5ODUwNTM3Ng==&mid=203929886&idx=1&sn=628f964cf0c6d84c026881b6959aea8b#rd",
     "source_url":"http://www.url.com"}]}},
    {"type":"news","content":"KQb_w_Tiz-nSdVLoTV35Psmty8hGBulGhEdbb9SKs-o","news_info":{"list":[
     {"title":"MULTI_NEWS","author":"JIMZHENG","digest":"text","show_cover":0,
      "cover_url":"http://mmbiz.qpic.cn/mmbiz/GE7et87vE9vicuCibqXsX9GPPLuEtBfXfK0HKuBIa1A1cypS0uY1wickv70iaY1gf3I1DTszuJoS3lAVLvhTcm9sDA/0",
      "content_url":"http://mp.weixin.qq.com/s?__biz=MjM5ODUwNTM3Ng==&mid=204013432&idx=1&sn=80ce6d9abcb832237bf86c87e50fda15#rd",
      "source_url":""},
     {"title":"MULTI_NEWS4","author":"JIMZHENG","digest":"MULTI_NEWSMULTI_NEWSMULTI_NEWSMULTI_NEWSMULTI_NEWSMULT",
      "show_cover":1,"cover_url":"http://mmbiz.qpic.cn/mmbiz/GE7et87vE9vicuCibqXsX9GPPLuEtBfXfKbE8sWdt2DDcL0dMfQWJWTVn1N8DxI0gcRmrtqBOuwQHeuPKmFLK0ZQ/0",
      "content_url":"http://mp.weixin.qq.com/s?__biz=MjM5ODUwNTM3Ng==&mid=204013432&idx=5&sn=b4ef73a915e7c2265e437096582774af#rd",
      "source_url":""}]}}]},
  {"rule_name":"autoreply-voice","create_time":1423027971,"reply_mode":"random_one",
   "keyword_list_info":[{"type":"text","match_mode":"contain","content":"voice测试"}],
   "reply_list_info":[{"type":"voice","content":"NESsxgHEvAcg3egJTtYj4uG1PTL6iPhratdWKDLAXYErhN6oEEfMdVyblWtBY5vp"}]},
  {"rule_name":"autoreply-text","create_time":1423027926,"reply_mode":"random_one",
   "keyword_list_info":[{"type":"text","match_mode":"contain","content":"text测试"}],
   "reply_list_info":[{"type":"text","content":"hello!text!"}]},
  {"rule_name":"autoreply-video","create_time":1423027801,"reply_mode":"random_one",
   "keyword_list_info":[{"type":"text","match_mode":"equal","content":"video测试"}],
   "reply_list_info":[{"type":"video","content":"http://61.182.133.153/vweixinp.tc.qq.com/1007_114bcede9a2244eeb5ab7f76d951df5f.f10.mp4?vkey=7183E5C952B16C3AB1991BA8138673DE1037CB82A29801A504B64A77F691BF9DF7AD054A9B7FE683&sha=0&save=1"}]}
 ]}}
"""
)


# WeChat's documented example answer of get_current_selfmenu_info for a menu made on the admin page.
SELFMENU_EXAMPLE: dict[str, Any] = json.loads(
    r"""
{"is_menu_open":1,"selfmenu_info":{"button":[
 {"name":"button","sub_button":{"list":[
  {"type":"view","name":"view_url","url":"http://www.qq.com"},
  {"type":"news","name":"news","news_info":{"list":[
   {"title":"MULTI_NEWS","author":"JIMZHENG","digest":"text","show_cover":0,
    "cover_url":"http://mmbiz.qpic.cn/mmbiz/GE7et87vE9vicuCibqXsX9GPPLuEtBfXfK0HKuBIa1A1cypS0uY1wickv70iaY1gf3I1DTszuJoS3lAVLvhTcm9sDA/0",
    "content_url":"http://mp.weixin.qq.com/s?__biz=MjM5ODUwNTM3Ng==&mid=204013432&idx=1&sn=80ce6d9abcb832237bf86c87e50fda15#rd",
    "source_url":""},
   {"title":"MULTI_NEWS1","author":"JIMZHENG","digest":"MULTI_NEWS1","show_cover":1,
    "cover_url":"http://mmbiz.qpic.cn/mmbiz/GE7et87vE9vicuCibqXsX9GPPLuEtBfXfKnmnpXYgWmQD5gXUrEApIYBCgvh2yHsu3ic3anDUGtUCHwjiaEC5bicd7A/0",
    "content_url":"http://mp.weixin.qq.com/s?__biz=MjM5ODUwNTM3Ng==&mid=204013432&idx=2&sn=8226843afb14ecdecb08d9ce46bc1d37#rd",
    "source_url":""}]}},
  {"type":"video","name":"video","value":"http://61.182.130.30/vweixinp.tc.qq.com/1007_114bcede9a2244eeb5ab7f76d951df5f.f10.mp4?vkey=77A42D0C2015FBB0A3653D29C571B5F4BBF1D243FBEF17F09C24FF1F2F22E30881BD350E360BC53F&sha=0&save=1"},
  {"type":"voice","name":"voice","value":"nTXe3aghlQ4XYHa0AQPWiQQbFW9RVtaYTLPC1PCQx11qc9UB6CiUPFjdkeEtJicn"}]}},
 {"type":"text","name":"text","value":"This is text!"},
 {"type":"img","name":"photo","value":"ax5Whs5dsoomJLEppAvftBUuH7CgXCZGFbFJifmbUjnQk_ierMHY99Y5d2Cv14RD"}]}}
"""
)


# WeChat's documented example menu (menu/create), as its docs print it.
DOCUMENTED_MENU: dict[str, Any] = {
    "button": [
        {"type": "click", "name": "今日歌曲", "key": "V1001_TODAY_MUSIC"},
        {
            "name": "菜单",
            "sub_button": [
                {"type": "view", "name": "搜索", "url": "http://www.soso.com/"},
                {
                    "type": "miniprogram",
                    "name": "wxa",
                    "url": "http://mp.weixin.qq.com",
                    "appid": "wx286b93c14bbf93aa",
                    "pagepath": "pages/lunar/index",
                },
                {"type": "click", "name": "赞一下我们", "key": "V1001_GOOD"},
            ],
        },
    ]
}
