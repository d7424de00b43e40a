"""WeChat's server API against a fake of it on a real socket: one token, errcodes, menus, QR."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import tomllib
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from pydantic import SecretStr

from bot.config import WeChatSettings
from bot.errors import ConfigError
from bot.keywords.settings import KeywordSettings
from bot.logs.setup import InterceptHandler
from bot.state.tokens_redis import RedisTokenCache
from bot.state.tokens_sqlite import SqliteTokenCache
from bot.wechat.api import CachedToken, MemoryTokenCache, TokenCache, TokenSource, WeChatAPI
from bot.wechat.api.autoreply import convert
from bot.wechat.api.autoreply import to_toml as autoreply_toml
from bot.wechat.api.errors import (
    AccountLacksAPI,
    BadCredentials,
    IPNotWhitelisted,
    QuotaExceeded,
    RequestRefused,
    TokenRejected,
    WeChatAPIError,
    WeChatBusy,
    WeChatUnreachable,
)
from bot.wechat.api.menu import diff_menus, live_buttons, load_menu, to_toml, to_wechat_json
from bot.wechat.api.qr import render_png
from bot.wechat.api.settings import build_api, token_cache
from tests.conftest import Clock, LogCapture
from tests.fake_wechat import (
    APP_ID,
    APP_SECRET,
    AUTOREPLY_EXAMPLE,
    DOCUMENTED_MENU,
    SERVER_IP,
    FakeWeChat,
    running_fake,
)

T = TypeVar("T")
# WeChat's documented menu/create example.


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


@pytest.fixture
def fake() -> Iterator[FakeWeChat]:
    with running_fake() as fake:
        yield fake


class Sleeps(list[float]):
    """An injected sleep that records the delays instead of waiting."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client(fake: FakeWeChat, cache: TokenCache | None = None, **kwargs: Any) -> WeChatAPI:
    cache = cache if cache is not None else MemoryTokenCache(lambda: 0.0)
    kwargs.setdefault("sleep", Sleeps())
    return WeChatAPI(APP_ID, SecretStr(APP_SECRET), cache, base_url=fake.url, **kwargs)


def with_api(fake: FakeWeChat, work: Callable[[WeChatAPI], Awaitable[T]], **kwargs: Any) -> T:
    async def main() -> T:
        async with client(fake, **kwargs) as api:
            return await work(api)

    return asyncio.run(main())


