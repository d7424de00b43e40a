"""docker/nginx.conf in front of a real bot in x-accel mode: nginx sends the bytes, the bot decides."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from bot.config import Settings, load_settings
from bot.state import Attempt, Usage
from bot.web.downloads import content_disposition
from tests.conftest import BIG_NAME, DEMO_NAME, RunningServer, free_port, write_config
from tests.helpers.breaks import EIGHT, THEN, broken_get, then_the_rest
from tests.helpers.nginx import Nginx, local_conf
from tests.helpers.stores import link_id, with_store
from tests.helpers.waiting import wait_for
from tests.helpers.webhook import link_path, reply_text, send

pytestmark = pytest.mark.slow

Proxy = Callable[..., httpx.Client]
SNDBUF = 512 * 1024  # docker/nginx.conf: listen 80 sndbuf=512k


@pytest.fixture
def x_accel(
    tmp_path: Path, files_dir: Path, serve: Callable[[Settings], RunningServer]
) -> Iterator[Callable[..., tuple[RunningServer, httpx.Client]]]:
    """Start the bot (x-accel mode, given [limits]) and docker/nginx.conf in front of it."""
    stack = ExitStack()

    def _start(
        max_downloads: int = 0,
        nginx_files: Path | None = None,
        extra_http: str = "",
        changes: dict[str, str] | None = None,
        **limits: int,
    ) -> tuple[RunningServer, httpx.Client]:
        links = {"max_downloads": max_downloads}
        config = write_config(tmp_path, files={"delivery": "x-accel"}, limits=limits, links=links)
        bot = serve(load_settings(config))
        port = free_port()
        conf = local_conf(
            prefix=tmp_path / "nginx",
            port=port,
            upstream=bot.url.removeprefix("http://"),
            files_dir=nginx_files or files_dir,
            extra_http=extra_http,
            changes=changes,
        )
        nginx = Nginx(tmp_path / "nginx", conf, [port]).start()
        stack.callback(nginx.stop)
        client = stack.enter_context(httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10))
        return bot, client

    with stack:
        yield _start


def test_download_through_nginx_is_exact_with_chinese_name(
    x_accel: Callable[..., tuple[RunningServer, httpx.Client]], files_dir: Path
) -> None:
    bot, client = x_accel()
    path = link_path(reply_text(send(bot, content="big")))
    response = client.get(path)
    head = client.head(path)
    assert response.status_code == 200
    assert response.content == (files_dir / BIG_NAME).read_bytes()
    assert response.headers["content-disposition"] == content_disposition(BIG_NAME)
    for name, value in {
        "cache-control": "private, no-store",
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
        "x-robots-tag": "noindex",
        "accept-ranges": "bytes",
    }.items():
        assert response.headers.get(name) == value, name
    assert "x-accel-redirect" not in response.headers
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(response.content))
    assert head.headers["content-disposition"] == content_disposition(BIG_NAME)


def test_range_through_nginx(
    x_accel: Callable[..., tuple[RunningServer, httpx.Client]], files_dir: Path
) -> None:
    bot, client = x_accel()
    path = link_path(reply_text(send(bot, content="big")))
    original = (files_dir / BIG_NAME).read_bytes()
    first = client.get(path, headers={"Range": "bytes=0-999"})
    rest = client.get(path, headers={"Range": "bytes=1000-"})
    beyond = client.get(path, headers={"Range": f"bytes={len(original) + 5}-"})
    assert (first.status_code, rest.status_code, beyond.status_code) == (206, 206, 416)
    assert first.headers["content-range"] == f"bytes 0-999/{len(original)}"
    assert first.content + rest.content == original
    assert first.headers["content-disposition"] == content_disposition(BIG_NAME)


def test_expired_and_forged_links_get_the_bots_pages(
    x_accel: Callable[..., tuple[RunningServer, httpx.Client]],
) -> None:
    bot, client = x_accel()
    path = link_path(reply_text(send(bot, content="芝麻开门")))
    forged = client.get(path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB"))
    bot.clock.advance(601)
    expired = client.get(path)
    assert expired.status_code == 410 and "已过期" in expired.text
    assert expired.headers["cache-control"] == "no-store"
    assert forged.status_code == 403 and "链接无效" in forged.text


def test_files_are_not_reachable_without_a_link(
    x_accel: Callable[..., tuple[RunningServer, httpx.Client]],
) -> None:
    _, client = x_accel()
    for url in (f"/_protected/{DEMO_NAME}", "/_protected/", "/files/"):
        assert client.get(url).status_code == 404, url


def test_rate_cap_reaches_nginx(
    x_accel: Callable[..., tuple[RunningServer, httpx.Client]],
) -> None:
    bot, client = x_accel(rate_bytes_per_second=100_000)
    path = link_path(reply_text(send(bot, content="big")))
    started = time.monotonic()
    response = client.get(path, headers={"Range": "bytes=0-299999"})
    assert response.status_code == 206 and len(response.content) == 300_000
    # nginx's limit_rate lets the first second's worth go at once, so 300 kB at 100 kB/s takes
    # about 2 s: a lower bound, never an upper.
    assert time.monotonic() - started >= 1.5


def test_nginx_refuses_a_fifth_parallel_download_of_one_link(
    x_accel: Callable[..., tuple[RunningServer, httpx.Client]],
) -> None:
    bot, client = x_accel(rate_bytes_per_second=100_000)  # slow enough to stay open
    path = link_path(reply_text(send(bot, content="big")))
    with ExitStack() as running:
        for _ in range(4):
            response = running.enter_context(client.stream("GET", path))
            assert response.status_code == 200
        refused = client.get(path)
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "30"
    assert client.get(path, headers={"Range": "bytes=0-9"}).status_code == 206


def ended(bot: RunningServer, path: str) -> Usage:
    """The link's counts once nginx has reported every transfer (its post_action follows the
    last byte to the client by a moment)."""
    lid = link_id(path, bot.clock)

    def usage() -> Usage | None:
        now = with_store(bot.settings, lambda s: s.usage(lid), bot.clock)
        return None if now.active else now

    return wait_for(usage, timeout=15)


def attempts(bot: RunningServer, path: str) -> list[Attempt]:
    lid = link_id(path, bot.clock)
    return with_store(bot.settings, lambda s: s.attempts_since(0, lid), bot.clock)


def test_use_limited_link_counts_once_nginx_reports_the_whole_file(
    x_accel: Callable[..., tuple[RunningServer, httpx.Client]], files_dir: Path
) -> None:
    bot, client = x_accel(max_downloads=1)
    path = link_path(reply_text(send(bot, content="芝麻开门")))
    first = client.get(path)
    assert ended(bot, path).completed == 1
    second = client.get(path, headers={"Accept": "application/json"})
    assert first.content == (files_dir / DEMO_NAME).read_bytes()
    assert second.status_code == 410 and second.json()["error"] == "link_exhausted"


def test_per_link_limit_keys_on_the_link_not_the_url(
    x_accel: Callable[..., tuple[RunningServer, httpx.Client]],
) -> None:
    """Issue #9 seen 8 (x-accel half): 9 spellings of one link never make 9 parallel downloads."""
    bot, client = x_accel(rate_bytes_per_second=100_000)  # slow enough to stay open
    path = link_path(reply_text(send(bot, content="big")))
    head, last = path[:-1], path[-1]
    spellings = [path, path + "%C3%A9", path + "%C3%A9%C3%A9", path + "=", path + "=="]
    spellings += [head + c for c in "pqrstu" if c != last][:4]
    statuses = []
    with ExitStack() as running:
        for url in spellings:
            statuses.append(running.enter_context(client.stream("GET", url)).status_code)
    assert statuses.count(200) <= 4, statuses  # [limits] max_concurrent_per_link
    assert client.get(path, headers={"Range": "bytes=0-9"}).status_code == 206


