"""bot.wechat against WeChat's published vectors, round trips and hostile input."""

from __future__ import annotations

import base64

import defusedxml.ElementTree as SafeET
import pytest

from bot.errors import MessageError, SignatureError
from bot.wechat import (
    Codec,
    Message,
    Simulator,
    build_message_xml,
    parse_message,
    signature,
    text_reply,
)
from tests.helpers.crypto import (
    AES_KEY,
    APP_ID,
    NONCE,
    PREFIX,
    TIMESTAMP,
    TOKEN,
    VECTOR_CIPHER,
    VECTOR_MSG_SIGNATURE,
    VECTOR_PLAIN,
    open_push,
    pad,
    payload,
    raw_cipher,
)

TEXT_XML = build_message_xml(
    to_user="gh_account", from_user="oUser", create_time=1700000000, content="hi", msg_id="42"
)


def codec(*, key: str = AES_KEY, app_id: str = APP_ID) -> Simulator:
    return Simulator(TOKEN, app_id, key, random_bytes=lambda n: PREFIX[:n])


def signed_push(ciphertext: str) -> tuple[dict[str, str], bytes]:
    """Query and safe-mode body around a ciphertext, signed correctly."""
    params = {
        "signature": signature(TOKEN, TIMESTAMP, NONCE),
        "timestamp": TIMESTAMP,
        "nonce": NONCE,
        "encrypt_type": "aes",
        "msg_signature": signature(TOKEN, TIMESTAMP, NONCE, ciphertext),
    }
    body = f"<xml><ToUserName><![CDATA[gh]]></ToUserName><Encrypt>{ciphertext}</Encrypt></xml>"
    return params, body.encode()


# --- signatures and the published vectors -------------------------------------------------------


def test_plain_signature_vector() -> None:
    assert signature("test", "1410685589", "test") == "f21891de399b4e33a1a93c9a7b8a8fffb5a443ff"


def test_tencent_vector() -> None:
    c = codec()
    assert c.encrypt(VECTOR_PLAIN) == VECTOR_CIPHER
    assert c.decrypt(VECTOR_CIPHER) == VECTOR_PLAIN
    assert signature(TOKEN, TIMESTAMP, NONCE, VECTOR_CIPHER) == VECTOR_MSG_SIGNATURE


@pytest.mark.parametrize(
    ("given", "ok"),
    [
        pytest.param(signature(TOKEN, TIMESTAMP, NONCE), True, id="good"),
        pytest.param(signature(TOKEN, TIMESTAMP, "other"), False, id="other-nonce"),
        pytest.param("", False, id="empty"),
        pytest.param("签名", False, id="non-ascii"),
    ],
)
def test_verify_echo(given: str, ok: bool) -> None:
    c = Codec(TOKEN, APP_ID)
    query = {"signature": given, "timestamp": TIMESTAMP, "nonce": NONCE, "echostr": "e1"}
    if ok:
        assert c.verify_echo(**query) == "e1"
    else:
        with pytest.raises(SignatureError):
            c.verify_echo(**query)


@pytest.mark.parametrize(
    ("token", "key", "app_id"),
    [
        pytest.param("", "", APP_ID, id="empty-token"),
        pytest.param(TOKEN, AES_KEY[:-1], APP_ID, id="key-too-short"),
        pytest.param(TOKEN, AES_KEY + "AAAA", APP_ID, id="key-too-long"),
        pytest.param(TOKEN, "!" * 43, APP_ID, id="key-not-base64"),
        pytest.param(TOKEN, AES_KEY, "", id="key-without-appid"),
    ],
)
def test_codec_refuses_bad_settings(token: str, key: str, app_id: str) -> None:
    with pytest.raises(ValueError, match=r"token|EncodingAESKey|app_id"):
        Codec(token, app_id, key)


# --- round trips ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encrypt", "compatible", "tags"),
    [
        pytest.param(False, False, ["ToUserName", "FromUserName", "CreateTime"], id="plain"),
        pytest.param(True, False, ["ToUserName", "Encrypt"], id="safe"),
        pytest.param(True, True, ["ToUserName", "FromUserName", "CreateTime"], id="compatible"),
    ],
)
def test_request_round_trip(encrypt: bool, compatible: bool, tags: list[str]) -> None:
    c = Simulator(TOKEN, APP_ID, AES_KEY)
    params, body = c.build_request(
        TEXT_XML, timestamp=TIMESTAMP, nonce=NONCE, encrypt=encrypt, compatible=compatible
    )
    body_tags = [child.tag for child in SafeET.fromstring(body)]
    assert body_tags[: len(tags)] == tags
    assert ("Encrypt" in body_tags) is encrypt
    assert ("encrypt_type" in params) is encrypt
    message, was_encrypted = open_push(c, params, body)
    assert was_encrypted is encrypt
    assert message == Message("text", "oUser", "gh_account", 1700000000, "42", content="hi")


