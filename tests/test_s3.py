"""Issue #13: ``[files] delivery = "s3"`` against a real S3 API (moto's server) over real sockets."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from bot.config import Settings, load_settings
from bot.delivery.s3 import S3Delivery
from bot.errors import ObjectStoreUnavailable
from bot.web.downloads import content_disposition
from bot.web.pages import size_text
from tests.conftest import (
    BIG_NAME,
    DEMO_NAME,
    LogCapture,
    RunningServer,
)
from tests.helpers.agents import ANDROID_CHROME, IPHONE_WECHAT
from tests.helpers.messages import metric_samples
from tests.helpers.processes import bot
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
from tests.helpers.webhook import link_path, reply_text, send

Serve = Callable[[Settings], RunningServer]


@pytest.fixture
def s3_bot(tmp_path: Path, bucket: Bucket, serve: Serve) -> Callable[..., RunningServer]:
    def _start(**sections: object) -> RunningServer:
        return serve(load_settings(s3_config(tmp_path, bucket, **sections)))

    return _start


def get_link(server: RunningServer, keyword: str = "芝麻开门", user: str = "o_follower_1") -> str:
    return link_path(reply_text(send(server, content=keyword, user=user)))


@pytest.mark.parametrize(
    "name", [pytest.param(DEMO_NAME, id="small"), pytest.param(BIG_NAME, id="3MB")]
)
def test_link_redirects_to_presigned_url_with_exact_bytes_and_chinese_name(
    s3_bot: Callable[..., RunningServer], bucket: Bucket, name: str, logs: LogCapture
) -> None:
    """Issue #13 done-when / deliver 3: 302 to a presigned GET that downloads the exact bytes,
    with the same RFC 6266 Chinese filename, private no-store, expiring after presign_seconds."""
    server = s3_bot(s3={"presign_seconds": 45})
    path = get_link(server, "芝麻开门" if name == DEMO_NAME else "big")
    with server.client() as client:
        answer = client.get(path)
    assert answer.status_code == 302, answer.text
    assert answer.headers["cache-control"] == "private, no-store"
    assert answer.headers["referrer-policy"] == "no-referrer"
    location = answer.headers["location"]
    query = parse_qs(urlsplit(location).query)
    assert location.startswith(f"{bucket.s3.endpoint}/{bucket.name}/dl/")
    assert query["X-Amz-Expires"] == ["45"]
    assert query["response-content-disposition"] == [content_disposition(name)]
    assert query["response-cache-control"] == ["private, no-store"]
    body = httpx.get(location, timeout=10)
    assert body.status_code == 200
    assert body.content == bucket.files[name]
    assert body.headers["content-disposition"] == content_disposition(name)
    assert "filename*=UTF-8''" in body.headers["content-disposition"]
    assert body.headers["cache-control"] == "private, no-store"
    # Range through the presigned URL: httpx follows the 302 and keeps the header.
    with server.client(follow_redirects=True) as client:
        piece = client.get(path, headers={"Range": "bytes=5-1004"})
    assert piece.status_code == 206
    assert piece.content == bucket.files[name][5:1005]
    line = logs.wait_for("status=302")[0]
    assert f"bytes={len(bucket.files[name])} complete=True" in line


def test_redirect_is_counted_audited_and_measured(
    s3_bot: Callable[..., RunningServer], bucket: Bucket, tmp_path: Path, logs: LogCapture
) -> None:
    """Issue #13 deliver 3: a redirect counts as a whole download sent (metrics, audit, limit)."""
    server = s3_bot(server={"metrics": True}, links={"max_downloads": 1})
    path = get_link(server)
    with server.client() as client:
        first = client.get(path)
        again = client.get(path)
        metrics = client.get("/metrics").text
    assert first.status_code == 302
    assert again.status_code == 410 and "location" not in again.headers
    assert "下载次数已用完" in again.text
    size = len(bucket.files[DEMO_NAME])
    samples = metric_samples(metrics)
    assert samples[("bot_downloads_total", (("status", "302"),))] == 1
    assert samples[("bot_download_bytes_total", ())] == size
    link_id = re.search(r"download id=(\w+)", logs.wait_for("status=302")[0])
    assert link_id
    deadline = time.monotonic() + 10
    while True:  # audit rows are written off the answer's path
        audit = bot("audit", link_id.group(1), "--config", str(tmp_path / "config.toml"))
        if ("302" in audit.stdout and "410" in audit.stdout) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert audit.returncode == 0, audit.stderr
    assert "302" in audit.stdout and "410" in audit.stdout, audit.stdout


