"""Hostile requests against the real server: a 4xx with a logged reason, never a 5xx."""

from __future__ import annotations

import base64
import socket
from collections.abc import Callable, Iterator
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.links import file_ref
from tests.conftest import AES_KEY, DEMO_NAME, SECRET, TOKEN
from tests.helpers.crypto import pad, payload, raw_cipher
from tests.helpers.hostile import CODEC, Hostile, Reply, forge, serve_hostile

Send = Callable[[Hostile], Reply]
XXE = (
    '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    "<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><CreateTime>1</CreateTime>"
    "<MsgType>text</MsgType><Content>&xxe;</Content></xml>"
)
LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i > 1 else "&lol;" * 10}">'
        for i in range(1, 10)
    )
    + "]><xml><FromUserName>o</FromUserName><MsgType>text</MsgType><Content>&lol9;</Content></xml>"
)


def post(body: bytes | Callable[[Hostile], bytes], **query: str) -> Send:
    """A signed plaintext callback carrying ``body``; ``query`` overrides parameters."""

    def send(h: Hostile) -> Reply:
        content = body(h) if callable(body) else body
        return h.request("POST", "/wechat", params={**h.query(), **query}, content=content)

    return send


def post_at(offset: int) -> Send:
    """A valid message signed correctly, but ``offset`` seconds away from the server's clock."""

    def send(h: Hostile) -> Reply:
        query = h.query(timestamp=str(int(h.clock()) + offset))
        return h.request("POST", "/wechat", params=query, content=h.message_xml().encode())

    return send


def echo(*, offset: int = 0, forged: bool = False) -> Send:
    """The server-URL check (GET with echostr), replayed from ``offset`` seconds ago or forged."""

    def send(h: Hostile) -> Reply:
        query = {**h.query(timestamp=str(int(h.clock()) - offset)), "echostr": "ECHO-me-123"}
        if forged:
            query["signature"] = query["signature"][::-1]
        reply = h.request("GET", "/wechat", params=query)
        assert "ECHO-me" not in reply.text
        return reply

    return send


def aes(ciphertext: str, **query: str) -> Send:
    """A safe-mode callback around ``ciphertext`` with a msg_signature that covers it."""

    def send(h: Hostile) -> Reply:
        body = f"<xml><ToUserName>gh</ToUserName><Encrypt>{ciphertext}</Encrypt></xml>".encode()
        return h.request(
            "POST", "/wechat", params={**h.aes_query(ciphertext), **query}, content=body
        )

    return send


def aes_message(
    change: Callable[[Hostile, dict[str, str], bytes], tuple[dict[str, str], bytes]],
) -> Send:
    """A genuine safe-mode message, then ``change`` applied to its query and body."""

    def send(h: Hostile) -> Reply:
        params, body = CODEC.build_request(
            h.message_xml(), timestamp=h.now(), nonce="n", encrypt=True
        )
        params, body = change(h, params, body)
        return h.request("POST", "/wechat", params=params, content=body)

    return send


def raw(head: str, body: bytes = b"", *, hang_up: bool = False) -> Send:
    """Bytes straight onto the socket: request line and headers as given, then ``body``."""

    def send(h: Hostile) -> Reply:
        request = f"POST /wechat?{urlencode(h.query())} HTTP/1.1\r\nHost: bot\r\n{head}\r\n\r\n"
        return h.raw(request.encode() + body, hang_up=hang_up)

    return send


def get(path: str | Callable[[Hostile], str]) -> Send:
    """A GET of a download path (built from the server when it needs the clock)."""

    def send(h: Hostile) -> Reply:
        return h.request("GET", path(h) if callable(path) else path)

    return send


def forged(payload: object, **kwargs: str) -> Send:
    """A GET of a token forged around ``payload`` (with the right key unless told otherwise)."""
    return get(lambda h: "/d/" + forge(payload, h.clock(), **kwargs))


def _gbk(h: Hostile) -> bytes:
    return h.message_xml("芝麻开门").encode("gbk")