def test_reply_round_trip() -> None:
    c = Simulator(TOKEN, APP_ID, AES_KEY)
    reply = text_reply(to_user="oUser", from_user="gh", content="链接 ]]> ok", create_time=1)
    sealed = c.seal(reply, encrypted=True, nonce=NONCE, timestamp=TIMESTAMP)
    assert [child.tag for child in SafeET.fromstring(sealed)] == [
        "Encrypt",
        "MsgSignature",
        "TimeStamp",
        "Nonce",
    ]
    assert c.read_reply(sealed.encode()) == reply
    assert c.seal(reply, encrypted=False, nonce=NONCE, timestamp=TIMESTAMP) == reply
    assert c.read_reply(reply.encode()) == reply
    assert c.seal("success", encrypted=True, nonce=NONCE, timestamp=TIMESTAMP) == "success"


def test_read_reply_checks_msg_signature() -> None:
    c = Simulator(TOKEN, APP_ID, AES_KEY)
    sealed = c.seal(TEXT_XML, encrypted=True, nonce=NONCE, timestamp=TIMESTAMP)
    with pytest.raises(SignatureError):
        c.read_reply(sealed.replace(f"[{NONCE}]", "[other]").encode())


# --- refusals on the server side ------------------------------------------------------------------


MALFORMED = [
    pytest.param("not*base64!", -40010, id="bad-base64"),
    pytest.param("", -40007, id="empty"),
    pytest.param(base64.b64encode(b"x" * 15).decode(), -40007, id="not-whole-blocks"),
    pytest.param(raw_cipher(b"a" * 31 + b"\x00"), -40007, id="pad-zero"),
    pytest.param(raw_cipher(b"a" * 63 + b"\x21"), -40007, id="pad-over-32"),
    pytest.param(raw_cipher(b"a" * 30 + b"\x01\x02"), -40007, id="pad-inconsistent"),
    pytest.param(raw_cipher(pad(PREFIX + b"abc")), -40008, id="shorter-than-20"),
    pytest.param(
        raw_cipher(pad(payload(TEXT_XML.encode(), length=100_000))), -40008, id="length-past-end"
    ),
    pytest.param(raw_cipher(pad(payload(b"\xff\xfe<xml/>"))), -40008, id="not-utf8"),
    pytest.param(raw_cipher(pad(payload(TEXT_XML.encode(), b"wxother"))), -40005, id="appid"),
    pytest.param(raw_cipher(pad(payload(TEXT_XML.encode(), b""))), -40005, id="appid-missing"),
]


@pytest.mark.parametrize(("ciphertext", "code"), MALFORMED)
def test_decrypt_refuses(ciphertext: str, code: int) -> None:
    with pytest.raises(MessageError) as info:
        codec().decrypt(ciphertext)
    assert info.value.code == code


@pytest.mark.parametrize(
    ("ciphertext", "code"),
    [
        *(case for case in MALFORMED if case.id != "empty"),  # an empty <Encrypt> is no <Encrypt>
        pytest.param(raw_cipher(pad(payload(b"<xml><a>"))), -40002, id="inner-not-xml"),
        pytest.param(raw_cipher(pad(payload(b"<xml/>"))), -40002, id="inner-not-message"),
    ],
)
def test_open_refuses_ciphertext(ciphertext: str, code: int) -> None:
    params, body = signed_push(ciphertext)
    with pytest.raises(MessageError) as info:
        open_push(codec(), params, body)
    assert info.value.code == code


def test_without_key_decrypt_and_encrypt_refuse() -> None:
    for call in (Codec(TOKEN, APP_ID).decrypt, Codec(TOKEN, APP_ID).encrypt):
        with pytest.raises(MessageError) as info:
            call(VECTOR_CIPHER)
        assert info.value.code == -40004


