"""`bot menu`, `bot qr` and `bot import-autoreply` as an owner runs them, against the fake API."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.clock import CHINA
from bot.config import Settings, load_settings
from bot.wechat.api.menu import array_of_tables, load_menu
from tests.conftest import DEMO_NAME, free_port, write_config
from tests.fake_wechat import (
    APP_ID,
    APP_SECRET,
    DOCUMENTED_MENU,
    SELFMENU_EXAMPLE,
    SERVER_IP,
    FakeWeChat,
    running_fake,
)
from tests.helpers.botproc import BotProcess

ROOT = Path(__file__).resolve().parent.parent
# The issue's example, as an owner writes it (WeChat's JSON as TOML).
ISSUE_MENU = """
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
ISSUE_JSON = {
    "button": [
        {
            "name": "下载",
            "sub_button": [
                {"name": "安装包", "type": "click", "key": "GET_SETUP"},
                {"name": "官网", "type": "view", "url": "https://example.com"},
            ],
        },
        {"name": "说明", "type": "click", "key": "MENU_MANUAL"},
    ]
}
# WeChat's documented menu/create example: every field of click, view and miniprogram.
RULES = [
    {"match": "芝麻开门", "file": DEMO_NAME},
    {"click": "GET_SETUP", "file": DEMO_NAME},
    {"match": "MENU_MANUAL", "reply": "说明见官网"},  # a click key is matched like typed text too
    {"scene": "poster", "file": DEMO_NAME},
]

pytestmark = pytest.mark.slow  # runs the real `bot` command against the fake, ~45 times


def bot(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
        check=False,
    )


def as_toml(menu: dict[str, Any]) -> str:
    return array_of_tables("menu.button", menu["button"])


@pytest.fixture
def fake() -> Iterator[FakeWeChat]:
    with running_fake() as fake:
        yield fake


def config_for(
    tmp_path: Path,
    fake: FakeWeChat,
    menu: str = "",
    keywords: list[dict[str, Any]] | None = None,
    **wechat: str,
) -> Path:
    """The test config speaking to ``fake``, with a log file and ``menu`` appended."""
    (tmp_path / "files").mkdir(exist_ok=True)
    (tmp_path / "files" / DEMO_NAME).write_text("使用说明", encoding="utf-8")
    path = write_config(
        tmp_path,
        keywords=RULES if keywords is None else keywords,
        wechat={"app_id": APP_ID, "app_secret": APP_SECRET, "api_base_url": fake.url, **wechat},
        log={"file": "bot.log"},
    )
    path.write_text(path.read_text(encoding="utf-8") + menu, encoding="utf-8")
    return path


def append(config: Path, text: str) -> Settings:
    config.write_text(config.read_text(encoding="utf-8") + "\n" + text, encoding="utf-8")
    return load_settings(config)


@pytest.mark.parametrize(
    ("menu", "sent", "warned"),
    [
        pytest.param(ISSUE_MENU, ISSUE_JSON, [], id="issue-example"),
        pytest.param(
            as_toml(DOCUMENTED_MENU),
            DOCUMENTED_MENU,
            ["menu.button[0] ('今日歌曲'): key 'V1001_TODAY_MUSIC'", "key 'V1001_GOOD'"],
            id="wechat-example",
        ),
    ],
)
def test_menu_push_sends_exactly_the_documented_json(
    fake: FakeWeChat, tmp_path: Path, files_dir: Path, menu: str, sent: Any, warned: list[str]
) -> None:
    result = bot("menu", "push", "-c", str(config_for(tmp_path, fake, menu)))
    assert result.returncode == 0, result.stderr
    assert fake.bodies["cgi-bin/menu/create"] == [sent]
    assert fake.menu == sent
    assert "menu created" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == len(warned)
    for line, says in zip(warnings, warned, strict=True):
        assert says in line and "no rule answers it" in line


def _leaf(name: str = "k", **fields: str) -> dict[str, str]:
    return {"type": "click", "name": name, "key": "K", **fields}


