"""docker/compose.yaml and docker/nginx.conf: consistent, accepted by a real nginx, and proxying.

Docker itself is not available to tests, so the compose file is read as YAML and nginx runs
from Debian's package with the paths the compose file mounts rewritten into a temp folder.
"""

from __future__ import annotations

import datetime
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bot.config import Settings, load_settings
from tests.conftest import DEMO_NAME, RunningServer, free_port, write_config
from tests.helpers.agents import IPHONE_WECHAT
from tests.helpers.paths import COMPOSE, DOCKER, NGINX_CONF
from tests.helpers.webhook import link_path, reply_text, send

UPSTREAM = re.compile(r"server\s+bot:8000;")


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return data


def mounts(service: str) -> dict[str, tuple[str, str]]:
    """Container path -> (host path as written, mode) for one service's volumes."""
    found = {}
    for volume in compose()["services"][service]["volumes"]:
        source, target, *mode = volume.split(":")
        found[target] = (source, mode[0] if mode else "rw")
    return found


def nginx_binary() -> str:
    path = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(path).is_file():  # a missing nginx is a failure, never a skip
        pytest.fail("nginx not found: install Debian's nginx-light (make debs)")
    return path


def test_compose_wires_bot_nginx_and_redis() -> None:
    services = compose()["services"]
    assert set(services) == {"bot", "nginx", "redis"}
    bot, nginx = services["bot"], services["nginx"]
    assert bot["environment"]["BOT_FILES__DELIVERY"] == "x-accel"
    assert bot["environment"]["BOT_STATE__URL"] == "redis://redis:6379/0"
    assert "ports" not in bot  # only nginx is published
    assert mounts("nginx")["/etc/nginx/nginx.conf"] == ("./nginx.conf", "ro")
    # nginx sends the very files the bot checks, from the same folder, read-only.
    assert mounts("nginx")["/files"] == mounts("bot")["/files"] == ("../files", "ro")
    assert mounts("bot")["/config"] == ("./config", "ro")
    assert "/state" in mounts("bot") and "/data" in mounts("redis")
    for service in ("bot", "nginx", "redis"):
        for source, _ in mounts(service).values():
            if source.startswith("."):
                assert (DOCKER / source).exists(), f"{service}: {source} is not in the repository"
    assert nginx["depends_on"]["bot"]["condition"] == "service_healthy"


def test_compose_environment_is_valid_settings(
    tmp_path: Path, files_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path)
    for key, value in compose()["services"]["bot"]["environment"].items():
        monkeypatch.setenv(key, str(value))
    settings = load_settings(config, check_files=False)
    assert settings.files.delivery == "x-accel"
    assert settings.state.url == "redis://redis:6379/0"
    assert settings.server.host == "0.0.0.0"  # noqa: S104 - inside the container, by design
    assert settings.files.dir == Path("/files")
    # The bot redirects into the prefix that nginx serves from the mounted files folder.
    conf = NGINX_CONF.read_text(encoding="utf-8")
    location = re.search(
        rf"location {re.escape(settings.files.x_accel_prefix)} \{{([^}}]*)\}}", conf
    )
    assert location, f"no location {settings.files.x_accel_prefix} in nginx.conf"
    assert "internal;" in location.group(1) and "alias /files/;" in location.group(1)


