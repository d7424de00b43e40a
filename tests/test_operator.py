"""Issue #11 deliver 6: operator tools: `bot check` table, placeholder AppID, simulate, help, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import segno

from bot.config import load_settings
from bot.keywords.table import display_width
from tests.conftest import AES_KEY, BIG_NAME, DEMO_NAME, free_port, write_config
from tests.helpers.processes import bot, running

pytestmark = pytest.mark.slow

RULES: list[dict[str, Any]] = [
    {"match": ["芝麻开门", "open"], "file": DEMO_NAME},
    {"match": "安装", "mode": "contains", "files": [DEMO_NAME, BIG_NAME], "max_downloads": 2},
    {"click": "MENU_BIG", "file": BIG_NAME, "active_until": "2099-01-01 00:00"},
    {"scene": "poster", "file": DEMO_NAME},
    {"match": "卡片", "file": BIG_NAME, "style": "news", "title": "安装包", "description": "点我"},
    {"match": "营业时间", "reply": "每天 9:00-18:00"},
]


def configure(tmp_path: Path, files_dir: Path, **sections: Any) -> Path:
    sections.setdefault("limits", {"links_per_user_per_hour": 0})
    return write_config(tmp_path, keywords=sections.pop("keywords", RULES), **sections)


def test_check_prints_the_rule_table_aligned_by_display_width(
    tmp_path: Path, files_dir: Path
) -> None:
    """`bot check`: triggers → files with sizes, limit, window; columns by display width."""
    result = bot("check", "--config", str(configure(tmp_path, files_dir)))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    table = lines[lines.index(next(x for x in lines if x.startswith("triggers"))) :]
    starts = {
        display_width(line[: line.index(name)])
        for line in table
        for name in (DEMO_NAME, BIG_NAME, "gives", "text reply")
        if name in line
    }
    assert len(starts) == 1, table  # the "gives" column starts at one screen column
    joined = "\n".join(table)
    assert "芝麻开门 | open" in joined and "安装 (contains)" in joined
    assert "menu MENU_BIG" in joined and "至 2099-01-01 00:00" in joined
    assert "scene poster" in joined and f"{BIG_NAME} [news]" in joined
    assert f"{(files_dir / BIG_NAME).stat().st_size:,}" in joined
    assert "text reply" in joined


def test_check_refuses_the_placeholder_app_id_with_an_aes_key(
    tmp_path: Path, files_dir: Path
) -> None:
    """`bot check` refuses config.example.toml's AppID when an EncodingAESKey is set (-40005)."""
    config = configure(
        tmp_path, files_dir, wechat={"app_id": "wx0000000000000000", "encoding_aes_key": AES_KEY}
    )
    result = bot("check", "--config", str(config))
    assert result.returncode == 2 and "wechat.app_id" in result.stderr
    assert "-40005" in result.stderr and "Traceback" not in result.stderr
    plain = configure(
        tmp_path, files_dir, wechat={"app_id": "wx0000000000000000", "encoding_aes_key": ""}
    )
    assert bot("check", "--config", str(plain)).returncode == 0


def test_config_errors_name_the_rule_without_pydantic_prefix(
    tmp_path: Path, files_dir: Path
) -> None:
    """A bad regex is refused naming the rule; no "Value error," prefix."""
    config = configure(
        tmp_path, files_dir, keywords=[{"match": "(", "mode": "regex", "file": DEMO_NAME}]
    )
    result = bot("check", "--config", str(config))
    assert result.returncode == 2
    assert "keywords[0] ('(')" in result.stderr and "not a valid regex" in result.stderr
    assert "Value error" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("revoke",), id="revoke-nothing"),
        pytest.param(("stats", "--since", "soon"), id="stats-since"),
        pytest.param(("link", "没有这个"), id="link-unknown"),
        pytest.param(("simulate", "--click", "A", "--voice", "B"), id="simulate-two"),
    ],
)
def test_usage_errors_do_not_say_config(
    tmp_path: Path, files_dir: Path, args: tuple[str, ...]
) -> None:
    result = bot(*args, "--config", str(configure(tmp_path, files_dir)))
    assert result.returncode == 2 and result.stderr.startswith("error: ")
    assert "config" not in result.stderr.lower()


def test_help_speaks_to_the_owner() -> None:
    result = bot("--help")
    assert result.returncode == 0
    assert "official account" in result.stdout and "bot reload" in result.stdout
    assert "passes them down" not in result.stdout and "settings" not in result.stdout.lower()


def test_simulate_clicks_scans_voice_and_reads_a_news_card(tmp_path: Path, files_dir: Path) -> None:
    """`bot simulate --click/--scan/--voice` against a real `bot serve`; news printed readably."""
    port = free_port()
    config = configure(
        tmp_path,
        files_dir,
        server={"port": port, "public_url": f"http://127.0.0.1:{port}"},
        log={"file": "bot.log"},
    )
    with running(config, f"http://127.0.0.1:{port}"):

        def simulate(*args: str) -> str:
            result = bot("simulate", *args, "--config", str(config))
            assert result.returncode == 0, result.stderr
            return result.stdout

        assert "/d/" in simulate("--click", "MENU_BIG")
        assert "/d/" in simulate("--voice", "芝麻开门。")
        assert "/d/" in simulate("--scan", "poster")
        welcome = simulate("--event", "subscribe", "--scan", "poster")
        assert welcome.startswith("感谢关注") and "/d/" in welcome
        card = simulate("卡片")
        assert card.startswith("[图文] 安装包\n点我\n→ http://127.0.0.1:") and "<xml>" not in card
        assert simulate("--voice", "") == "(no reply: success)\n"


def test_example_rules_load_when_switched_on(tmp_path: Path, files_dir: Path) -> None:
    """Issue #11 deliver 7: config.example.toml's commented rules are valid once uncommented."""
    text = (Path(__file__).resolve().parent.parent / "config.example.toml").read_text("utf-8")
    head, rest = text.split("# More rules, commented out", 1)
    block, tail = rest.split("[replies]", 1)
    lines = block.splitlines()
    lines = lines[next(i for i, line in enumerate(lines) if line.startswith("##")) :]
    block = "\n".join(line if line.startswith("##") else line.removeprefix("# ") for line in lines)
    text = head + block + "\n[replies]" + tail
    text = text.replace('token = "CHANGE-ME"', 'token = "abc123"').replace(
        'secret_keys = ["CHANGE-ME"]', 'secret_keys = ["0123456789abcdef0123"]'
    )
    # The image rule's picture goes to WeChat as temporary media: it needs the AppSecret (#18).
    text = text.replace(
        "[wechat]\n", '[wechat]\napp_secret = "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"\n', 1
    )
    config = tmp_path / "example.toml"
    config.write_text(text, encoding="utf-8")
    segno.make("poster").save(files_dir / "poster.png", scale=4)  # the image rule's picture
    settings = load_settings(config)
    kinds = {
        (r.mode, r.style, bool(r.click), bool(r.scene), bool(r.active_from))
        for r in settings.keywords
    }
    assert len(settings.keywords) == 8 and len(kinds) == 8  # with #18's image rule
    assert settings.keywords[1].aliases == ["使用说明", "manual", "说明书"]