def _parent(*subs: dict[str, str], name: str = "p") -> dict[str, Any]:
    return {"name": name, "sub_button": list(subs)}


@pytest.mark.parametrize(
    ("menu", "says"),
    [
        pytest.param("", "config 'menu': is not in the config — add [[menu.button]]", id="none"),
        pytest.param("[menu]\nbutton = []\n", "menu.button has 0 buttons", id="0-top"),
        pytest.param(
            as_toml({"button": [_leaf(f"b{i}") for i in range(4)]}),
            "menu.button has 4 buttons; WeChat allows 1 to 3",
            id="4-top",
        ),
        pytest.param(
            "[[menu.button]]\nname = 'p'\nsub_button = []\n", "has 0 sub-buttons", id="0-sub"
        ),
        pytest.param(
            as_toml({"button": [_parent(*[_leaf(f"s{i}") for i in range(6)])]}),
            "menu.button[0] ('p') has 6 sub-buttons; WeChat allows 1 to 5",
            id="6-sub",
        ),
        pytest.param(
            as_toml({"button": [_leaf("下载安装包" + "ab")]}),
            "menu.button[0] ('下载安装包ab'): name is 17 bytes; a top-level name may have at most 16",
            id="top-name-17",
        ),
        pytest.param(
            as_toml({"button": [_parent(_leaf("长" * 20 + "a"))]}),
            "name is 61 bytes; a sub-button name may have at most 60",
            id="sub-name-61",
        ),
        pytest.param(
            as_toml({"button": [_leaf(key="k" * 129)]}),
            "key is 129 bytes; at most 128",
            id="key-129",
        ),
        pytest.param(
            as_toml(
                {"button": [{"type": "view", "name": "u", "url": "https://e.com/" + "a" * 1011}]}
            ),
            "url is 1025 bytes; at most 1024",
            id="url-1025",
        ),
    ],
)
def test_every_menu_limit_is_refused_with_exit_2_and_no_call(
    fake: FakeWeChat, tmp_path: Path, menu: str, says: str
) -> None:
    result = bot("menu", "push", "-c", str(config_for(tmp_path, fake, menu)))
    assert result.returncode == 2, result.stdout + result.stderr
    assert says in result.stderr and "Traceback" not in result.stderr
    assert sum(fake.calls.values()) == 0


def test_a_menu_at_every_limit_is_pushed(fake: FakeWeChat, tmp_path: Path) -> None:
    top = "下载安装" + "abcd"  # 16 bytes
    menu = {
        "button": [
            _parent(*[_leaf("长" * 20) for _ in range(4)], _leaf(key="k" * 128), name=top),
            {"type": "view", "name": "u", "url": "https://e.com/" + "a" * 1010},
            _leaf(),
        ]
    }
    result = bot("menu", "push", "-c", str(config_for(tmp_path, fake, as_toml(menu))))
    assert result.returncode == 0, result.stderr
    assert fake.bodies["cgi-bin/menu/create"] == [menu]


def test_menu_show_marks_what_differs_from_the_config(fake: FakeWeChat, tmp_path: Path) -> None:
    config = config_for(tmp_path, fake, ISSUE_MENU)
    live = tomllib.loads(ISSUE_MENU)["menu"]
    live["button"][0]["sub_button"][1]["url"] = "https://old.example.com"
    fake.menu = live
    result = bot("menu", "show", "-c", str(config))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "live menu, the menu made through the API (menu/get):"
    assert lines[1:5] == [
        "  下载",
        "      安装包  (click: key=GET_SETUP)",
        "*     官网  (view: url=https://old.example.com)",
        "  说明  (click: key=MENU_MANUAL)",
    ]
    assert (
        "* menu.button[0].sub_button[1]: live name='官网', type='view', url='https://old.example"
        ".com', config name='官网', type='view', url='https://example.com'" in lines
    )
    fake.menu = ISSUE_JSON
    same = bot("menu", "show", "-c", str(config))
    assert same.returncode == 0 and "same as [menu] in the config" in same.stdout
    assert "*" not in same.stdout
    assert fake.calls["cgi-bin/stable_token"] == 1  # the second run used the stored token


