"""/healthz with a store that answers or not, and /metrics on and off, over real sockets."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from bot.app import create_app
from bot.config import Settings, load_settings
from bot.web.deps import HealthCheck
from tests.conftest import Clock, LogCapture, RunningServer, write_config
from tests.helpers.agents import ANDROID_CHROME, IPHONE_WECHAT
from tests.helpers.messages import metric_samples
from tests.helpers.webhook import link_path, reply_text, send


async def _down() -> bool:
    return False


async def _raises() -> bool:
    raise ConnectionError("redis://redis:6379/0 refused")


async def _hangs() -> bool:
    await asyncio.sleep(30)
    return True


@pytest.fixture
def serve_with_health(
    clock: Clock, serve_app: Callable[..., str]
) -> Callable[[Settings, HealthCheck], str]:
    """Start a server whose health check is replaced (as the store's ping will be)."""

    def _start(settings: Settings, health: HealthCheck) -> str:
        app = create_app(settings, clock=clock)
        app.state.services = dataclasses.replace(app.state.services, health=health)
        return serve_app(app)

    return _start


def test_healthz_ok(server: RunningServer) -> None:
    with server.client() as client:
        response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("health", "logged"),
    [
        pytest.param(_down, "the store did not answer", id="store-says-no"),
        pytest.param(_raises, "ConnectionError: redis://redis:6379/0 refused", id="store-raises"),
        pytest.param(_hangs, "TimeoutError", id="store-hangs"),
    ],
)
def test_healthz_503_when_store_is_unreachable(
    serve_with_health: Callable[[Settings, HealthCheck], str],
    settings: Settings,
    logs: LogCapture,
    health: HealthCheck,
    logged: str,
) -> None:
    url = serve_with_health(settings, health)
    response = httpx.get(f"{url}/healthz", timeout=10)
    assert (response.status_code, response.json()) == (503, {"status": "unavailable"})
    assert "redis" not in response.text
    assert logs.find(f"health check failed: {logged}", level="ERROR")


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/metrics", id="metrics"),
        pytest.param("/d/metrics", id="under-download-prefix"),
        pytest.param("/d/..%2Fmetrics", id="encoded-traversal"),
        pytest.param("/d/%2e%2e/metrics", id="encoded-dots"),
        pytest.param("/wechat/../metrics", id="dot-segments"),
    ],
)
def test_metrics_off_is_unreachable(server: RunningServer, path: str) -> None:
    with server.client() as client:
        response = client.send(client.build_request("GET", httpx.URL(server.url + path)))
    assert response.status_code in (403, 404)
    assert "bot_" not in response.text and "# TYPE" not in response.text


def test_metrics_count_the_whole_path(
    tmp_path: Path,
    files_dir: Path,
    serve: Callable[[Settings], RunningServer],
    logs: LogCapture,
) -> None:
    server = serve(load_settings(write_config(tmp_path, server={"metrics": True})))
    path = link_path(reply_text(send(server, content="芝麻开门")))
    reply_text(send(server, content="big", msg_id="1002"))
    size = (files_dir / "使用说明.txt").stat().st_size
    with server.client() as client:
        client.post("/wechat", content=b"x")  # refused (403), still timed
        client.get(path, headers={"User-Agent": IPHONE_WECHAT})  # landing: not a download
        client.get(path, headers={"User-Agent": ANDROID_CHROME})
        client.get(path, headers={"Range": "bytes=0-3"})
        client.get("/d/garbage")
        client.get("/d/garbage2")
        logs.wait_for("download id=", count=2)
        server.clock.advance(601)
        client.get(path)
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples = metric_samples(response.text)
    assert samples[("bot_links_issued_total", (("keyword", "芝麻开门"),))] == 1
    assert samples[("bot_links_issued_total", (("keyword", "Big"),))] == 1
    assert samples[("bot_downloads_total", (("status", "200"),))] == 1
    assert samples[("bot_downloads_total", (("status", "206"),))] == 1
    assert samples[("bot_download_bytes_total", ())] == size + 4
    assert samples[("bot_landing_pages_total", (("agent", "wechat"),))] == 1
    assert samples[("bot_links_expired_total", ())] == 1
    assert samples[("bot_bad_tokens_total", ())] == 2
    assert samples[("bot_webhook_seconds_count", ())] == 3
    assert samples[("bot_webhook_seconds_bucket", (("le", "5.0"),))] == 3


def test_each_app_has_its_own_registry(settings: Settings) -> None:
    first, second = create_app(settings), create_app(settings)
    first.state.services.metrics.expired.inc()
    name = "bot_links_expired_total"
    assert first.state.services.metrics.registry.get_sample_value(name) == 1
    assert second.state.services.metrics.registry.get_sample_value(name) == 0