SAFE_XML = "<xml><FromUserName>o</FromUserName><MsgType>text</MsgType><Content>x</Content></xml>"
WEBHOOK = [
    pytest.param(
        post(b"<xml/>", signature="0" * 40), 403, "signature does not match", id="forged-signature"
    ),
    pytest.param(
        post(b"<xml/>", signature="签名"), 403, "signature does not match", id="non-ascii-signature"
    ),
    pytest.param(
        lambda h: h.request("POST", "/wechat", content=b"<xml/>"),
        403,
        "signature does not match",
        id="unsigned",
    ),
    pytest.param(post_at(-301), 403, "stale timestamp: -301s", id="stale-timestamp"),
    pytest.param(post_at(+3600), 403, "stale timestamp: +3600s", id="future-timestamp"),
    pytest.param(
        post(b"<xml/>", **{"timestamp": "1e9"}),
        403,
        "signature does not match",
        id="timestamp-changed",
    ),
    pytest.param(
        lambda h: h.request("POST", "/wechat", params=h.query(timestamp="1e9"), content=b"<xml/>"),
        403,
        "is not a Unix time",
        id="timestamp-not-a-number",
    ),
    pytest.param(echo(forged=True), 403, "signature does not match", id="echostr-bad-signature"),
    pytest.param(echo(offset=86400), 403, "stale timestamp", id="echostr-replayed-a-day-later"),
    pytest.param(
        aes_message(lambda h, q, b: ({**q, "msg_signature": "0" * 40}, b)),
        403,
        "msg_signature does not match",
        id="wrong-msg-signature",
    ),
    pytest.param(
        aes_message(lambda h, q, b: ({**q, "msg_signature": q["signature"]}, b)),
        403,
        "msg_signature does not match",
        id="signature-as-msg-signature",
    ),
    pytest.param(
        aes_message(lambda h, q, b: ({k: v for k, v in q.items() if k != "msg_signature"}, b)),
        403,
        "msg_signature does not match",
        id="no-msg-signature",
    ),
    pytest.param(
        aes_message(lambda h, q, b: (q, b.replace(b"<Encrypt>", b"<Encrypt>AAAA"))),
        403,
        "msg_signature does not match",
        id="ciphertext-changed",
    ),
    pytest.param(post(XXE.encode()), 400, "DTDForbidden", id="xxe"),
    pytest.param(post(LAUGHS.encode()), 400, "DTDForbidden", id="billion-laughs"),
    pytest.param(
        post(b'<!DOCTYPE xml SYSTEM "http://127.0.0.1:9/x.dtd"><xml/>'),
        400,
        "DTDForbidden",
        id="external-dtd",
    ),
    pytest.param(
        aes(raw_cipher(pad(payload(XXE.encode())))), 400, "DTDForbidden", id="xxe-inside-ciphertext"
    ),
    pytest.param(
        post(b"<xml>" + b"x" * 10_000_000), 413, "declared 10000005 bytes", id="10mb-body"
    ),
    pytest.param(
        post(lambda h: iter([b"<xml>"] + [b"x" * 4096] * 40)),
        413,
        "at least",
        id="chunked-over-limit",
    ),
    pytest.param(
        raw("Content-Length: 5\r\nTransfer-Encoding: chunked", b"0\r\n\r\n"),
        400,
        "Invalid HTTP request",
        id="length-and-chunked",
    ),
    pytest.param(raw("Content-Length: -5"), 400, "Invalid HTTP request", id="negative-length"),
    pytest.param(
        raw("Content-Length: 10", b"<xml><MsgType>text</MsgType></xml>"),
        400,
        "Invalid HTTP request",
        id="lying-length-under-body",
    ),
    pytest.param(
        raw("Content-Length: 70000", b"<xml>"), 413, "declared 70000", id="lying-length-over-limit"
    ),
    pytest.param(
        raw("Content-Length: 500", b"<xml>", hang_up=True),
        None,
        "client disconnected after",
        id="lying-length-then-eof",
    ),
    pytest.param(post(bytes(range(256)) * 4), 400, "not UTF-8", id="garbage-bytes"),
    pytest.param(post(_gbk), 400, "not UTF-8", id="gbk-xml"),
    pytest.param(post(b""), 400, "not acceptable XML", id="empty-body"),
    pytest.param(
        post(lambda h: h.message_xml().encode()[:-9]), 400, "not acceptable XML", id="truncated-xml"
    ),
    pytest.param(
        post(b"<xml><FromUserName>o</FromUserName></xml>"), 400, "no MsgType", id="no-msgtype"
    ),
    pytest.param(
        post(b"<xml><MsgType>text</MsgType></xml>"), 400, "no FromUserName", id="no-fromusername"
    ),
    pytest.param(
        post(b"<html><MsgType>text</MsgType></html>"),
        400,
        "root element is <html>",
        id="wrong-root",
    ),
    pytest.param(
        post(b"<xml/>", encrypt_type="rsa"), 400, "unknown encrypt_type", id="unknown-encrypt-type"
    ),
    pytest.param(aes("@@not base64@@"), 400, "(-40010)", id="aes-bad-base64"),
    pytest.param(
        aes(base64.b64encode(b"x" * 33).decode()), 400, "(-40007)", id="aes-wrong-block-size"
    ),
    pytest.param(aes(raw_cipher(b"a" * 30 + b"\x01\x02")), 400, "(-40007)", id="aes-bad-pkcs7"),
    pytest.param(aes(raw_cipher(b"a" * 63 + b"\x21")), 400, "(-40007)", id="aes-padding-over-32"),
    pytest.param(
        aes(raw_cipher(pad(payload(SAFE_XML.encode(), length=1_000_000)))),
        400,
        "(-40008)",
        id="aes-length-past-buffer",
    ),
    pytest.param(aes(raw_cipher(pad(b"short"))), 400, "(-40008)", id="aes-buffer-too-short"),
    pytest.param(
        aes(raw_cipher(pad(payload(SAFE_XML.encode(), b"wxsomeoneelse")))),
        400,
        "(-40005)",
        id="aes-wrong-appid",
    ),
    pytest.param(
        post(b"<xml><FromUserName>o</FromUserName></xml>", encrypt_type="aes", msg_signature="x"),
        400,
        "no <Encrypt>",
        id="aes-no-encrypt-element",
    ),
    pytest.param(
        lambda h: h.request("HEAD", "/wechat"), 405, "http 405 HEAD /wechat", id="head-webhook"
    ),
    pytest.param(
        post(lambda h: h.message_xml("无关" * 10_000).encode()),
        200,
        "",
        id="huge-content-gets-help",
    ),
]
DOWNLOAD = [
    pytest.param(get("/d/"), 404, "http 404 GET /d/", id="token-empty"),
    pytest.param(get("/d/" + "A" * 10_240), 403, "token of 10240 characters", id="token-10kb"),
    pytest.param(get("/d/" + "A" * 513), 403, "token of 513 characters", id="token-513"),
    pytest.param(get("/d/not-base64!$*'()"), 403, "bad signature", id="token-not-base64"),
    pytest.param(get("/d/%00%ff"), 403, "percent-escaped token", id="token-nul"),
    pytest.param(get("/d/链接"), 403, "percent-escaped token", id="token-non-ascii"),
    pytest.param(
        get("/d/..%2F..%2Fconfig.toml"), 404, "http 404 GET /d/", id="token-encoded-traversal"
    ),
    pytest.param(
        forged(["L1", file_ref(DEMO_NAME)], salt="another.purpose"),
        403,
        "bad signature",
        id="token-wrong-salt",
    ),
    pytest.param(
        forged(["L1", file_ref(DEMO_NAME)], key="another-secret-key-0123456789"),
        403,
        "bad signature",
        id="token-other-key",
    ),
    pytest.param(
        forged(["L1", "../config.toml"]),
        404,
        "file missing file='../config.toml'",
        id="payload-traversal",
    ),
    pytest.param(
        forged(["L1", "/etc/passwd"]), 404, "file missing file='/etc/passwd'", id="payload-absolute"
    ),
    pytest.param(forged(["L1", DEMO_NAME]), 404, "file missing", id="payload-plain-name"),
    pytest.param(forged({"file": DEMO_NAME}), 403, "payload is not", id="payload-not-a-list"),
    pytest.param(
        forged(["L1", file_ref(DEMO_NAME), "x"]), 403, "payload is not", id="payload-three-items"
    ),
    pytest.param(forged(["L1", 7]), 403, "payload is not", id="payload-number"),
    pytest.param(
        lambda h: h.request("GET", "/d/" + forge(["L1", file_ref(DEMO_NAME)], h.clock() - 601)),
        410,
        "expired link id=L1",
        id="token-expired",
    ),
    pytest.param(
        lambda h: h.request("GET", h.valid_link() + "/more"),
        404,
        "http 404 GET /d/…/more",
        id="token-with-suffix",
    ),
    pytest.param(
        lambda h: h.raw(
            b"GET /d/../config.toml HTTP/1.1\r\nHost: bot\r\nConnection: close\r\n\r\n"
        ),
        404,
        "http 404",
        id="raw-dot-segments",
    ),
]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    """One real server for the whole module (body_timeout 1 s, no bad-token limit)."""
    yield from serve_hostile(tmp_path_factory.mktemp("hostile"))