def test_x_accel_range_counts_the_span_handed_over(
    x_accel: Callable[..., tuple[RunningServer, httpx.Client]], files_dir: Path
) -> None:
    """Issue #9 seen 16: bytes=1-9 and a bytes=0-0 probe never spend a fresh one-use link."""
    bot, client = x_accel(max_downloads=1)
    path = link_path(reply_text(send(bot, content="big")))
    original = (files_dir / BIG_NAME).read_bytes()
    piece = client.get(path, headers={"Range": "bytes=1-9"})
    probe = client.get(path, headers={"Range": "bytes=0-0"})
    whole = client.get(path)
    ended(bot, path)
    after = client.get(path, headers={"Range": "bytes=1-"})
    assert piece.status_code == 206 and piece.content == original[1:10]
    assert probe.status_code == 206 and probe.content == original[:1]
    assert whole.status_code == 200 and whole.content == original
    assert after.status_code == 410
    assert "x-link-id" not in whole.headers


def test_if_range_with_nginxs_etag_counts_the_range_not_the_file(
    x_accel: Callable[..., tuple[RunningServer, httpx.Client]], files_dir: Path
) -> None:
    """Issue #19 seen 4: ``bytes=0-9`` + ``If-Range: <nginx's ETag>`` is 10 bytes, not a copy."""
    bot, client = x_accel(max_downloads=1)
    path = link_path(reply_text(send(bot, content="big")))
    original = (files_dir / BIG_NAME).read_bytes()
    tag = client.head(path).headers["etag"]  # the ETag clients see: nginx's
    piece = client.get(path, headers={"Range": "bytes=0-9", "If-Range": tag})
    whole = client.get(path)
    assert ended(bot, path).completed == 1
    after = client.get(path)
    assert piece.status_code == 206 and piece.content == original[:10]
    assert whole.status_code == 200 and whole.content == original
    assert after.status_code == 410


