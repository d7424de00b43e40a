"""Issue #13, s3 mode set-up: `bot check`/`bot serve` HEAD checks, [s3] settings, secrets, compose."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from bot.config import load_settings
from bot.errors import ConfigError
from tests.conftest import (
    BIG_NAME,
    DEMO_NAME,
    free_port,
    write_config,
)
from tests.helpers.follower import Follower
from tests.helpers.paths import COMPOSE, NGINX_CONF, ROOT
from tests.helpers.processes import bot, wait_started
from tests.helpers.s3 import (
    ACCESS_KEY_ID,
    SECRET_ACCESS_KEY,
    Bucket,
    bucket_fixture,  # noqa: F401 - the `bucket` fixture
    make_bucket,
    refusing_bucket,
    s3_config,
    s3_server_fixture,  # noqa: F401 - the `s3_server` fixture
    start_s3,
)

pytestmark = pytest.mark.slow


def test_bot_check_lists_every_object_with_its_size(tmp_path: Path, bucket: Bucket) -> None:
    """Issue #13 deliver 2: `bot check` HEADs every keyword's object and lists it with its size."""
    config = s3_config(tmp_path, bucket, keys_in_file=False)
    env = {"BOT_S3__ACCESS_KEY_ID": ACCESS_KEY_ID, "BOT_S3__SECRET_ACCESS_KEY": SECRET_ACCESS_KEY}
    check = bot("check", "--config", str(config), **env)
    assert check.returncode == 0, check.stderr
    lines = check.stdout.splitlines()
    for name, body in bucket.files.items():
        row = next(line for line in lines if f"s3://{bucket.name}/dl/{name}" in line)
        assert f" {len(body):,}  s3://" in row
    assert SECRET_ACCESS_KEY not in check.stdout + check.stderr
    assert ACCESS_KEY_ID not in check.stdout + check.stderr


@pytest.mark.parametrize(
    "command", [pytest.param("check", id="check"), pytest.param("serve", id="serve")]
)
@pytest.mark.parametrize(
    ("fault", "key", "fix"),
    [
        pytest.param(
            "missing", "keywords[1].file", "upload it (aws s3 cp FILE s3://", id="object-missing"
        ),
        pytest.param(
            "unreachable", "s3.endpoint_url", "check s3.endpoint_url", id="bucket-unreachable"
        ),
        pytest.param("no-bucket", "keywords[0].file", "s3.bucket", id="no-such-bucket"),
        pytest.param("denied", "s3.access_key_id", "may read (GetObject)", id="key-refused"),
    ],
)
def test_start_up_refuses_a_missing_object_or_a_dead_bucket(
    tmp_path: Path, bucket: Bucket, command: str, fault: str, key: str, fix: str
) -> None:
    """Issue #13 deliver 2 / 6: a missing object or unreachable bucket: exit 2, key and fix named."""
    s3: dict[str, object] = {}
    with refusing_bucket() as refusing:
        if fault == "missing":
            bucket.delete(BIG_NAME)
        elif fault == "unreachable":
            s3 = {"endpoint_url": f"http://127.0.0.1:{free_port()}"}
        elif fault == "denied":
            s3 = {"endpoint_url": refusing}
        else:
            s3 = {"bucket": "no-such-bucket-here"}
        started = time.monotonic()
        result = bot(command, "--config", str(s3_config(tmp_path, bucket, s3=s3)))
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"config '{key}'" in result.stderr and fix in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert SECRET_ACCESS_KEY not in result.stderr and ACCESS_KEY_ID not in result.stderr
    assert time.monotonic() - started < 40


@pytest.mark.parametrize(
    ("s3", "key"),
    [
        pytest.param({"presign_seconds": 3601}, "s3.presign_seconds", id="presign-over-an-hour"),
        pytest.param({"presign_seconds": 0}, "s3.presign_seconds", id="presign-zero"),
        pytest.param({"addressing_style": "dns"}, "s3.addressing_style", id="addressing"),
        pytest.param(
            {"endpoint_url": "cos.myqcloud.com"}, "s3.endpoint_url", id="endpoint-relative"
        ),
        pytest.param({"bucket": ""}, "s3.bucket", id="no-bucket"),
    ],
)
def test_s3_settings_are_validated(
    tmp_path: Path, bucket: Bucket, s3: dict[str, object], key: str
) -> None:
    """Issue #13 deliver 1: the [s3] keys are checked at load time and the error names the key."""
    with pytest.raises(ConfigError) as caught:
        load_settings(s3_config(tmp_path, bucket, s3=s3))
    assert caught.value.key == key