@pytest.mark.parametrize(("send", "status", "reason"), WEBHOOK + DOWNLOAD)
def test_hostile_request(
    hostile: Hostile,
    send: Send,
    status: int | None,
    reason: str,
) -> None:
    mark = len(hostile.lines)
    reply = send(hostile)
    print(f"answered {reply.status} in {reply.seconds * 1000:.1f} ms")  # measured, never asserted
    assert reply.status == status, reply.text[:300]
    assert "Traceback" not in reply.text and SECRET not in reply.text
    if reason:
        assert hostile.logged_since(mark, reason, wait=2), hostile.lines[mark:]
    assert not hostile.logged_since(mark, "Traceback")
    hostile.assert_still_serves()


def test_slow_sender_does_not_hold_the_server(hostile: Hostile) -> None:
    mark = len(hostile.lines)
    path = "/wechat?" + urlencode(hostile.query())
    with socket.create_connection(hostile.address, timeout=5) as slow:
        slow.sendall(
            f"POST {path} HTTP/1.1\r\nHost: bot\r\nContent-Length: 900\r\n\r\n<xml>".encode()
        )
        hostile.assert_still_serves()  # answered while the slow body is still pending
        answer = slow.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 408") and "connection: close" in answer.lower()
    assert hostile.logged_since(mark, "body refused 408")


