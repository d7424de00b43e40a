"""The whole path over real sockets: uvicorn on a free port, driven by httpx."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from bot.wechat import signature
from tests.conftest import BIG_NAME, DEMO_NAME, TOKEN, WECHAT, LogCapture, RunningServer
from tests.helpers.webhook import link_path, reply_text, send

CODEC = WECHAT
MODES = [
    pytest.param({"encrypt": False}, id="plaintext"),
    pytest.param({"encrypt": True, "compatible": True}, id="compatible"),
    pytest.param({"encrypt": True}, id="safe"),
]


def test_echostr_with_valid_signature(server: RunningServer) -> None:
    params = {"timestamp": str(int(server.clock())), "nonce": "abc", "echostr": "hello-123"}
    params["signature"] = signature(TOKEN, params["timestamp"], params["nonce"])
    with server.client() as client:
        good = client.get("/wechat", params=params)
        bad = client.get("/wechat", params={**params, "signature": "0" * 40})
        none = client.get("/wechat")
    assert (good.status_code, good.text) == (200, "hello-123")
    assert good.headers["content-type"].startswith("text/plain")
    assert bad.status_code == 403 and "hello" not in bad.text
    assert none.status_code == 403


@pytest.mark.parametrize("mode", MODES)
def test_keyword_to_link_to_exact_bytes(
    server: RunningServer, files_dir: Path, logs: LogCapture, mode: dict[str, bool]
) -> None:
    response = send(server, content=" 芝麻开门 ", **mode)
    if mode["encrypt"]:
        assert b"<Encrypt>" in response.content
    text = reply_text(response)
    assert "10 分钟" in text and DEMO_NAME in text
    assert text.split("/d/")[0].endswith("http://127.0.0.1:8000")
    with server.client() as client:
        download = client.get(link_path(text))
    assert download.status_code == 200
    assert download.content == (files_dir / DEMO_NAME).read_bytes()
    disposition = download.headers["content-disposition"]
    assert 'filename="ShiYongShuoMing.txt"' in disposition
    assert "filename*=UTF-8''%E4%BD%BF%E7%94%A8%E8%AF%B4%E6%98%8E.txt" in disposition
    for header, value in {
        "cache-control": "private, no-store",
        "accept-ranges": "bytes",
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
        "x-robots-tag": "noindex",
    }.items():
        assert download.headers[header] == value
    assert download.headers["content-length"] == str(len(download.content))
    assert download.headers["etag"] and download.headers["last-modified"]
    issued = logs.find("link issued")
    assert issued and "芝麻开门" in issued[0] and "o_follower_1" in issued[0]
    downloaded = logs.wait_for("download id=")
    assert downloaded and "status=200" in downloaded[0] and "complete=True" in downloaded[0]


@pytest.mark.parametrize("mode", MODES)
def test_subscribe_help_and_silence(server: RunningServer, mode: dict[str, bool]) -> None:
    welcome = send(server, msg_type="event", event="subscribe", msg_id=None, **mode)
    assert "芝麻开门" in reply_text(welcome)
    help_text = reply_text(send(server, content="你好", **mode))
    assert "芝麻开门" in help_text and "/d/" not in help_text
    for msg_type, event in [("image", ""), ("event", "CLICK"), ("shiny_new", "")]:
        silent = send(server, msg_type=msg_type, event=event, **mode)
        assert (silent.status_code, silent.text) == (200, "success")


def test_keyword_is_case_insensitive_for_latin(server: RunningServer) -> None:
    assert "大文件" in reply_text(send(server, content="BIG"))


def test_range_resume_reassembles_file(server: RunningServer, files_dir: Path) -> None:
    path = link_path(reply_text(send(server, content="big")))
    original = (files_dir / BIG_NAME).read_bytes()
    cut = 1_000_003
    with server.client() as client:
        first = client.get(path, headers={"Range": f"bytes=0-{cut - 1}"})
        rest = client.get(path, headers={"Range": f"bytes={cut}-"})
        tail = client.get(path, headers={"Range": "bytes=-10"})
        beyond = client.get(path, headers={"Range": f"bytes={len(original) + 5}-"})
    assert (first.status_code, rest.status_code) == (206, 206)
    assert first.headers["content-range"] == f"bytes 0-{cut - 1}/{len(original)}"
    assert (
        hashlib.sha256(first.content + rest.content).digest() == hashlib.sha256(original).digest()
    )
    assert tail.content == original[-10:]
    assert beyond.status_code == 416


def test_head_has_headers_and_no_body(server: RunningServer, files_dir: Path) -> None:
    path = link_path(reply_text(send(server, content="big")))
    with server.client() as client:
        head = client.head(path)
        get = client.get(path)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str((files_dir / BIG_NAME).stat().st_size)
    for name in ("content-disposition", "etag", "last-modified", "accept-ranges", "cache-control"):
        assert head.headers[name] == get.headers[name]


def test_expired_link_gets_410_page_and_warning(server: RunningServer, logs: LogCapture) -> None:
    path = link_path(reply_text(send(server, content="芝麻开门")))
    server.clock.advance(601)
    with server.client() as client:
        page = client.get(path)
        as_json = client.get(path, headers={"Accept": "application/json"})
    assert page.status_code == 410
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    assert "已过期" in page.text and "expired" in page.text and "芝麻开门" in page.text
    assert as_json.status_code == 410 and as_json.json()["error"] == "link_expired"
    warning = logs.find("expired link", level="WARNING")
    assert warning and "1s ago" in warning[0]


def test_forged_and_garbage_tokens_get_403(server: RunningServer, logs: LogCapture) -> None:
    path = link_path(reply_text(send(server, content="芝麻开门")))
    forged = path[:-6] + ("A" if path[-6] != "A" else "B") + path[-5:]
    with server.client() as client:
        responses = [client.get(forged), client.get("/d/not-a-token"), client.head("/d/x.y.z")]
        as_json = client.get(forged, headers={"Accept": "application/json"})
    assert [r.status_code for r in responses] == [403, 403, 403]
    assert "链接无效" in responses[0].text
    assert responses[0].headers["cache-control"] == "no-store"
    assert as_json.json()["error"] == "link_invalid"
    assert len(logs.find("bad token", level="WARNING")) == 4


def test_missing_file_gets_404(server: RunningServer, files_dir: Path) -> None:
    path = link_path(reply_text(send(server, content="芝麻开门")))
    (files_dir / DEMO_NAME).unlink()
    with server.client() as client:
        page = client.get(path)
        as_json = client.get(path, headers={"Accept": "application/json"})
    assert page.status_code == 404 and "文件" in page.text
    assert as_json.json()["error"] == "file_missing"


@pytest.mark.parametrize(
    ("params", "body", "status"),
    [
        pytest.param({"signature": "0" * 40}, b"<xml/>", 403, id="forged-signature"),
        pytest.param({}, b"not xml at all", 400, id="not-xml"),
        pytest.param({}, b"<xml><FromUserName>a</FromUserName></xml>", 400, id="no-msgtype"),
        pytest.param(
            {"encrypt_type": "aes"},
            b"<xml><Encrypt>@@@</Encrypt></xml>",
            403,
            id="aes-no-msg-signature",
        ),
    ],
)
def test_bad_webhook_requests(
    server: RunningServer, logs: LogCapture, params: dict[str, str], body: bytes, status: int
) -> None:
    now = str(int(server.clock()))
    query = {"timestamp": now, "nonce": "n", "signature": signature(TOKEN, now, "n")}
    query.update(params)
    with server.client() as client:
        response = client.post("/wechat", params=query, content=body)
    assert response.status_code == status
    assert "Traceback" not in response.text
    assert logs.find("webhook rejected", level="WARNING")


def test_broken_ciphertext_is_400(server: RunningServer) -> None:
    encrypt, now = "AAAA" * 8, str(int(server.clock()))
    query = {"timestamp": now, "nonce": "n", "encrypt_type": "aes"}
    query["signature"] = signature(TOKEN, now, "n")
    query["msg_signature"] = signature(TOKEN, now, "n", encrypt)
    body = f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>".encode()
    with server.client() as client:
        response = client.post("/wechat", params=query, content=body)
    assert response.status_code == 400


def test_healthz(server: RunningServer) -> None:
    with server.client() as client:
        response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