def caches(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> list[TokenCache]:
    """Two caches on one store, as two processes (or instances) would hold them."""
    if kind == "sqlite":
        return [SqliteTokenCache(tmp_path / "state" / "bot.db", APP_ID) for _ in range(2)]
    if kind == "redis":
        url = request.getfixturevalue("redis_url")
        return [RedisTokenCache(url, APP_ID) for _ in range(2)]
    shared = MemoryTokenCache(lambda: 0.0)
    return [shared, shared]


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])
def test_concurrent_callers_of_two_clients_share_one_stable_token(
    fake: FakeWeChat, kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    fake.menu = DOCUMENTED_MENU
    first, second = caches(kind, tmp_path, request)

    async def main() -> list[Any]:
        apis = [client(fake, first, sleep=asyncio.sleep), client(fake, second, sleep=asyncio.sleep)]
        try:
            return await asyncio.gather(*(apis[i % 2].get_menu() for i in range(20)))
        finally:
            for api in apis:
                await api.aclose()
            for cache in {id(c): c for c in (first, second)}.values():
                if hasattr(cache, "close"):
                    await cache.close()

    answers = run(main())
    assert fake.calls["cgi-bin/stable_token"] == 1
    assert fake.calls["cgi-bin/menu/get"] == 20
    assert all(a == {"menu": DOCUMENTED_MENU} for a in answers)


def test_a_token_superseded_elsewhere_is_refreshed_once_and_the_call_retried(
    fake: FakeWeChat,
) -> None:
    async def work(api: WeChatAPI) -> None:
        await api.delete_menu()
        fake.supersede()  # another app forced a refresh: our cached token now answers 40001
        await api.create_menu(load_menu(DOCUMENTED_MENU))

    with_api(fake, work)
    assert fake.calls["cgi-bin/stable_token"] == 2  # normal mode already hands out the new one
    assert fake.forced == 0
    assert fake.calls["cgi-bin/menu/create"] == 2
    assert fake.menu == DOCUMENTED_MENU


def test_a_refused_current_token_forces_one_refresh_within_wechats_limits(
    fake: FakeWeChat, clock: Clock
) -> None:
    cache = MemoryTokenCache(clock)

    async def work(api: WeChatAPI) -> None:
        fake.script("cgi-bin/menu/delete", 40001)
        await api.delete_menu()  # stable_token, 40001, stable_token (same), forced, retry
        assert fake.forced == 1
        clock.advance(10)
        fake.script("cgi-bin/menu/delete", 40001)
        with pytest.raises(TokenRejected, match="30 s apart"):
            await api.delete_menu()  # a second forced refresh 10 s later is not allowed
        clock.advance(30)
        fake.script("cgi-bin/menu/delete", 40001)
        await api.delete_menu()

    with_api(fake, work, cache=cache, wall=clock, monotonic=clock)
    assert fake.forced == 2
    stored = run(cache.get())
    assert stored is not None and len(stored.forced) == 2
    assert stored.token == fake.token


@pytest.mark.parametrize(
    ("api_name", "code", "error", "says"),
    [
        pytest.param(
            "cgi-bin/stable_token", 40164, IPNotWhitelisted, f"add {SERVER_IP} to", id="40164-ip"
        ),
        pytest.param(
            "cgi-bin/stable_token", 40013, BadCredentials, "AppID is not valid", id="40013-appid"
        ),
        pytest.param(
            "cgi-bin/stable_token", 40125, BadCredentials, "[wechat] app_secret", id="40125-secret"
        ),
        pytest.param(
            "cgi-bin/menu/get",
            48001,
            AccountLacksAPI,
            "verified (认证) 订阅号 or a 服务号",
            id="48001-account",
        ),
        pytest.param("cgi-bin/menu/get", 45009, QuotaExceeded, "daily quota", id="45009-quota"),
    ],
)
def test_each_errcode_speaks_to_the_owner(
    fake: FakeWeChat, api_name: str, code: int, error: type[WeChatAPIError], says: str
) -> None:
    fake.script(api_name, code)
    with pytest.raises(error) as caught:
        with_api(fake, lambda api: api.get_menu())
    assert says in str(caught.value)
    assert caught.value.errcode == code
    if code == 40164:
        assert isinstance(caught.value, IPNotWhitelisted) and caught.value.ip == SERVER_IP


def test_busy_is_retried_with_backoff(fake: FakeWeChat) -> None:
    sleeps = Sleeps()
    fake.script("cgi-bin/menu/delete", -1, -1)
    with_api(fake, lambda api: api.delete_menu(), sleep=sleeps)
    assert sleeps == [0.5, 1.0]
    assert fake.calls["cgi-bin/menu/delete"] == 3

    fake.script("cgi-bin/menu/delete", -1, -1, -1)
    with pytest.raises(WeChatBusy, match="try again in a minute"):
        with_api(fake, lambda api: api.delete_menu())


@pytest.mark.parametrize(
    ("menu", "says"),
    [
        pytest.param(
            {"button": []}, "menu.button has 0 buttons; WeChat allows 1 to 3", id="no-buttons"
        ),
        pytest.param(
            {"button": [{"type": "click", "name": f"b{i}", "key": "K"} for i in range(4)]},
            "menu.button has 4 buttons",
            id="four-buttons",
        ),
        pytest.param(
            {
                "button": [
                    {"name": "p", "sub_button": [{"type": "click", "name": "s", "key": "K"}] * 6}
                ]
            },
            "menu.button[0] ('p') has 6 sub-buttons; WeChat allows 1 to 5",
            id="six-subs",
        ),
        pytest.param(
            {"button": [{"name": "p", "sub_button": []}]}, "has 0 sub-buttons", id="no-subs"
        ),
        pytest.param(
            {"button": [{"type": "click", "name": "下载安装包说明", "key": "K"}]},
            "menu.button[0] ('下载安装包说明'): name is 21 bytes; a top-level name may have at most 16",
            id="top-name-bytes",
        ),
        pytest.param(
            {
                "button": [
                    {
                        "name": "p",
                        "sub_button": [
                            {"type": "click", "name": "s", "key": "K"},
                            {"type": "click", "name": "长" * 21, "key": "K"},
                        ],
                    }
                ]
            },
            "menu.button[0].sub_button[1] ('"
            + "长" * 21
            + "'): name is 63 bytes; a sub-button name may have at most 60",
            id="sub-name-bytes",
        ),
        pytest.param(
            {"button": [{"type": "click", "name": "k", "key": "k" * 129}]},
            "key is 129 bytes; at most 128",
            id="key-bytes",
        ),
        pytest.param(
            {"button": [{"type": "view", "name": "u", "url": "https://e.com/" + "a" * 1011}]},
            "url is 1025 bytes; at most 1024",
            id="url-bytes",
        ),
        pytest.param(
            {"button": [{"type": "view", "name": "u"}]},
            'type "view" needs url',
            id="view-without-url",
        ),
        pytest.param(
            {"button": [{"type": "miniprogram", "name": "m", "url": "https://e.com"}]},
            'type "miniprogram" needs appid and pagepath',
            id="miniprogram-fields",
        ),
        pytest.param(
            {"button": [{"type": "click", "name": "k", "url": "https://e.com", "key": "K"}]},
            "does not use url",
            id="foreign-field",
        ),
        pytest.param({"button": [{"name": "k"}]}, "needs a type", id="no-type"),
        pytest.param(
            {**DOCUMENTED_MENU, "matchrule": {"tag_id": "2"}},
            "conditional menus (matchrule) are not supported",
            id="matchrule",
        ),
    ],
)
def test_every_menu_limit_is_refused_before_any_call(
    fake: FakeWeChat, menu: dict[str, Any], says: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_menu(menu)
    assert says in str(caught.value)
    assert sum(fake.calls.values()) == 0


def test_the_error_key_names_the_button_for_field_errors() -> None:
    menu = {"button": [{"name": "p", "sub_button": [{"type": "view", "name": "v"}]}]}
    with pytest.raises(ConfigError) as caught:
        load_menu(menu)
    assert caught.value.key == "menu.button[0].sub_button[0]"


def test_menu_push_sends_the_documented_json_and_show_pull_read_it_back(fake: FakeWeChat) -> None:
    issue_example = tomllib.loads(
        """
[[menu.button]]
name = "下载"
[[menu.button.sub_button]]
name = "安装包"
type = "click"
key = "GET_SETUP"
[[menu.button.sub_button]]
name = "官网"
type = "view"
url = "https://example.com"
[[menu.button]]
name = "说明"
type = "click"
key = "MENU_MANUAL"
"""
    )["menu"]
    assert to_wechat_json(load_menu(issue_example)) == issue_example
    menu = load_menu(DOCUMENTED_MENU)

    async def work(api: WeChatAPI) -> Any:
        assert await api.get_menu() is None  # 46003: no menu yet
        await api.create_menu(menu)
        live = await api.get_menu()
        await api.delete_menu()
        return live

    live = with_api(fake, work)
    assert fake.bodies["cgi-bin/menu/create"] == [DOCUMENTED_MENU]
    assert diff_menus(live, menu) == []
    assert diff_menus(live, load_menu(issue_example))  # differs: show marks it
    assert load_menu(tomllib.loads(to_toml(live))["menu"]) == menu
    assert fake.menu is None


def test_live_menu_answers_with_empty_sub_button_lists_are_tidied() -> None:
    live = {"menu": {"button": [{"type": "click", "name": "a", "key": "A", "sub_button": []}]}}
    assert live_buttons(live) == [{"type": "click", "name": "a", "key": "A"}]
    assert (
        diff_menus(live, load_menu({"button": [{"type": "click", "name": "a", "key": "A"}]})) == []
    )


def test_qr_png_decodes_back_to_the_url(fake: FakeWeChat, tmp_path: Path) -> None:
    zbarimg = shutil.which("zbarimg")
    if zbarimg is None:
        pytest.fail("zbarimg is missing: apt-get install zbar-tools")

    async def work(api: WeChatAPI) -> Any:
        return [
            await api.create_qrcode("poster", expire_seconds=2_592_000),
            await api.create_qrcode("poster", expire_seconds=None),
        ]

    temporary, permanent = with_api(fake, work)
    assert fake.bodies["cgi-bin/qrcode/create"] == [
        {
            "expire_seconds": 2592000,
            "action_name": "QR_STR_SCENE",
            "action_info": {"scene": {"scene_str": "poster"}},
        },
        {"action_name": "QR_LIMIT_STR_SCENE", "action_info": {"scene": {"scene_str": "poster"}}},
    ]
    assert temporary.expire_seconds == 2592000 and permanent.expire_seconds is None
    png = tmp_path / "poster.png"
    png.write_bytes(render_png(temporary.url))
    decoded = subprocess.run(
        [zbarimg, "--raw", "-q", str(png)], capture_output=True, text=True, check=True
    )
    assert decoded.stdout.strip() == temporary.url


@pytest.mark.parametrize(
    ("scene", "expire", "says"),
    [
        pytest.param("", 60, "scene: is 0 characters", id="empty-scene"),
        pytest.param("s" * 65, 60, "scene: is 65 characters", id="long-scene"),
        pytest.param("poster", 2_592_001, "at most|30 days", id="too-long"),
    ],
)
def test_qr_requests_past_wechats_limits_are_refused_before_any_call(
    fake: FakeWeChat, scene: str, expire: int, says: str
) -> None:
    with pytest.raises(RequestRefused, match=says):
        with_api(fake, lambda api: api.create_qrcode(scene, expire_seconds=expire))
    assert sum(fake.calls.values()) == 0


def test_import_of_wechats_documented_autoreply_example(fake: FakeWeChat) -> None:
    answer = with_api(fake, lambda api: api.get_autoreply_info())
    assert answer == AUTOREPLY_EXAMPLE
    imported = convert(answer)
    assert imported.keywords == [{"match": "text测试", "mode": "contains", "reply": "hello!text!"}]
    assert imported.replies == {
        "welcome": "Thanks for your attention!",
        "other": "Hello, this is autoreply!",
    }
    kinds = [(s.where.split(" ")[2], s.kind) for s in imported.skipped]
    assert kinds == [
        ("('autoreply-news')", "news"),
        ("('autoreply-news')", "news"),
        ("('autoreply-voice')", "voice"),
        ("('autoreply-video')", "video"),
    ]
    assert (
        "NESsxgHEvAcg3egJTtYj4uG1PTL6iPhratdWKDLAXYErhN6oEEfMdVyblWtBY5vp"
        in imported.skipped[2].content
    )
    assert "KQb_w_Tiz-nSdVLoTV35Psmty8hGBulGhEdbb9SKs-o" in imported.skipped[1].content
    written = autoreply_toml(imported)
    parsed = tomllib.loads(written)
    assert parsed == {"keywords": imported.keywords}  # [replies] is commented: configs have one
    block = written.split("# [replies]\n", 1)[1]
    assert tomllib.loads(block.replace("# ", "")) == imported.replies
    for rule in parsed["keywords"]:
        KeywordSettings(**rule)  # each is a valid [[keywords]] rule
    assert "voice 'NESsxgHEvAcg3egJTtYj4uG1PTL6iPhratdWKDLAXYErhN6oEEfMdVyblWtBY5vp'" in written


def test_import_maps_equal_to_exact_and_keeps_braces_literal() -> None:
    answer = {
        "keyword_autoreply_info": {
            "list": [
                {
                    "rule_name": "r",
                    "reply_mode": "reply_all",
                    "keyword_list_info": [
                        {"type": "text", "match_mode": "equal", "content": "价格"},
                        {"type": "text", "match_mode": "equal", "content": "多少钱"},
                        {"type": "text", "match_mode": "contain", "content": "报价"},
                    ],
                    "reply_list_info": [
                        {"type": "text", "content": "见 {官网}"},
                        {"type": "img", "content": "IMG_MEDIA_ID"},
                        {"type": "text", "content": "谢谢"},
                    ],
                }
            ]
        }
    }
    imported = convert(answer)
    assert imported.keywords == [
        {"match": ["价格", "多少钱"], "mode": "exact", "reply": "见 {{官网}}\n\n谢谢"},
        {"match": "报价", "mode": "contains", "reply": "见 {{官网}}\n\n谢谢"},
    ]
    assert [(s.kind, s.content) for s in imported.skipped] == [("img", "IMG_MEDIA_ID")]


def test_custom_messages_and_media_upload(fake: FakeWeChat) -> None:
    article = {"title": "说明", "description": "点开下载", "url": "https://e.com/d/x", "picurl": ""}

    async def work(api: WeChatAPI) -> str:
        await api.send_text("OPENID", '<a href="https://e.com/d/x">点击下载</a>')
        await api.send_news("OPENID", [article])
        return await api.upload_image("poster.png", b"\x89PNG fake", "image/png")

    media_id = with_api(fake, work)
    assert fake.sent == [
        {
            "touser": "OPENID",
            "msgtype": "text",
            "text": {"content": '<a href="https://e.com/d/x">点击下载</a>'},
        },
        {"touser": "OPENID", "msgtype": "news", "news": {"articles": [article]}},
    ]
    assert fake.uploads == [("poster.png", b"\x89PNG fake", "image")]
    assert media_id == "MEDIA_1"


@pytest.fixture
def http_logs(logs: LogCapture) -> Iterator[LogCapture]:
    """httpx's own request lines (stdlib logging) routed into loguru, as `bot serve` does."""
    log = logging.getLogger("httpx")
    handler, level = InterceptHandler(), log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    yield logs
    log.removeHandler(handler)
    log.setLevel(level)


def test_no_token_or_secret_in_any_log_line_error_or_repr(
    fake: FakeWeChat, http_logs: LogCapture, tmp_path: Path
) -> None:
    cache = SqliteTokenCache(tmp_path / "bot.db", APP_ID)
    errors: list[str] = []

    async def work(api: WeChatAPI) -> None:
        await api.delete_menu()
        fake.supersede()
        await api.delete_menu()
        fake.script("cgi-bin/menu/get", 40001)
        await api.get_menu()
        for code in (40164, 48001, 45009, -1, -1, -1):
            fake.script("cgi-bin/menu/get", code)
        for _ in range(4):
            try:
                await api.get_menu()
            except WeChatAPIError as exc:
                errors.extend([str(exc), repr(exc)])
        errors.extend([repr(api), repr(api.tokens), repr(cache), repr(await cache.get())])

    with_api(fake, work, cache=cache)
    lines = http_logs.messages()
    assert any("HTTP Request" in line and "access_token=…" in line for line in lines)
    assert len(fake.issued) >= 3
    for text in lines + errors:
        assert APP_SECRET not in text
        for token in fake.issued:
            assert token not in text


def test_while_another_refreshes_a_still_valid_token_serves_and_a_missing_one_is_waited_for(
    clock: Clock,
) -> None:
    fetched: list[bool] = []

    async def fetch(force: bool) -> tuple[str, int]:
        fetched.append(force)
        return "NEW", 7200

    async def main() -> None:
        cache = MemoryTokenCache(clock)
        sleeps = Sleeps()
        source = TokenSource(fetch, cache, wall=clock, monotonic=clock, sleep=sleeps, wait=1)
        assert await cache.acquire("another process", 60)
        await cache.set(CachedToken("OLD", clock() + 200))  # under 5 minutes left, still valid
        assert await source.token() == "OLD"
        await cache.set(CachedToken("OLD", clock() - 1))  # expired: wait for the other one

        async def advance(seconds: float) -> None:
            clock.advance(seconds + 0.5)

        source = TokenSource(fetch, cache, wall=clock, monotonic=clock, sleep=advance, wait=1)
        with pytest.raises(WeChatUnreachable, match="held the access-token lock"):
            await source.token()
        await cache.release("another process")
        assert await source.token() == "NEW"

    run(main())
    assert fetched == [False]


def test_settings_build_the_client_and_refuse_placeholders(
    fake: FakeWeChat, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="placeholder"):
        WeChatSettings(app_id=APP_ID, app_secret=SecretStr("change-me"))
    cache = token_cache(f"sqlite:///{tmp_path}/state/bot.db", APP_ID)
    with pytest.raises(ConfigError, match=r"wechat\.app_secret"):
        build_api(WeChatSettings(app_id=APP_ID), cache)
    settings = WeChatSettings(
        app_id=APP_ID, app_secret=SecretStr(APP_SECRET), api_base_url=fake.url
    )

    async def main() -> None:
        async with build_api(settings, cache) as api:
            assert await api.get_menu() is None
        assert isinstance(cache, SqliteTokenCache)
        await cache.close()

    run(main())
    assert fake.calls["cgi-bin/menu/get"] == 1