# --- property tests: random damage never gets a 5xx --------------------------------------------

FRAGMENTS = [
    b"<!DOCTYPE x [<!ENTITY a 'b'>]>",
    b"&a;",
    b"]]>",
    b"<![CDATA[",
    b"\0",
    b"\xff\xfe",
    b"</xml>",
    b"<xml>",
    b"<MsgType>event</MsgType>",
    b"<Encrypt>",
    b"&#0;",
    b"<?xml version='1.0' encoding='utf-16'?>",
]
EDIT = st.tuples(
    st.sampled_from(["flip", "insert", "delete", "cut"]),
    st.integers(min_value=0, max_value=10_000),
    st.one_of(st.binary(min_size=1, max_size=8), st.sampled_from(FRAGMENTS)),
)
EDITS = st.lists(EDIT, min_size=1, max_size=4)
# Only module-scoped fixtures feed these tests; the function-scoped one is conftest's autouse
# BOT_* environment cleaner, which is harmless to share between examples.
PROPERTY = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def mutate(data: bytes, edits: list[tuple[str, int, bytes]]) -> bytes:
    """``data`` after a few flips, insertions, deletions and cuts at the given positions."""
    out = bytearray(data)
    for kind, position, chunk in edits:
        at = position % (len(out) + 1)
        if kind == "flip" and out:
            out[at % len(out)] ^= chunk[0] or 1
        elif kind == "insert":
            out[at:at] = chunk
        elif kind == "delete":
            del out[at : at + len(chunk)]
        elif kind == "cut":
            del out[at:]
    return bytes(out)