def test_well_formed_forged_payload_opens() -> None:
    params, body = signed_push(raw_cipher(pad(payload(TEXT_XML.encode()))))
    assert open_push(codec(), params, body)[0].msg_id == "42"


@pytest.mark.parametrize(
    ("change", "error", "code"),
    [
        pytest.param({"signature": "0" * 40}, SignatureError, -40001, id="signature"),
        pytest.param({"msg_signature": "0" * 40}, SignatureError, -40001, id="msg-signature"),
        pytest.param({"msg_signature": None}, SignatureError, -40001, id="no-msg-signature"),
        pytest.param({"msg_signature": "签名"}, SignatureError, -40001, id="non-ascii"),
        pytest.param({"timestamp": "1409304349"}, SignatureError, -40001, id="timestamp"),
        pytest.param({"encrypt_type": "rsa"}, MessageError, -40002, id="unknown-encrypt-type"),
    ],
)
def test_open_refuses(change: dict[str, str | None], error: type[Exception], code: int) -> None:
    c = Simulator(TOKEN, APP_ID, AES_KEY)
    params, body = c.build_request(TEXT_XML, timestamp=TIMESTAMP, nonce=NONCE, encrypt=True)
    query: dict[str, str] = {k: v for k, v in (params | change).items() if v is not None}
    with pytest.raises(error) as info:
        open_push(c, query, body)
    assert getattr(info.value, "code", None) == code


def test_open_aes_without_key() -> None:
    params, body = codec().build_request(TEXT_XML, timestamp=TIMESTAMP, nonce=NONCE, encrypt=True)
    with pytest.raises(MessageError) as info:
        open_push(Codec(TOKEN, APP_ID), params, body)
    assert info.value.code == -40004


def test_open_aes_without_encrypt_element() -> None:
    params, _ = signed_push(VECTOR_CIPHER)
    with pytest.raises(MessageError):
        open_push(codec(), params, TEXT_XML.encode())


# --- parsing ------------------------------------------------------------------------------------

CLICK = build_message_xml(
    to_user="gh", from_user="oU", create_time=7, msg_type="event", event="CLICK", event_key="K:1"
)
SUBSCRIBE = build_message_xml(
    to_user="gh", from_user="oU", create_time=8, msg_type="event", event="subscribe"
)
QRSCENE = SUBSCRIBE.replace("<EventKey><![CDATA[]]>", "<EventKey><![CDATA[qrscene_123]]>")
NOT_UTF8 = "<xml><MsgType>text</MsgType><FromUserName>中</FromUserName></xml>".encode("gbk")
LOCATION = (
    "<xml><ToUserName><![CDATA[gh]]></ToUserName><FromUserName><![CDATA[oU]]></FromUserName>"
    "<CreateTime>9</CreateTime><MsgType><![CDATA[location]]></MsgType><Location_X>23.13</Location_X>"
    "<Location_Y>113.26</Location_Y><Scale>20</Scale><Label><![CDATA[广州]]></Label>"
    "<MsgId>1234567890123456</MsgId></xml>"
)
IMAGE = (
    "<xml><ToUserName><![CDATA[gh]]></ToUserName><FromUserName><![CDATA[oU]]></FromUserName>"
    "<CreateTime>x</CreateTime><MsgType><![CDATA[image]]></MsgType><PicUrl><![CDATA[http://p]]>"
    "</PicUrl><MediaId><![CDATA[m]]></MediaId><MsgId>5</MsgId></xml>"
)