def self_signed(folder: Path) -> None:
    """fullchain.pem and privkey.pem for files.example.com, as docs/deploy.md names them."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "files.example.com")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (folder / "fullchain.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "privkey.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def rewritten_conf(tmp: Path, *, upstream: str, https: bool = False, listen: str = "") -> Path:
    """A copy of nginx.conf runnable here: what compose mounts lives under ``tmp`` instead.

    The upstream ``bot:8000`` becomes ``upstream``: Docker's DNS resolves the service name only
    inside the compose network, and nginx resolves upstream hosts when it loads the config.
    """
    conf = NGINX_CONF.read_text(encoding="utf-8")
    assert UPSTREAM.search(conf), "nginx.conf must proxy to upstream bot:8000"
    conf = UPSTREAM.sub(f"server {upstream};", conf)
    for target, (source, _) in sorted(mounts("nginx").items(), key=lambda m: -len(m[0])):
        if target == "/etc/nginx/nginx.conf":
            continue
        local = tmp / target.strip("/").replace("/", "_")
        if source == "../files":
            shutil.copytree(DOCKER / source, local, dirs_exist_ok=True)
        local.mkdir(exist_ok=True)
        conf = conf.replace(target, str(local))
    if https:
        assert "#https " in conf, "docs/deploy.md tells owners to remove the '#https ' prefixes"
        conf = conf.replace("#https ", "")
        self_signed(tmp / "etc_nginx_certs")
    if listen:
        conf = conf.replace("listen 80 ", f"listen {listen} ")
        conf = re.sub(r"listen 443 ssl[^;]*;", "", conf)
    path = tmp / "nginx.conf"
    path.write_text(conf, encoding="utf-8")
    return path


@pytest.mark.parametrize("https", [pytest.param(False, id="http"), pytest.param(True, id="https")])
def test_nginx_accepts_the_config(tmp_path: Path, https: bool) -> None:
    conf = rewritten_conf(tmp_path, upstream="127.0.0.1:8000", https=https)
    result = subprocess.run(
        [nginx_binary(), "-t", "-c", str(conf), "-p", str(tmp_path), "-e", str(tmp_path / "err")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


@pytest.fixture
def nginx_in_front(tmp_path: Path) -> Iterator[Callable[[RunningServer], tuple[str, Path]]]:
    """Start nginx with the compose config in front of a running bot; yields its URL."""
    started: list[subprocess.Popen[bytes]] = []

    def _start(bot: RunningServer) -> tuple[str, Path]:
        port = free_port()
        folder = tmp_path / "nginx"
        folder.mkdir()
        conf = rewritten_conf(
            folder, upstream=bot.url.removeprefix("http://"), listen=f"127.0.0.1:{port}"
        )
        access_log = folder / "stdout.log"
        command = [nginx_binary(), "-c", str(conf), "-p", str(folder), "-e", str(folder / "err")]
        command += ["-g", f"daemon off; pid {folder / 'nginx.pid'};"]
        with access_log.open("wb") as out:
            process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        started.append(process)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and process.poll() is None:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                return f"http://127.0.0.1:{port}", access_log
            except httpx.TransportError:
                time.sleep(0.02)
        pytest.fail(f"nginx did not start: {(folder / 'err').read_text(errors='replace')}")

    yield _start
    for process in started:
        process.terminate()
        process.wait(10)


def test_nginx_proxies_pages_downloads_and_hides_metrics(
    tmp_path: Path,
    files_dir: Path,
    serve: Callable[[Settings], RunningServer],
    nginx_in_front: Callable[[RunningServer], tuple[str, Path]],
) -> None:
    bot = serve(load_settings(write_config(tmp_path, server={"metrics": True})))
    front, access_log = nginx_in_front(bot)
    path = link_path(reply_text(send(bot, content="芝麻开门")))
    with httpx.Client(base_url=front, timeout=10) as client:
        health = client.get("/healthz")
        metrics = client.get("/metrics")
        landing = client.get(path, headers={"User-Agent": IPHONE_WECHAT})
        download = client.get(path)
        big_body = client.post("/wechat", content=b"x" * 100_000)
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert metrics.status_code == 404 and "bot_" not in metrics.text
    assert httpx.get(f"{bot.url}/metrics").status_code == 200  # the bot itself still serves it
    assert landing.status_code == 200 and "在浏览器打开" in landing.text
    assert landing.headers["vary"] == "User-Agent"
    assert download.content == (files_dir / DEMO_NAME).read_bytes()
    assert "filename*=UTF-8''%E4%BD%BF" in download.headers["content-disposition"]
    assert big_body.status_code == 413
    token = path.removeprefix("/d/")
    logged = access_log.read_text(encoding="utf-8", errors="replace")
    assert '"GET /d/<token>" 200' in logged and token not in logged