def assert_no_5xx(reply: Reply, hostile: Hostile) -> None:
    """No 5xx, no traceback, and the next genuine message still gets a working link."""
    assert reply.status is not None and reply.status < 500, reply.text[:300]
    assert "Traceback" not in reply.text
    hostile.assert_still_serves()


@pytest.mark.slow
@PROPERTY
@given(edits=EDITS)
def test_damaged_plaintext_bodies(hostile: Hostile, edits: list[tuple[str, int, bytes]]) -> None:
    body = mutate(hostile.message_xml().encode(), edits)
    reply = hostile.request("POST", "/wechat", params=hostile.query(), content=body)
    assert_no_5xx(reply, hostile)
    assert reply.status in (200, 400)


@pytest.mark.slow
@PROPERTY
@given(edits=EDITS)
def test_damaged_xml_inside_ciphertext(
    hostile: Hostile, edits: list[tuple[str, int, bytes]]
) -> None:
    inner = mutate(hostile.message_xml().encode(), edits)
    reply = aes(raw_cipher(pad(payload(inner))))(hostile)
    assert_no_5xx(reply, hostile)
    assert reply.status in (200, 400)


@pytest.mark.slow
@PROPERTY
@given(edits=EDITS)
def test_damaged_ciphertext(hostile: Hostile, edits: list[tuple[str, int, bytes]]) -> None:
    sealed = base64.b64decode(CODEC.encrypt(hostile.message_xml()))
    reply = aes(base64.b64encode(mutate(sealed, edits)).decode())(hostile)
    assert_no_5xx(reply, hostile)
    assert reply.status in (200, 400)


@pytest.mark.slow
@PROPERTY
@given(edits=EDITS)
def test_damaged_tokens(hostile: Hostile, edits: list[tuple[str, int, bytes]]) -> None:
    path = hostile.valid_link()
    damaged = mutate(path.removeprefix("/d/").encode(), edits).decode("latin-1")
    reply = hostile.request("GET", "/d/" + quote(damaged, safe=""))
    assert_no_5xx(reply, hostile)
    assert reply.status in (200, 403, 404, 410)


@pytest.mark.slow
@PROPERTY
@given(
    query=st.dictionaries(
        st.sampled_from(
            ["signature", "timestamp", "nonce", "echostr", "encrypt_type", "msg_signature"]
        ),
        st.text(max_size=60),
    )
)
def test_random_queries(hostile: Hostile, query: dict[str, str]) -> None:
    reply = hostile.request("GET", "/wechat", params=query)
    assert_no_5xx(reply, hostile)
    assert reply.status == 403
    post_reply = hostile.request("POST", "/wechat", params=query, content=hostile.message_xml())
    assert_no_5xx(post_reply, hostile)
    assert post_reply.status == 403


def test_still_serving_and_no_secret_in_the_logs(hostile: Hostile) -> None:
    """Runs last: every line the module's server logged, including uvicorn's access log."""
    hostile.assert_still_serves()
    hostile.valid_link(encrypt=True)
    hostile.request("GET", "/wechat", params={**hostile.query(), "echostr": "e"})
    text = "\n".join(hostile.lines)
    assert "POST /wechat?signature=…&timestamp=" in text  # the access log is there, redacted
    assert '"GET /d/… HTTP/1.1" 200' in text
    secrets = [TOKEN, AES_KEY, SECRET, *hostile.tokens, *hostile.signatures]
    assert len(hostile.tokens) > 10 and len(hostile.signatures) > 10
    leaked = [s for s in secrets if s in text]
    assert not leaked, [line for line in hostile.lines if any(s in line for s in leaked)]
    assert "Traceback" not in text