@pytest.mark.parametrize(
    ("xml", "expected", "dedup_key"),
    [
        pytest.param(
            TEXT_XML.encode(),
            Message("text", "oUser", "gh_account", 1700000000, "42", content="hi"),
            "msg:gh_account:oUser:42",
            id="text",
        ),
        pytest.param(
            SUBSCRIBE,
            Message("event", "oU", "gh", 8, None, event="subscribe"),
            "evt:gh:oU:8:subscribe:",
            id="subscribe",
        ),
        pytest.param(
            QRSCENE,
            Message("event", "oU", "gh", 8, None, event="subscribe_scan", event_key="qrscene_123"),
            "evt:gh:oU:8:subscribe_scan:qrscene_123",
            id="subscribe-qrscene",
        ),
        pytest.param(
            CLICK,
            Message("event", "oU", "gh", 7, None, event="click", event_key="K:1"),
            "evt:gh:oU:7:click:K:1",
            id="click-lowercased",
        ),
        pytest.param(
            IMAGE, Message("image", "oU", "gh", 0, "5"), "msg:gh:oU:5", id="image-bad-time"
        ),
        pytest.param(
            LOCATION.encode(),
            Message("location", "oU", "gh", 9, "1234567890123456"),
            "msg:gh:oU:1234567890123456",
            id="location",
        ),
        pytest.param(
            build_message_xml(to_user="gh", from_user="oU", create_time=3, msg_type="Hologram"),
            Message("hologram", "oU", "gh", 3, None),
            "evt:gh:oU:3:hologram:",
            id="unknown-type",
        ),
        pytest.param(
            '<?xml version="1.0" encoding="GBK"?>' + TEXT_XML,
            Message("text", "oUser", "gh_account", 1700000000, "42", content="hi"),
            "msg:gh_account:oUser:42",
            id="declared-encoding-ignored",
        ),
    ],
)
def test_parse_message(xml: bytes | str, expected: Message, dedup_key: str) -> None:
    message = parse_message(xml)
    assert message == expected
    assert message.dedup_key == dedup_key


BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    "<xml><MsgType>text</MsgType><FromUserName>o</FromUserName><Content>&lol3;</Content></xml>"
)
XXE = (
    '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    "<xml><MsgType>text</MsgType><FromUserName>o</FromUserName><Content>&xxe;</Content></xml>"
)


@pytest.mark.parametrize(
    "xml",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"hello", id="not-xml"),
        pytest.param(b"<xml><MsgType>text</MsgType>", id="truncated"),
        pytest.param(b"<!DOCTYPE xml><xml><MsgType>text</MsgType></xml>", id="doctype"),
        pytest.param(XXE, id="xxe"),
        pytest.param(BILLION_LAUGHS, id="billion-laughs"),
        pytest.param(b"<root><MsgType>t</MsgType><FromUserName>o</FromUserName></root>", id="root"),
        pytest.param(b"<xml><FromUserName>o</FromUserName></xml>", id="no-msgtype"),
        pytest.param(b"<xml><MsgType>text</MsgType></xml>", id="no-fromusername"),
        pytest.param(NOT_UTF8, id="not-utf8"),
        pytest.param(12345, id="not-bytes"),
    ],
)
def test_parse_message_refuses(xml: bytes | str) -> None:
    with pytest.raises(MessageError) as info:
        parse_message(xml)
    assert info.value.code == -40002


# --- replies ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("a]]>b", id="cdata-end"),
        pytest.param("]]>]]>]]]>", id="cdata-ends"),
        pytest.param("<b>&amp;</b> 中文 😀", id="markup-and-unicode"),
        pytest.param("", id="empty"),
    ],
)
def test_text_reply_round_trips(content: str) -> None:
    root = SafeET.fromstring(
        text_reply(to_user="o]]>U", from_user="gh", content=content, create_time=5),
        forbid_dtd=True,
    )
    assert root.findtext("Content") == content
    assert root.findtext("ToUserName") == "o]]>U"
    assert root.findtext("MsgType") == "text"
    assert root.findtext("CreateTime") == "5"


@pytest.mark.parametrize(
    ("content", "cut"),
    [
        pytest.param("中" * 1667, True, id="5000-bytes-chinese"),
        pytest.param("😀" * 600, True, id="4-byte-chars"),
        pytest.param("a" * 2048, False, id="exactly-2048"),
        pytest.param("a" * 2049, True, id="2049"),
        pytest.param("中" * 682 + "ab", False, id="2048-mixed"),
    ],
)
def test_text_reply_truncates(content: str, cut: bool) -> None:
    xml = text_reply(to_user="o", from_user="gh", content=content, create_time=1)
    got = SafeET.fromstring(xml.encode("utf-8")).findtext("Content")
    assert len(got.encode("utf-8")) <= 2048
    if cut:
        assert got.endswith("…")
        assert content.startswith(got[:-1])
        assert len(got.encode("utf-8")) > 2048 - 4 - 3  # no more cut than one character
    else:
        assert got == content


def test_text_reply_drops_xml_forbidden_characters() -> None:
    xml = text_reply(to_user="o", from_user="gh", content="a\x00b\x1bc\td", create_time=1)
    assert SafeET.fromstring(xml).findtext("Content") == "abc\td"
