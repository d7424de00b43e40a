"""Issue #21 items 8 and 9: `bot init`, `link`, `audit`, `prune`, `check` as a new owner meets them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BIG_NAME, DEMO_NAME, write_config
from tests.helpers.processes import bot
from tests.helpers.s3 import refusing_bucket

pytestmark = pytest.mark.slow  # runs the real `bot` command

RULES: list[dict[str, Any]] = [
    {"match": "芝麻开门", "file": DEMO_NAME},
    {"click": "MENU_BIG", "file": BIG_NAME},
    {"scene": "poster", "file": DEMO_NAME},
]


def test_init_makes_the_folder_it_is_told_to_write_into(tmp_path: Path) -> None:
    """Item 8: `bot init --config a/new/folder/config.toml` writes it (no traceback)."""
    result = bot("init", "--config", "a/new/folder/config.toml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert (tmp_path / "a/new/folder/config.toml").is_file()
    assert "a/new/folder/files" in result.stdout  # where the files go next


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("files.example.com", id="no-scheme"),
        pytest.param("ftp://files.example.com", id="not-http"),
    ],
)
def test_init_refuses_a_public_url_bot_check_would_refuse(tmp_path: Path, url: str) -> None:
    """Item 8: `--public-url files.example.com` is refused at once, and nothing is written."""
    result = bot("init", "--public-url", url, cwd=tmp_path)
    assert result.returncode == 2 and "--public-url" in result.stderr
    assert "https://files.example.com" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "config.toml").exists()


@pytest.mark.parametrize("name", ["MENU_BIG", "poster", "芝麻开门"])
def test_link_takes_a_menu_key_or_a_scene(tmp_path: Path, files_dir: Path, name: str) -> None:
    """Item 9: `bot link` makes a link for a click-only or scene-only rule too."""
    result = bot("link", name, "--config", str(write_config(tmp_path, keywords=RULES)))
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"http://127\.0\.0\.1:8000/d/\S+\n", result.stdout)


def test_link_prints_its_expiry_in_beijing_time(tmp_path: Path, files_dir: Path) -> None:
    """Item 9: the expiry reads as every other time the bot shows: Beijing time, +08:00."""
    result = bot("link", "芝麻开门", "--config", str(write_config(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert re.search(r"expires \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+08:00", result.stderr), result.stderr


def test_audit_of_an_unknown_link_exits_1(tmp_path: Path, files_dir: Path) -> None:
    """Item 9: `bot audit nope` says the id is unknown and exits 1 (as `bot revoke` does)."""
    config = str(write_config(tmp_path))
    result = bot("audit", "nope", "--config", config)
    assert (
        result.returncode == 1
        and "nope" in result.stderr
        and "not in the audit trail" in result.stderr
    )
    made = bot("link", "芝麻开门", "--config", config)
    link_id = re.search(r"link (\S+) for", made.stderr).group(1)  # type: ignore[union-attr]
    known = bot("audit", link_id, "--config", config)
    assert known.returncode == 0 and link_id in known.stdout


def test_prune_help_names_the_setting() -> None:
    """Item 9: `bot prune --help` read "older than  keep_days" (the section eaten as markup)."""
    result = bot("prune", "--help")
    assert result.returncode == 0
    assert "[state] keep_days" in " ".join(result.stdout.split())


def test_check_in_s3_mode_prints_no_raw_log_line(tmp_path: Path) -> None:
    """Item 9: a bucket refusing the key pair: the config error only, no loguru line."""
    with refusing_bucket() as endpoint:
        s3 = {"endpoint_url": endpoint, "bucket": "b", "region": "us-east-1"}
        s3 |= {"access_key_id": "AKIAEXAMPLE000000000", "secret_access_key": "x" * 40}
        config = write_config(tmp_path, files={"delivery": "s3"}, s3=s3)
        result = bot("check", "--config", str(config))
    assert result.returncode == 2 and "config 's3.access_key_id'" in result.stderr
    assert "bot.delivery.s3" not in result.stderr and "| ERROR" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr


def test_a_symlink_out_of_the_files_folder_is_named(tmp_path: Path, files_dir: Path) -> None:
    """Item 9: a symlink in files/ leading elsewhere is refused, saying it is a symlink."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "real.txt").write_text("x", encoding="utf-8")
    (files_dir / "linked.txt").symlink_to(elsewhere / "real.txt")
    config = write_config(tmp_path, keywords=[{"match": "链接", "file": "linked.txt"}])
    result = bot("check", "--config", str(config))
    assert result.returncode == 2 and "keywords[0].file" in result.stderr
    assert "symlink" in result.stderr and str(elsewhere / "real.txt") in result.stderr
