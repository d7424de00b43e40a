"""Configuration loading, overrides, and refusals that name the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.config import load_settings
from bot.errors import ConfigError
from tests.conftest import SECRET, write_config


def test_example_config_loads_once_secrets_are_set(monkeypatch: pytest.MonkeyPatch) -> None:
    root = Path(__file__).resolve().parent.parent
    monkeypatch.setenv("BOT_WECHAT__TOKEN", "abc123")
    monkeypatch.setenv("BOT_LINKS__SECRET_KEYS", f'["{SECRET}"]')
    settings = load_settings(root / "config.example.toml")
    assert [(k.match, k.file) for k in settings.keywords] == [("芝麻开门", "使用说明.txt")]
    assert settings.links.ttl_seconds == 600
    assert settings.files.dir == root / "files"


def test_example_config_refused_with_placeholders() -> None:
    root = Path(__file__).resolve().parent.parent
    with pytest.raises(ConfigError) as info:
        load_settings(root / "config.example.toml")
    assert info.value.key == "wechat.token"


def test_env_overrides_file(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_SERVER__PORT", "9123")
    monkeypatch.setenv("BOT_LINKS__TTL_SECONDS", "30")
    settings = load_settings(config_file)
    assert (settings.server.port, settings.links.ttl_seconds) == (9123, 30)
    assert settings.wechat.app_id  # untouched keys still come from the file


def test_bot_config_env_names_the_file(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_CONFIG", str(config_file))
    assert load_settings().wechat.token == "testtoken123"


@pytest.mark.parametrize(
    ("sections", "key"),
    [
        pytest.param({"wechat": {"token": ""}}, "wechat.token", id="empty-token"),
        pytest.param({"wechat": {"token": "CHANGE-ME"}}, "wechat.token", id="placeholder-token"),
        pytest.param({"links": {"secret_keys": []}}, "links.secret_keys", id="no-keys"),
        pytest.param(
            {"links": {"secret_keys": ["CHANGE-ME"]}}, "links.secret_keys", id="placeholder-key"
        ),
        pytest.param({"links": {"secret_keys": ["short"]}}, "links.secret_keys", id="short-key"),
        pytest.param(
            {"server": {"public_url": "files.example.com"}}, "server.public_url", id="relative-url"
        ),
        pytest.param(
            {"server": {"public_url": "ftp://x.example"}}, "server.public_url", id="ftp-url"
        ),
        pytest.param({"server": {"port": "eighty"}}, "server.port", id="port-not-int"),
        pytest.param(
            {"wechat": {"encoding_aes_key": "short"}}, "wechat.encoding_aes_key", id="bad-aes"
        ),
        pytest.param({"files": {"dir": "nowhere"}}, "files.dir", id="no-files-dir"),
        pytest.param({"server": {"colour": "red"}}, "server.colour", id="unknown-key"),
        pytest.param({"replies": {"help": "send {kw}"}}, "replies.help", id="bad-template"),
        pytest.param({"state": {"url": "postgres://db/bot"}}, "state.url", id="unknown-store"),
    ],
)
def test_refusals_name_the_key(
    tmp_path: Path, files_dir: Path, sections: dict[str, dict[str, Any]], key: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write_config(tmp_path, **sections))
    assert info.value.key == key


def test_keyword_file_must_exist(tmp_path: Path, files_dir: Path) -> None:
    path = write_config(tmp_path)
    (files_dir / "使用说明.txt").unlink()
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert info.value.key == "keywords[0].file"


@pytest.mark.slow
def test_cli_exits_2_without_traceback(tmp_path: Path, files_dir: Path) -> None:
    path = write_config(tmp_path, wechat={"token": "CHANGE-ME"})
    result = subprocess.run(
        [sys.executable, "-m", "bot", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "wechat.token" in result.stderr and "bot init" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


SECRETISH = "sk-live-0123456789abcdef"


@pytest.mark.parametrize(
    ("sections", "key", "kind"),
    [
        pytest.param(
            {"wechat": {"appsecret": SECRETISH}}, "wechat.appsecret", "a str", id="seen-9-unknown"
        ),
        pytest.param({"server": {"port": SECRETISH}}, "server.port", "a str", id="wrong-type"),
        pytest.param(
            {"links": {"secret_keys": SECRETISH}}, "links.secret_keys", "a str", id="not-a-list"
        ),
        pytest.param(
            {"state": {"url": f"postgres://bot:{SECRETISH}@db/bot"}}, "state.url", "", id="store"
        ),
    ],
)
def test_refusals_never_echo_the_value(
    tmp_path: Path, files_dir: Path, sections: dict[str, dict[str, Any]], key: str, kind: str
) -> None:
    """#19 seen 9: `(got 'sk…')` printed a secret into logs; the kind of value is named instead."""
    with pytest.raises(ConfigError) as info:
        load_settings(write_config(tmp_path, **sections))
    assert info.value.key == key
    assert SECRETISH[:6] not in str(info.value)
    assert f"(got {kind})" in str(info.value) if kind else "(got" not in str(info.value)