def test_nginx_refusing_never_spends_the_link_and_shows_the_bots_page(
    x_accel: Callable[..., tuple[RunningServer, httpx.Client]], files_dir: Path
) -> None:
    """Issue #19 seen 4: limit_conn's 503 after the bot's answer: the bot's page, link unspent."""
    bot, client = x_accel(max_downloads=1, rate_bytes_per_second=100_000)  # slow: stays open
    path = link_path(reply_text(send(bot, content="big")))
    original = (files_dir / BIG_NAME).read_bytes()
    piece = 400_000
    with ExitStack() as running:
        for i in range(4):  # [limits] max_concurrent_per_link: nginx's per-link limit_conn
            span = f"bytes={i * piece}-{(i + 1) * piece - 1}"
            response = running.enter_context(client.stream("GET", path, headers={"Range": span}))
            assert response.status_code == 206
        refused = client.get(path)
    assert refused.status_code == 503
    assert "content-disposition" not in refused.headers
    assert refused.headers["content-type"].startswith("text/html")
    assert refused.headers["retry-after"] == "30"
    assert "下载人数较多" in refused.text
    # The refused GET was never counted: once a whole copy counts, every range is 410.
    probe = client.get(path, headers={"Range": "bytes=0-0"})
    assert probe.status_code == 206 and probe.content == original[:1]


def test_file_nginx_cannot_find_never_spends_the_link(
    x_accel: Callable[..., tuple[RunningServer, httpx.Client]], tmp_path: Path
) -> None:
    """Issue #19 deliver 4: nginx's 404 (its files folder lacks the file) returns the claim."""
    empty = tmp_path / "empty"
    empty.mkdir()
    bot, client = x_accel(max_downloads=1, nginx_files=empty)
    path = link_path(reply_text(send(bot, content="big")))
    missing = client.get(path)
    again = client.get(path)  # claimed again: the first claim was returned, not spent
    assert again.status_code == 404  # not 410: the link was not spent
    assert missing.status_code == 404 and "文件暂时不可用" in missing.text
    assert "content-disposition" not in missing.headers


# --- #19 done-when: a one-use x-accel download broken halfway stays restartable -------------