def test_credentials_come_from_env_and_never_print(
    tmp_path: Path, bucket: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #13 deliver 1: BOT_S3__ keys are read; the settings never show them."""
    monkeypatch.setenv("BOT_S3__ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("BOT_S3__SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
    settings = load_settings(s3_config(tmp_path, bucket, keys_in_file=False))
    assert settings.s3.secret_access_key.get_secret_value() == SECRET_ACCESS_KEY
    assert settings.s3.access_key_id.get_secret_value() == ACCESS_KEY_ID
    shown = repr(settings) + str(settings) + settings.model_dump_json()
    assert SECRET_ACCESS_KEY not in shown and ACCESS_KEY_ID not in shown
    assert settings.s3.presign_seconds == 60


def test_a_real_bot_serve_never_logs_credentials(tmp_path: Path) -> None:
    """Issue #13 deliver 4 / 6: `bot serve` in s3 mode at DEBUG: redirects, a missing object and
    a dead bucket, and neither key of the pair in its log file, stderr or pages."""
    s3 = start_s3()
    port = free_port()
    try:
        bucket = make_bucket(s3)
        config = s3_config(
            tmp_path,
            bucket,
            keys_in_file=False,
            server={"port": port, "public_url": f"http://127.0.0.1:{port}"},
            log={"file": "bot.log", "level": "DEBUG"},
        )
        env = {
            "BOT_S3__ACCESS_KEY_ID": ACCESS_KEY_ID,
            "BOT_S3__SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        }
        stderr = tmp_path / "stderr.txt"
        with stderr.open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bot", "serve", "--config", str(config)],
                env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                stdout=err,
                stderr=err,
            )
        pages: list[str] = []
        try:
            url = f"http://127.0.0.1:{port}"
            wait_started(url, proc)
            follower = Follower(url)
            path = follower.link(encrypt=True)
            answer = follower.client.get(path)
            assert answer.status_code == 302
            assert httpx.get(answer.headers["location"]).content == bucket.files[DEMO_NAME]
            bucket.delete(DEMO_NAME)
            pages.append(follower.client.get(path).text)
            s3.stop()
            busy = follower.client.get(path)
            assert busy.status_code == 503
            pages.append(busy.text)
            follower.client.close()
            log = tmp_path / "bot.log"
            deadline = time.monotonic() + 10
            while "object store" not in log.read_text(encoding="utf-8"):
                assert time.monotonic() < deadline, "the 503 was not logged"
                time.sleep(0.05)
        finally:
            proc.terminate()
            proc.wait(15)
    finally:
        s3.stop()
    texts = {
        "bot.log": log.read_text(encoding="utf-8"),
        "stderr": stderr.read_text(encoding="utf-8"),
    }
    texts |= {f"page {i}": page for i, page in enumerate(pages)}
    assert "status=302" in texts["bot.log"] and "Traceback" not in texts["bot.log"]
    for name, text in texts.items():
        for secret in (SECRET_ACCESS_KEY, ACCESS_KEY_ID, "X-Amz-Signature", "X-Amz-Credential"):
            assert secret not in text, f"{name} holds {secret}"


class ComposeLoader(yaml.SafeLoader):
    """YAML with Compose's merge tags (``!override``, ``!reset``) read as plain values."""


ComposeLoader.add_constructor("!override", lambda loader, node: loader.construct_sequence(node))
ComposeLoader.add_constructor("!reset", lambda loader, node: None)
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")


def interpolate(value: str, shell: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}`` against ``shell``."""

    def one(match: re.Match[str]) -> str:
        name, op, rest = match.groups()
        if name in shell:
            return shell[name]
        assert op == "-", f"{name} is required and the shell does not set it"
        return str(rest)

    return INTERPOLATION.sub(one, value)


def test_compose_override_runs_two_stateless_replicas_in_s3_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #13 deliver 5: docker/compose.s3.yaml: two replicas, redis state, bucket files,
    nothing local but the configuration, credentials only from the environment."""
    base = yaml.load(COMPOSE.read_text(encoding="utf-8"), ComposeLoader)  # noqa: S506
    text = (COMPOSE.parent / "compose.s3.yaml").read_text(encoding="utf-8")
    override = yaml.load(text, ComposeLoader)  # noqa: S506
    bot_service = override["services"]["bot"]
    assert bot_service["deploy"]["replicas"] == 2
    assert bot_service["volumes"] == ["./config:/config:ro"]  # no files, no state volume
    assert not any(":/files" in v for v in override["services"]["nginx"]["volumes"])
    env = {**base["services"]["bot"]["environment"], **bot_service["environment"]}
    assert env["BOT_FILES__DELIVERY"] == "s3"
    assert env["BOT_STATE__URL"] == "redis://redis:6379/0"
    for key in ("BOT_S3__ACCESS_KEY_ID", "BOT_S3__SECRET_ACCESS_KEY", "BOT_S3__BUCKET"):
        assert env[key].startswith(f"${{{key}:?"), f"{key} must come from the shell"
    assert "server bot:8000;" in NGINX_CONF.read_text(encoding="utf-8")
    shell = {
        key: "from-the-shell" for key in ("BOT_S3__ACCESS_KEY_ID", "BOT_S3__SECRET_ACCESS_KEY")
    }
    shell["BOT_S3__BUCKET"] = "files-1250000000"
    for key, value in env.items():
        monkeypatch.setenv(key, interpolate(str(value), shell))
    config = write_config(tmp_path, files={"dir": "/nonexistent"})
    settings = load_settings(config)  # check_files: in s3 mode no folder is needed
    assert settings.files.delivery == "s3" and settings.s3.bucket == "files-1250000000"
    assert settings.s3.endpoint_url == "https://cos.ap-guangzhou.myqcloud.com"
    assert settings.s3.addressing_style == "virtual"