@pytest.mark.parametrize(
    "range_header",
    [
        pytest.param("bytes=0-0", id="first-byte"),
        pytest.param("bytes=100-", id="resume-nothing-counted"),
        pytest.param("bytes=999999999-", id="unsatisfiable"),
        pytest.param("bytes=garbage", id="malformed"),
    ],
)
def test_every_redirect_of_a_limited_link_counts_whatever_its_range(
    s3_bot: Callable[..., RunningServer], range_header: str
) -> None:
    """Issue #13 deliver 3: the presigned URL serves the whole object whatever Range the bot saw,
    so a first redirect always counts (an odd Range must not buy an uncounted URL)."""
    server = s3_bot(links={"max_downloads": 1})
    path = get_link(server, "big")
    with server.client() as client:
        first = client.get(path, headers={"Range": range_header})
        second = client.get(path)
    assert first.status_code == 302
    assert second.status_code == 410 and "location" not in second.headers


def test_two_instances_share_redis_and_the_bucket_and_nothing_else(
    tmp_path: Path, bucket: Bucket, serve: Serve, redis_url: str
) -> None:
    """Issue #13 deliver 5: two stateless instances (no files folder, state in redis): a link
    issued by one redirects at the other, and its one download is spent for both."""
    config = s3_config(tmp_path, bucket, links={"max_downloads": 1}, state={"url": redis_url})
    first, second = serve(load_settings(config)), serve(load_settings(config))
    assert not (tmp_path / "no-such-folder").exists() and not (tmp_path / "state").exists()
    path = get_link(first, "big")
    with second.client() as at_second, first.client() as at_first:
        redirect = at_second.get(path)
        body = httpx.get(redirect.headers["location"], timeout=30)
        used_up = at_first.get(path)
    assert redirect.status_code == 302 and body.content == bucket.files[BIG_NAME]
    assert used_up.status_code == 410 and "location" not in used_up.headers


def test_error_links_get_the_bots_pages_and_no_redirect(
    s3_bot: Callable[..., RunningServer], bucket: Bucket
) -> None:
    """Issue #13 deliver 3 / 6: expired, forged, used-up and missing links: bot pages, no 302."""
    server = s3_bot(links={"max_downloads": 1})
    expired, forged, used = get_link(server), get_link(server, user="o_2"), get_link(server, "big")
    gone = get_link(server, user="o_3")
    with server.client() as client:
        assert client.get(used).status_code == 302
        used_up = client.get(used)
        bad = client.get(forged[:-3] + ("AAA" if not forged.endswith("AAA") else "BBB"))
        bucket.delete(DEMO_NAME)
        missing = client.get(gone)
        server.clock.advance(601)
        late = client.get(expired)
    for answer, status, words in [
        (used_up, 410, "下载次数已用完"),
        (bad, 403, "链接无效"),
        (missing, 404, "文件暂时不可用"),
        (late, 410, "下载链接已过期"),
    ]:
        assert answer.status_code == status, answer.text
        assert "location" not in answer.headers
        assert words in answer.text


def test_wechat_browser_gets_landing_page_sized_from_the_object(
    s3_bot: Callable[..., RunningServer], bucket: Bucket
) -> None:
    """Issue #13 deliver 3: landing page (size from the object) and HEAD neither redirect nor count."""
    server = s3_bot(links={"max_downloads": 1})
    path = get_link(server, "big")
    with server.client() as client:
        page = client.get(path, headers={"User-Agent": IPHONE_WECHAT})
        head = client.head(path)
        download = client.get(path, headers={"User-Agent": ANDROID_CHROME})
    size = len(bucket.files[BIG_NAME])
    assert page.status_code == 200 and "location" not in page.headers
    assert 'id="copy"' in page.text and size_text(size) in page.text
    assert head.status_code == 200 and head.headers["content-length"] == str(size)
    assert head.headers["content-disposition"] == content_disposition(BIG_NAME)
    assert download.status_code == 302, "neither the page nor HEAD spent the one download"