def test_menu_show_of_an_account_without_a_menu(fake: FakeWeChat, tmp_path: Path) -> None:
    result = bot("menu", "show", "-c", str(config_for(tmp_path, fake, ISSUE_MENU)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "the account has no menu",
        "[menu] in the config is not on WeChat yet: `bot menu push` creates it",
    ]


def test_menu_pull_writes_toml_that_loads_back_as_the_menu(
    fake: FakeWeChat, tmp_path: Path
) -> None:
    config = config_for(tmp_path, fake)
    fake.menu = DOCUMENTED_MENU
    out = tmp_path / "menu.toml"
    result = bot("menu", "pull", "-c", str(config), "--out", str(out))
    assert result.returncode == 0, result.stderr
    text = out.read_text(encoding="utf-8")
    assert "[[menu.button]]" in text and "[[menu.button.sub_button]]" in text  # never inline
    assert append(config, text).menu == load_menu(DOCUMENTED_MENU)
    again = bot("menu", "pull", "-c", str(config), "--out", str(out))
    assert again.returncode == 2 and "exists" in again.stderr
    assert out.read_text(encoding="utf-8") == text
    printed = bot("menu", "pull", "-c", str(config))
    assert printed.returncode == 0 and printed.stdout == text


def test_menu_pull_carries_an_admin_page_menu_over(fake: FakeWeChat, tmp_path: Path) -> None:
    config = config_for(tmp_path, fake)
    fake.selfmenu = SELFMENU_EXAMPLE  # made on the admin page: menu/get answers 46003
    out = tmp_path / "menu.toml"
    result = bot("menu", "pull", "-c", str(config), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert fake.calls["cgi-bin/menu/get"] == 1
    assert fake.calls["cgi-bin/get_current_selfmenu_info"] == 1
    for media in (
        "nTXe3aghlQ4XYHa0AQPWiQQbFW9RVtaYTLPC1PCQx11qc9UB6CiUPFjdkeEtJicn",
        "ax5Whs5dsoomJLEppAvftBUuH7CgXCZGFbFJifmbUjnQk_ierMHY99Y5d2Cv14RD",
        "mid=204013432&idx=2",
    ):
        assert media in result.stdout and media in out.read_text(encoding="utf-8")
    settings = append(config, out.read_text(encoding="utf-8"))
    assert settings.menu is not None
    assert [b.name for b in settings.menu.button] == ["button", "text", "photo"]
    assert settings.menu.button[0].sub_button is not None
    assert settings.menu.button[0].sub_button[0].url == "http://www.qq.com"
    text_rule = next(rule for rule in settings.keywords if rule.click == "MENU_2")
    assert text_rule.reply == "This is text!"
    check = bot("check", "-c", str(config))
    assert check.returncode == 0, check.stderr
    for key in ("MENU_1_2", "MENU_1_3", "MENU_1_4", "MENU_3"):  # to answer before going live
        assert f"key '{key}': no rule answers it" in check.stderr
    assert "MENU_2'" not in check.stderr


def test_an_unverified_account_pulls_its_admin_page_menu(fake: FakeWeChat, tmp_path: Path) -> None:
    fake.selfmenu = SELFMENU_EXAMPLE
    fake.script("cgi-bin/menu/get", 48001)  # an unverified 订阅号 has no menu API
    result = bot("menu", "pull", "-c", str(config_for(tmp_path, fake)))
    assert result.returncode == 0, result.stderr
    assert load_menu(tomllib.loads(result.stdout)["menu"]).button[1].key == "MENU_2"


def test_menu_delete(fake: FakeWeChat, tmp_path: Path) -> None:
    fake.menu = ISSUE_JSON
    result = bot("menu", "delete", "-c", str(config_for(tmp_path, fake)))
    assert result.returncode == 0, result.stderr
    assert fake.menu is None and fake.calls["cgi-bin/menu/delete"] == 1
    assert "menu deleted" in result.stdout


def zbar(png: Path) -> str:
    zbarimg = shutil.which("zbarimg")
    if zbarimg is None:
        pytest.fail("zbarimg is missing: apt-get install zbar-tools (the Makefile's TEST_DEBS)")
    decoded = subprocess.run(
        [zbarimg, "--raw", "-q", str(png)], capture_output=True, text=True, check=True
    )
    return decoded.stdout.strip()


@pytest.mark.parametrize(
    ("options", "body_expiry"),
    [
        pytest.param([], {"expire_seconds": 2_592_000}, id="temporary-30-days"),
        pytest.param(["--days", "7"], {"expire_seconds": 604_800}, id="temporary-7-days"),
        pytest.param(["--permanent"], {}, id="permanent"),
    ],
)
def test_qr_writes_a_png_that_decodes_to_the_url(
    fake: FakeWeChat, tmp_path: Path, options: list[str], body_expiry: dict[str, int]
) -> None:
    png = tmp_path / "poster.png"
    before = datetime.now(CHINA)
    result = bot("qr", "poster", "--out", str(png), "-c", str(config_for(tmp_path, fake)), *options)
    assert result.returncode == 0, result.stderr
    action = "QR_STR_SCENE" if body_expiry else "QR_LIMIT_STR_SCENE"
    assert fake.bodies["cgi-bin/qrcode/create"] == [
        {**body_expiry, "action_name": action, "action_info": {"scene": {"scene_str": "poster"}}}
    ]
    url = "http://weixin.qq.com/q/poster-kZgfwMTm72WWPkovabbI"
    assert zbar(png) == url
    assert url in result.stdout
    assert re.search(r"^ticket: gQH47joAAAAAAAAAASxodHRw\S+$", result.stdout, re.M)
    if not body_expiry:
        assert "expires: never (permanent, QR_LIMIT_STR_SCENE)" in result.stdout
    else:
        shown = re.search(r"^expires: (\S+ \S+) 北京时间", result.stdout, re.M)
        assert shown, result.stdout
        at = datetime.strptime(shown.group(1), "%Y-%m-%d %H:%M").replace(tzinfo=CHINA)
        expected = before + timedelta(seconds=body_expiry["expire_seconds"])
        assert abs(at - expected) < timedelta(minutes=2)
    assert "warning" not in result.stderr  # a rule has scene = "poster"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        pytest.param(["s" * 65], "scene: is 65 characters — use 1 to 64", id="scene-65"),
        pytest.param([""], "scene: is 0 characters", id="scene-empty"),
        pytest.param(["poster", "--days", "31"], "less than or equal to 30", id="days-31"),
        pytest.param(["poster", "--days", "0"], "greater than or equal to 1", id="days-0"),
        pytest.param(["poster", "--days", "3", "--permanent"], "not both", id="days-and-permanent"),
    ],
)
def test_qr_refuses_what_wechat_would_with_exit_2_and_no_call(
    fake: FakeWeChat, tmp_path: Path, args: list[str], says: str
) -> None:
    png = tmp_path / "poster.png"
    result = bot("qr", *args, "--out", str(png), "-c", str(config_for(tmp_path, fake)))
    assert result.returncode == 2 and says in result.stderr, result.stderr
    assert sum(fake.calls.values()) == 0 and not png.exists()