@pytest.mark.parametrize("then", THEN)
def test_seen3_x_accel_halfway_break_restarts_and_resumes(
    x_accel: Callable[..., tuple[RunningServer, httpx.Client]], files_dir: Path, then: str
) -> None:
    """Issue #19 done-when: 8 MiB, one use, through nginx: read 4 MiB, drop (default buffers),
    then restart from byte 0 or resume with Range. nginx's handing over used to count it whole."""
    data = os.urandom(EIGHT)
    (files_dir / BIG_NAME).write_bytes(data)
    bot, client = x_accel(max_downloads=1)
    path = link_path(reply_text(send(bot, content="big")))
    url = str(client.base_url).rstrip("/") + path
    kept, rcvbuf, sock = broken_get(url, EIGHT // 2)
    sock.close()  # unread bytes: a reset; nginx's post_action reports what it wrote
    usage = ended(bot, path)
    # Counted: what the client read, what its kernel held unread, and at most nginx's fixed
    # send buffer (docker/nginx.conf's sndbuf, doubled by the kernel); never the whole file.
    read = len(kept)
    assert usage.completed == 0 and read <= usage.sent <= read + rcvbuf + 2 * SNDBUF, (
        read,
        usage,
        rcvbuf,
    )
    then_the_rest(url, kept, data, then)
    (row, *_) = [a for a in attempts(bot, path) if a.outcome == "aborted"]
    assert (row.complete, row.counted, row.bytes_sent) == (False, False, usage.sent)


def test_x_accel_break_before_any_byte_counts_nothing(
    x_accel: Callable[..., tuple[RunningServer, httpx.Client]], files_dir: Path
) -> None:
    """A follower who taps and leaves at once: nginx reports 0 bytes, the link is whole."""
    bot, client = x_accel(max_downloads=1, rate_bytes_per_second=100_000)  # still sending
    path = link_path(reply_text(send(bot, content="big")))
    with client.stream("GET", path) as response:
        assert response.status_code == 200
    usage = ended(bot, path)
    assert (usage.completed, usage.active) == (0, 0) and usage.sent < (
        files_dir / BIG_NAME
    ).stat().st_size
    assert client.get(path, headers={"Range": "bytes=0-0"}).status_code == 206


@pytest.mark.parametrize("max_downloads", [0, 1])
def test_x_accel_download_asks_the_bot_only_what_it_must(
    x_accel: Callable[..., tuple[RunningServer, httpx.Client]],
    files_dir: Path,
    tmp_path: Path,
    max_downloads: int,
) -> None:
    """#20: every request nginx makes to the bot for one download, subrequests included: the
    link's answer, and for a one-use link the report of what was sent (post_action). The
    auth_request before each transfer (/_accel/accepted) was a third of x-accel's cost."""
    log = tmp_path / "to-bot.log"
    bot, client = x_accel(
        max_downloads=max_downloads,
        extra_http="    log_format upstream '$uri $upstream_addr';\n",
        changes={
            "proxy_buffering off;": (
                f"proxy_buffering off;\n        log_subrequest on;\n"
                f"        access_log {log} upstream;"
            )
        },
    )
    path = link_path(reply_text(send(bot, content="芝麻开门")))
    assert client.get(path).content == (files_dir / DEMO_NAME).read_bytes()
    if max_downloads:
        assert ended(bot, path).completed == 1
    upstream = bot.url.removeprefix("http://")

    def contacts() -> list[str] | None:
        # A line per request and subrequest; a post_action's request logs once, at its end,
        # with every upstream contact in $upstream_addr ("bot : bot").
        lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
        done = any(not line.startswith("/_accel/accepted ") for line in lines)
        return [a for line in lines for a in line.split()[1:] if a == upstream] if done else None

    assert len(wait_for(contacts, timeout=15)) == 1 + max_downloads


def test_x_accel_forged_finish_is_refused(
    x_accel: Callable[..., tuple[RunningServer, httpx.Client]],
) -> None:
    """Only a lease the bot signed can end one: a client that reaches the bot itself and
    claims nginx sent nothing gets 403 (and /_accel/ is internal in nginx)."""
    bot, client = x_accel(max_downloads=1)
    forged = {"X-Accel-Lease": "L.l.100.200.f.0000", "X-Accel-Sent": "0"}
    assert httpx.get(bot.url + "/_accel/finished", headers=forged).status_code == 403
    assert client.get("/_accel/finished", headers=forged).status_code == 404