def test_bucket_going_away_gives_503_busy_page_fast(
    tmp_path: Path, serve: Serve, logs: LogCapture
) -> None:
    """Issue #13 deliver 4 / 6: a bucket that stops answering → 503 + Retry-After + busy page."""
    s3 = start_s3()
    try:
        server = serve(load_settings(s3_config(tmp_path, make_bucket(s3))))
        path = get_link(server)
        with server.client() as client:
            assert client.get(path).status_code == 302
            s3.stop()
            started = time.monotonic()
            answer = client.get(path)
            elapsed = time.monotonic() - started
            as_json = client.get(path, headers={"Accept": "application/json"})
    finally:
        s3.stop()
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "30"
    assert "存放文件的服务器暂时没有响应" in answer.text  # #21: not "too many people"
    assert as_json.json()["error"] == "storage_unavailable"
    assert elapsed < 15, f"a dead bucket took {elapsed:.1f} s to refuse"
    assert logs.find("object store: HEAD/presign of", level="ERROR")
    for text in [answer.text, as_json.text, *logs.messages()]:
        assert SECRET_ACCESS_KEY not in text and ACCESS_KEY_ID not in text


def test_a_bucket_refusing_the_key_gives_503_busy_page(
    tmp_path: Path, bucket: Bucket, serve: Serve, logs: LogCapture
) -> None:
    """Issue #13 deliver 4: a bucket answering 403 (key pair revoked) → 503 busy page, no 500."""
    with refusing_bucket() as endpoint:
        server = serve(load_settings(s3_config(tmp_path, bucket, s3={"endpoint_url": endpoint})))
        path = get_link(server)
        with server.client() as client:
            answer = client.get(path)
    assert answer.status_code == 503 and answer.headers["retry-after"] == "30"
    assert "存放文件的服务器暂时没有响应" in answer.text and "location" not in answer.headers
    assert logs.find("failed: answered 403", level="ERROR")


@pytest.mark.slow
def test_a_bucket_that_hangs_gives_503_within_seconds(
    tmp_path: Path, bucket: Bucket, serve: Serve
) -> None:
    """Issue #13 deliver 4: an endpoint that takes the connection and never answers → 503, fast
    (bounded timeouts, one retry), the HEAD off the event loop (the webhook still answers)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # connections land in the backlog; nothing ever reads or answers
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        server = serve(load_settings(s3_config(tmp_path, bucket, s3={"endpoint_url": endpoint})))
        path = get_link(server)
        with server.client() as client, ThreadPoolExecutor(1) as pool:
            started = time.monotonic()
            waiting = pool.submit(client.get, path)
            time.sleep(0.5)
            other = get_link(server, user="o_meanwhile")  # the loop is free while the HEAD hangs
            answer = waiting.result()
            elapsed = time.monotonic() - started
    assert other.startswith("/d/")
    assert answer.status_code == 503 and answer.headers["retry-after"] == "30"
    assert "存放文件的服务器暂时没有响应" in answer.text
    assert elapsed < 20, f"a hung bucket took {elapsed:.1f} s to refuse"


def test_a_presign_failure_after_admission_gives_the_busy_page_and_frees_the_lease(
    s3_bot: Callable[..., RunningServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #13 deliver 4 on #9's Delivery seam: presigning fails after the gate admitted the
    download (no credentials found) → 503 busy page, the refusal recorded once, and the lease
    given back at once (the link's one download is still there)."""
    server = s3_bot(
        server={"metrics": True}, links={"max_downloads": 1, "claim_lease_seconds": 3600}
    )
    path = get_link(server)

    def no_credentials(
        self: S3Delivery, key: str, disposition: str, media_type: str, seconds_left: float
    ) -> str:
        raise ObjectStoreUnavailable("object store unavailable (NoCredentialsError)", 30)

    with monkeypatch.context() as patch, server.client() as client:
        patch.setattr(S3Delivery, "presign", no_credentials)
        busy = client.get(path)
    with server.client() as client:
        redirect = client.get(path)
        metrics = metric_samples(client.get("/metrics").text)
    assert busy.status_code == 503 and busy.headers["retry-after"] == "30"
    assert "存放文件的服务器暂时没有响应" in busy.text and "location" not in busy.headers
    assert redirect.status_code == 302, "the failed redirect kept the link's lease"
    assert metrics[("bot_download_refusals_total", (("outcome", "unavailable"),))] == 1
    assert metrics[("bot_downloads_total", (("status", "302"),))] == 1
    statuses = [labels for name, labels in metrics if name == "bot_downloads_total"]
    assert statuses == [(("status", "302"),)], "the refusal was also recorded as a download"
