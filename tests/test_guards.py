"""The guards one by one: freshness, encryption policy, bad-token limit, redaction, file access."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

from bot.config import Settings, load_settings
from bot.delivery import Offer
from bot.delivery.catalog import Catalog, FileInfo
from bot.delivery.disk import DiskResponse
from bot.delivery.ranges import Span
from bot.delivery.throttle import BadTokenLimit
from bot.errors import (
    EncryptionRequired,
    FileMissing,
    LinkExpired,
    LinkInvalid,
    SignatureError,
    StaleRequest,
    TooManyBadTokens,
)
from bot.links import LinkSigner
from bot.logs.setup import redact
from bot.state import Outcome
from bot.wechat import Codec, Simulator, check_timestamp, signature
from tests.conftest import (
    AES_KEY,
    APP_ID,
    DEMO_NAME,
    SECRET,
    TOKEN,
    Clock,
    LogCapture,
    RunningServer,
    start_server,
    write_config,
)
from tests.helpers.crypto import open_push
from tests.helpers.webhook import link_path, reply_text, send

NOW = 1_800_000_000


@pytest.mark.parametrize(
    ("timestamp", "stale"),
    [
        pytest.param(str(NOW), False, id="now"),
        pytest.param(str(NOW - 300), False, id="oldest-allowed"),
        pytest.param(str(NOW + 300), False, id="furthest-ahead-allowed"),
        pytest.param(str(NOW - 301), True, id="too-old"),
        pytest.param(str(NOW + 301), True, id="too-far-ahead"),
        pytest.param("0", True, id="epoch"),
        pytest.param("", True, id="empty"),
        pytest.param("-5", True, id="negative"),
        pytest.param("1.8e9", True, id="float"),
        pytest.param("١٨٠٠٠٠٠٠٠٠", True, id="arabic-digits"),
        pytest.param("9" * 400, True, id="huge"),
    ],
)
def test_check_timestamp(timestamp: str, stale: bool) -> None:
    if stale:
        with pytest.raises(StaleRequest):
            check_timestamp(timestamp, NOW, 300)
    else:
        check_timestamp(timestamp, NOW, 300)


def test_codec_checks_freshness_after_the_signature() -> None:
    codec = Codec(TOKEN, APP_ID, clock=lambda: NOW, max_clock_skew=60)
    old = str(NOW - 61)
    sig = signature(TOKEN, old, "n")
    with pytest.raises(StaleRequest, match="-61s"):
        codec.verify_echo(signature=sig, timestamp=old, nonce="n", echostr="e")
    with pytest.raises(SignatureError, match="signature does not match"):
        codec.verify_echo(signature="0" * 40, timestamp=old, nonce="n", echostr="e")
    assert Codec(TOKEN, APP_ID).verify_echo(signature=sig, timestamp=old, nonce="n", echostr="e")


@pytest.mark.parametrize(
    ("mode", "refused"),
    [
        pytest.param({"encrypt": False}, True, id="plaintext"),
        pytest.param({"encrypt": True, "compatible": True}, False, id="compatible"),
        pytest.param({"encrypt": True}, False, id="safe"),
    ],
)
def test_codec_can_refuse_plaintext(mode: dict[str, bool], refused: bool) -> None:
    codec = Simulator(TOKEN, APP_ID, AES_KEY, require_encryption=True)
    xml = "<xml><FromUserName>o</FromUserName><MsgType>text</MsgType></xml>"
    params, body = codec.build_request(xml, timestamp="1", nonce="n", **mode)
    if refused:
        with pytest.raises(EncryptionRequired):
            open_push(codec, params, body)
    else:
        assert open_push(codec, params, body)[0].source == "o"


def test_bad_token_limit_slides() -> None:
    clock = Clock()
    limit = BadTokenLimit(3, clock=clock)
    for _ in range(3):
        with pytest.raises(LinkInvalid), limit.guard("1.2.3.4"):
            raise LinkInvalid("bad")
        clock.advance(10)
    with limit.guard("1.2.3.4"):  # Issue #9 seen 13: a valid token is never refused
        pass
    with pytest.raises(TooManyBadTokens) as info, limit.guard("1.2.3.4"):
        raise LinkInvalid("bad")
    assert info.value.retry_after == 30  # the first of the three leaves the window at +60
    with limit.guard("5.6.7.8"):  # another address is not affected
        pass
    clock.advance(30)
    with pytest.raises(LinkExpired), limit.guard("1.2.3.4"):  # genuine, expired: not counted
        raise LinkExpired("id", "f", datetime.fromtimestamp(NOW, UTC))
    assert limit.retry_after("1.2.3.4") == 0


def test_bad_token_limit_off_and_bounded() -> None:
    clock = Clock()
    off = BadTokenLimit(0, clock=clock)
    for _ in range(100):
        off.record("ip")
    assert off.retry_after("ip") == 0
    small = BadTokenLimit(1, clock=clock, max_addresses=3)
    for i in range(10):
        small.record(f"10.0.0.{i}")
        clock.advance(1)
    assert len(small._hits) == 3
    assert small.retry_after("10.0.0.9") > 0 and small.retry_after("10.0.0.0") == 0


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param(
            '1.2.3.4:5 - "POST /wechat?signature=abc&timestamp=1&nonce=n&encrypt_type=aes&msg_signature=def HTTP/1.1" 200',
            '1.2.3.4:5 - "POST /wechat?signature=…&timestamp=1&nonce=n&encrypt_type=aes&msg_signature=… HTTP/1.1" 200',
            id="query",
        ),
        pytest.param(
            '"GET /d/WyJhIiwiYiJd.ZZZ.sig HTTP/1.1" 200',
            '"GET /d/… HTTP/1.1" 200',
            id="token",
        ),
        pytest.param(
            '"GET /d/tok?x=1 HTTP/1.1" 404', '"GET /d/…?x=1 HTTP/1.1" 404', id="token-query"
        ),
        pytest.param("/d/tok/more", "/d/…/more", id="token-suffix"),
        pytest.param("/d//WyJhIiwiYiJd.ZZZ.sig", "/d//…", id="token-after-extra-slash"),
        pytest.param("GET /wechat?SIGNATURE=X", "GET /wechat?SIGNATURE=…", id="upper-case"),
        pytest.param("GET /healthz", "GET /healthz", id="nothing-to-hide"),
    ],
)
def test_redact(line: str, expected: str) -> None:
    assert redact(line) == expected


@pytest.fixture
def catalogue(tmp_path: Path) -> Catalog:
    root = tmp_path / "files"
    (root / "sub").mkdir(parents=True)
    (root / "ok.txt").write_text("ok")
    (root / "sub" / "deep.txt").write_text("deep")
    (tmp_path / "outside.txt").write_text("secret")
    (root / "link-out").symlink_to(tmp_path / "outside.txt")
    (root / "link-in").symlink_to(root / "ok.txt")
    keys = ["ok.txt", "sub/deep.txt", "link-in", "link-out", "../outside.txt", "sub", "gone.txt"]
    return Catalog(root, [*keys, str(tmp_path / "outside.txt"), "sub/../../outside.txt"])


@pytest.mark.parametrize(
    ("key", "served"),
    [
        pytest.param("ok.txt", "ok", id="plain"),
        pytest.param("sub/deep.txt", "deep", id="subfolder"),
        pytest.param("link-in", "ok", id="symlink-inside"),
        pytest.param("link-out", None, id="symlink-leading-out"),
        pytest.param("../outside.txt", None, id="dot-dot"),
        pytest.param("sub/../../outside.txt", None, id="dot-dot-deeper"),
        pytest.param("ABSOLUTE", None, id="absolute"),
        pytest.param("sub", None, id="directory"),
        pytest.param("gone.txt", None, id="missing"),
        pytest.param("not-a-key.txt", None, id="not-in-catalogue"),
    ],
)
def test_catalogue_refuses_anything_leading_out(
    catalogue: Catalog, key: str, served: str | None
) -> None:
    if key == "ABSOLUTE":
        key = str(catalogue.root.parent / "outside.txt")
    if served is None:
        with pytest.raises(FileMissing):
            catalogue.open(key)
    else:
        assert catalogue.open(key).path.read_text() == served


@pytest.mark.parametrize("part", ["ok.txt", "sub"])
def test_a_file_found_inside_once_is_checked_again_once_it_leads_elsewhere(
    catalogue: Catalog, tmp_path: Path, part: str
) -> None:
    """The catalogue remembers the file it found inside (#20: no path walk per download), by
    device and inode: a name that now leads out is walked again, and refused."""
    key = "ok.txt" if part == "ok.txt" else "sub/deep.txt"
    assert catalogue.open(key).path.read_text() in ("ok", "deep")
    assert catalogue.open(key).path == (catalogue.root / key)  # the remembered answer
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "sub").mkdir(parents=True)
    (elsewhere / "ok.txt").write_text("secret")
    (elsewhere / "sub" / "deep.txt").write_text("secret")
    swapped = catalogue.root / part
    if swapped.is_dir():
        (swapped / "deep.txt").unlink()
        swapped.rmdir()
    else:
        swapped.unlink()
    swapped.symlink_to(elsewhere / part)
    with pytest.raises(FileMissing):
        catalogue.open(key)


def test_a_remembered_file_moved_out_and_linked_back_is_refused(
    catalogue: Catalog, tmp_path: Path
) -> None:
    """Device and inode alone would let it through (the same inode, now outside the root);
    the rename moves its ctime: walked again, refused. A freed inode reused by a new file
    outside is the same case."""
    assert catalogue.open("ok.txt").path.read_text() == "ok"
    outside = tmp_path / "moved-out.txt"
    (catalogue.root / "ok.txt").rename(outside)
    (catalogue.root / "ok.txt").symlink_to(outside)
    with pytest.raises(FileMissing):
        catalogue.open("ok.txt")


def test_long_tokens_are_refused_before_decoding() -> None:
    signer = LinkSigner([SECRET], 600, files=[DEMO_NAME])
    token, _ = signer.issue(DEMO_NAME)
    assert len(token) < 200
    with pytest.raises(LinkInvalid, match="token of 513 characters"):
        signer.verify(token + "A" * (513 - len(token)))
    with pytest.raises(LinkInvalid, match="bad signature"):
        signer.verify(token + "A" * (512 - len(token)))


# --- through the real server --------------------------------------------------------------------


def server_with(
    serve: Callable[[Settings], RunningServer], tmp_path: Path, **sections: dict[str, object]
) -> RunningServer:
    return serve(load_settings(write_config(tmp_path, **sections)))


def test_repeated_bad_tokens_get_429(
    serve: Callable[[Settings], RunningServer], tmp_path: Path, files_dir: Path, logs: LogCapture
) -> None:
    server = server_with(
        serve,
        tmp_path,
        limits={"bad_tokens_per_ip_per_minute": 3},
        server={"trusted_proxies": ["127.0.0.1"]},  # the test client stands in for a proxy
    )
    good = link_path(reply_text(send(server, content="芝麻开门")))
    attacker = {"X-Forwarded-For": "203.0.113.9"}
    with server.client() as client:
        refused = [client.get(f"/d/forged{i}", headers=attacker).status_code for i in range(3)]
        blocked = client.get("/d/forged-more", headers=attacker)
        valid = client.get(good, headers=attacker)  # Issue #9 seen 13: never refused
        as_json = client.get("/d/x", headers={**attacker, "Accept": "application/json"})
        bystander = client.get(good, headers={"X-Forwarded-For": "198.51.100.1"})
        server.clock.advance(60)
        later = client.get(good, headers=attacker)
    assert refused == [403, 403, 403]
    assert blocked.status_code == 429 and blocked.headers["retry-after"] == "60"
    assert blocked.headers["cache-control"] == "no-store" and "请求过于频繁" in blocked.text
    assert as_json.status_code == 429 and as_json.json()["error"] == "too_many_requests"
    assert bystander.status_code == 200 and later.status_code == 200 and valid.status_code == 200
    assert logs.find("too many bad tokens ip=203.0.113.9 retry_after=60s", level="WARNING")


def test_require_encryption_refuses_plaintext(
    serve: Callable[[Settings], RunningServer], tmp_path: Path, files_dir: Path, logs: LogCapture
) -> None:
    server = server_with(serve, tmp_path, wechat={"require_encryption": True})
    plain = send(server, content="芝麻开门")
    assert plain.status_code == 403
    assert logs.find("require_encryption", level="WARNING")
    for compatible in (False, True):
        assert "/d/" in reply_text(
            send(server, content="芝麻开门", encrypt=True, compatible=compatible)
        )


def _replace_with_symlink_out(path: Path) -> None:
    outside = path.parent.parent / "outside-secret.txt"
    outside.write_text("SECRET-OUTSIDE")
    path.unlink()
    path.symlink_to(outside)


def _replace_with_directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


@pytest.mark.parametrize(
    ("change", "status"),
    [
        pytest.param(Path.unlink, 404, id="removed"),
        pytest.param(_replace_with_symlink_out, 404, id="symlink-leading-out"),
        pytest.param(_replace_with_directory, 404, id="directory"),
        pytest.param(lambda p: p.write_text("新版本 v2"), 200, id="new-version"),
    ],
)
def test_file_changed_after_the_link_was_issued(
    server: RunningServer,
    files_dir: Path,
    logs: LogCapture,
    change: Callable[[Path], None],
    status: int,
) -> None:
    path = link_path(reply_text(send(server, content="芝麻开门")))
    change(files_dir / DEMO_NAME)
    with server.client() as client:
        response = client.get(path)
    assert response.status_code == status
    assert "SECRET-OUTSIDE" not in response.text and "Traceback" not in response.text
    if status == 200:
        assert response.text == "新版本 v2"
        assert response.headers["content-length"] == str(len("新版本 v2".encode()))
    else:
        assert logs.find("file missing", level="ERROR")


class NoTransfer:
    """A Transfer that keeps nothing (no gate behind this tiny app)."""

    async def progress(self, sent: int, *, final: bool = False, count: bool = True) -> bool:
        return True

    async def finished(self, status: int, sent: int, outcome: Outcome) -> None:
        return None


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(Path.unlink, id="removed"),
        pytest.param(lambda p: p.write_text("a longer, different file"), id="replaced"),
    ],
)
def test_file_changing_between_stat_and_open_is_a_clean_404(
    tmp_path: Path, change: Callable[[Path], None]
) -> None:
    target = tmp_path / "file.txt"
    app = FastAPI()

    @app.api_route("/race", methods=["GET", "HEAD"])
    async def race(request: Request) -> Response:
        target.write_text("original")
        checked = target.stat()  # what the catalogue saw ...
        change(target)  # ... and what happened before the response opened the file
        span = Span(0, checked.st_size, checked.st_size)
        offer = Offer("L1", FileInfo.of("file.txt", target, checked), span, request.method, {})
        return DiskResponse(offer, NoTransfer())

    async def missing(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("gone", 404)

    app.add_exception_handler(FileMissing, missing)
    server, thread, url = start_server(app)
    try:
        response = httpx.get(url + "/race", timeout=10)
        head = httpx.head(url + "/race", timeout=10)
    finally:
        server.should_exit = True
        thread.join(10)
    assert (response.status_code, response.text) == (404, "gone")
    assert head.status_code == 200  # HEAD never opens the file