def test_qr_warns_when_no_rule_has_the_scene(fake: FakeWeChat, tmp_path: Path) -> None:
    png = tmp_path / "poster.png"
    result = bot("qr", "spring", "--out", str(png), "-c", str(config_for(tmp_path, fake)))
    assert result.returncode == 0, result.stderr
    assert "warning: no rule has scene = 'spring'" in result.stderr
    assert zbar(png) == "http://weixin.qq.com/q/spring-kZgfwMTm72WWPkovabbI"


def test_import_autoreply_of_wechats_documented_example(fake: FakeWeChat, tmp_path: Path) -> None:
    config = config_for(tmp_path, fake)
    out = tmp_path / "rules.toml"
    result = bot("import-autoreply", "--out", str(out), "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert fake.calls["cgi-bin/get_current_autoreply_info"] == 1
    assert "1 rule(s) and [replies] welcome, [replies] other" in result.stdout
    left = result.stdout.split("not carried over", 1)[1]
    for where, kind, media in (
        ("rule 0 ('autoreply-news')", "news", "KQb_w_Tiz-nSdVLoTV35Psmty8hGBulGhEdbb9SKs-o"),
        (
            "rule 1 ('autoreply-voice')",
            "voice",
            "NESsxgHEvAcg3egJTtYj4uG1PTL6iPhratdWKDLAXYErhN6oEEfMdVyblWtBY5vp",
        ),
        ("rule 3 ('autoreply-video')", "video", "1007_114bcede9a2244eeb5ab7f76d951df5f.f10.mp4"),
    ):
        assert re.search(rf"{re.escape(where)}: {kind} .*{re.escape(media)}", left), left
    text = out.read_text(encoding="utf-8")
    settings = append(config, text)  # the config already has [[keywords]]: appended to them
    imported = settings.keywords[len(RULES) :]
    assert [(r.aliases, r.mode, r.reply) for r in imported] == [
        (["text测试"], "contains", "hello!text!")
    ]
    assert settings.replies.welcome != "Thanks for your attention!"  # commented: to review
    replies = append(
        config,
        text.replace("# [replies]", "[replies]")
        .replace("# welcome", "welcome")
        .replace("# other", "other"),
    ).replies
    assert (replies.welcome, replies.other) == (
        "Thanks for your attention!",
        "Hello, this is autoreply!",
    )
    again = bot("import-autoreply", "--out", str(out), "-c", str(config))
    assert again.returncode == 2 and "exists" in again.stderr
    printed = bot("import-autoreply", "-c", str(config))  # `docker compose exec -T … > rules.toml`
    assert printed.returncode == 0 and printed.stdout == text


def test_import_autoreply_appends_to_a_config_that_has_replies(
    fake: FakeWeChat, tmp_path: Path
) -> None:
    config = config_for(tmp_path, fake)
    append(config, '[replies]\nwelcome = "欢迎"\n')
    out = tmp_path / "rules.toml"
    assert bot("import-autoreply", "--out", str(out), "-c", str(config)).returncode == 0
    settings = append(config, out.read_text(encoding="utf-8"))
    assert settings.replies.welcome == "欢迎"
    assert settings.keywords[-1].aliases == ["text测试"]


@pytest.mark.parametrize(
    ("api", "codes", "says"),
    [
        pytest.param(
            "cgi-bin/stable_token",
            [40164],
            f"add {SERVER_IP} to 公众号 admin page → 设置与开发 → 基本配置 → IP白名单",
            id="40164-whitelist",
        ),
        pytest.param("cgi-bin/stable_token", [40013], "the AppID is not valid", id="40013"),
        pytest.param(
            "cgi-bin/stable_token",
            [40125],
            "into [wechat] app_secret or BOT_WECHAT__APP_SECRET",
            id="40125",
        ),
        pytest.param(
            "cgi-bin/menu/delete",
            [48001],
            "need a verified (认证) 订阅号 or a 服务号",
            id="48001-account-type",
        ),
        pytest.param(
            "cgi-bin/menu/delete", [45009], "the daily quota of cgi-bin/menu/delete", id="45009"
        ),
        pytest.param("cgi-bin/menu/delete", [-1, -1, -1], "WeChat is busy", id="busy"),
    ],
)
def test_each_errcode_exits_2_with_its_message(
    fake: FakeWeChat, tmp_path: Path, api: str, codes: list[int], says: str
) -> None:
    fake.script(api, *codes)
    result = bot("menu", "delete", "-c", str(config_for(tmp_path, fake)))
    assert result.returncode == 2, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and says in errors[0], result.stderr
    assert errors[0].startswith(f"error: WeChat API {api}: ")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(["menu", "push"], id="push"),
        pytest.param(["menu", "show"], id="show"),
        pytest.param(["qr", "poster", "--out", "p.png"], id="qr"),
        pytest.param(["import-autoreply", "--out", "r.toml"], id="import"),
    ],
)
def test_no_app_secret_exits_2_naming_the_key_before_any_call(
    fake: FakeWeChat, tmp_path: Path, command: list[str]
) -> None:
    config = config_for(tmp_path, fake, ISSUE_MENU, app_secret="")
    result = bot(*command, "-c", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert "error: config 'wechat.app_secret': is empty" in result.stderr
    assert "BOT_WECHAT__APP_SECRET" in result.stderr
    assert sum(fake.calls.values()) == 0


def test_no_token_or_secret_in_output_or_log_files(fake: FakeWeChat, tmp_path: Path) -> None:
    config = config_for(tmp_path, fake, ISSUE_MENU)
    runs = [bot("menu", "push", "-c", str(config))]
    fake.supersede()  # the stored token now answers 40001: refreshed, the call retried
    runs.append(bot("menu", "show", "-c", str(config)))
    fake.script("cgi-bin/menu/get", 40001, 40001)  # refused even after a forced refresh
    runs.append(bot("menu", "show", "-c", str(config)))
    for code in (40164, 48001, 45009):
        fake.script("cgi-bin/qrcode/create", code)
        runs.append(bot("qr", "poster", "--out", str(tmp_path / "p.png"), "-c", str(config)))
    fake.script("cgi-bin/stable_token", 40125)
    (tmp_path / "state").rename(tmp_path / "old-state")  # no stored token: fetch one
    runs.append(bot("import-autoreply", "--out", str(tmp_path / "r.toml"), "-c", str(config)))
    assert [r.returncode for r in runs] == [0, 0, 2, 2, 2, 2, 2]
    assert len(fake.issued) >= 3 and fake.forced == 1
    logs = [p.read_text(encoding="utf-8") for p in tmp_path.glob("bot.log*")]
    assert logs and "access_token=…" in logs[0]
    for text in [r.stdout + r.stderr for r in runs] + logs:
        assert APP_SECRET not in text
        for token in fake.issued:
            assert token not in text


def test_check_and_serve_warn_about_menu_keys_no_rule_answers(
    fake: FakeWeChat, tmp_path: Path, files_dir: Path
) -> None:
    menu = ISSUE_MENU + '[[menu.button]]\nname = "扫码"\ntype = "scancode_push"\nkey = "SCAN"\n'
    config = config_for(tmp_path, fake, menu, keywords=RULES[:2])  # MENU_MANUAL lost its rule
    check = bot("check", "-c", str(config))
    assert check.returncode == 0, check.stderr
    warnings = [line for line in check.stderr.splitlines() if line.startswith("warning:")]
    assert [w.split(": key ")[1].split(":")[0] for w in warnings] == ["'MENU_MANUAL'", "'SCAN'"]
    assert "menu.button[1] ('说明')" in warnings[0]
    served = BotProcess(config, free_port())
    try:
        served.wait_ready()
    finally:
        served.stop()
    assert re.search(
        r"WARNING \| menu\.button\[1\] \('说明'\): key 'MENU_MANUAL': no rule", served.text()
    )
    assert sum(fake.calls.values()) == 0  # neither calls WeChat


def test_the_example_configs_commented_menu_is_valid_once_switched_on() -> None:
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    block = text.split("## The account's custom menu", 1)[1].split("\n[replies]", 1)[0]
    lines = [line.removeprefix("# ") for line in block.splitlines() if line.startswith("# ")]
    menu = load_menu(tomllib.loads("\n".join(lines))["menu"])
    assert [b.name for b in menu.button] == ["下载", "说明"]
    assert '# app_secret = ""' in text and "BOT_WECHAT__APP_SECRET" in text
