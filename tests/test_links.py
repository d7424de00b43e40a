"""Signing and verifying download tokens with an injected clock."""

from __future__ import annotations

import base64
import json
import time

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from bot.errors import FileMissing, LinkExpired, LinkInvalid
from bot.links import SALT, LinkSigner, file_ref, keyword_ref
from tests.conftest import Clock

KEY = "k" * 32
FILES = ["使用说明.txt", "a.txt", "f.txt"]


def test_fresh_token_verifies_to_its_file() -> None:
    clock = Clock()
    signer = LinkSigner([KEY], 600, files=FILES, clock=clock)
    token, link = signer.issue("使用说明.txt")
    got = signer.verify(token)
    assert (got.link_id, got.file_key) == (link.link_id, "使用说明.txt")
    assert got.expires_at.timestamp() == clock.now + 600


def test_still_valid_at_the_last_second_and_expired_after() -> None:
    clock = Clock()
    signer = LinkSigner([KEY], 600, files=FILES, clock=clock)
    token, link = signer.issue("a.txt")
    clock.advance(600)
    assert signer.verify(token).link_id == link.link_id
    clock.advance(1)
    with pytest.raises(LinkExpired) as info:
        signer.verify(token)
    assert info.value.link_id == link.link_id
    assert info.value.file_key == "a.txt"
    assert info.value.expired_at == link.expires_at


def test_payload_holds_the_link_id_opaque_refs_and_the_terms() -> None:
    signer = LinkSigner([KEY], 600, files=FILES, keywords=["芝麻开门"], new_id=lambda: "LINKID")
    token, _ = signer.issue("使用说明.txt", keyword="芝麻开门", max_downloads=2)
    payload = token.split(".")[0]
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert decoded == ["LINKID", file_ref("使用说明.txt"), keyword_ref("芝麻开门"), 2, 600]
    text = json.dumps(decoded, ensure_ascii=False)
    assert "使用说明" not in text and "芝麻开门" not in text


def test_terms_travel_in_the_token_not_the_config() -> None:
    """Issue #9 deliver 3: the verifying signer's ttl and limits do not change an issued link."""
    clock = Clock()
    issuer = LinkSigner([KEY], 600, files=FILES, keywords=["k"], clock=clock)
    token, issued = issuer.issue("a.txt", keyword="k", max_downloads=3)
    edited = LinkSigner([KEY], 60, files=FILES, keywords=["k"], clock=clock)
    clock.advance(100)
    link = edited.verify(token)
    assert (link.keyword, link.max_downloads, link.expires_at) == ("k", 3, issued.expires_at)
    removed = LinkSigner([KEY], 60, files=FILES, clock=clock).verify(token)
    assert removed.keyword == "" and removed.max_downloads == 3


def test_tokens_from_before_the_terms_verify_on_the_config_terms() -> None:
    clock = Clock(time.time())
    old = _foreign(["OLD", file_ref("a.txt")])
    signer = LinkSigner([KEY], 600, files=FILES, legacy_limits={"a.txt": 1}, clock=clock)
    link = signer.verify(old)
    assert (link.link_id, link.file_key, link.keyword, link.max_downloads) == (
        "OLD",
        "a.txt",
        "",
        1,
    )


def test_files_outside_the_catalogue_are_missing() -> None:
    signer = LinkSigner([KEY], 600, files=FILES)
    with pytest.raises(FileMissing):
        signer.issue("../etc/passwd")
    with pytest.raises(FileMissing):
        signer.verify(_foreign(["id", "../etc/passwd"]))
    with pytest.raises(FileMissing):
        signer.verify(_foreign(["id", file_ref("removed-from-config.txt")]))


def test_rotation_old_key_verifies_new_key_signs() -> None:
    clock = Clock()
    old = LinkSigner(["old-" + KEY], 600, files=FILES, clock=clock)
    token_old, _ = old.issue("a.txt")
    rotated = LinkSigner(["old-" + KEY, "new-" + KEY], 600, files=FILES, clock=clock)
    assert rotated.verify(token_old).file_key == "a.txt"
    token_new, _ = rotated.issue("a.txt")
    only_new = LinkSigner(["new-" + KEY], 600, files=FILES, clock=clock)
    assert only_new.verify(token_new).file_key == "a.txt"
    with pytest.raises(LinkInvalid):
        only_new.verify(token_old)


def _foreign(payload: object, *, key: str = KEY, salt: str = SALT) -> str:
    return URLSafeTimedSerializer(key, salt=salt).dumps(payload)


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("", id="empty"),
        pytest.param("garbage", id="garbage"),
        pytest.param("a.b.c", id="three-dots"),
        pytest.param(_foreign(["id", file_ref("a.txt")], key="x" * 32), id="other-key"),
        pytest.param(_foreign(["id", file_ref("a.txt")], salt="other"), id="other-salt"),
        pytest.param(_foreign({"id": 1}), id="wrong-shape"),
        pytest.param(_foreign(["id", ""]), id="empty-file-key"),
        pytest.param(_foreign(["id", 3]), id="non-string-key"),
        pytest.param(_foreign(["id", file_ref("a.txt"), "", -1, 600]), id="negative-limit"),
        pytest.param(_foreign(["id", file_ref("a.txt"), "", True, 600]), id="boolean-limit"),
        pytest.param(_foreign(["id", file_ref("a.txt"), "", 0, 0]), id="no-lifetime"),
        pytest.param(_foreign(["id", file_ref("a.txt"), "", 0]), id="four-fields"),
    ],
)
def test_bad_tokens_are_invalid(token: str) -> None:
    with pytest.raises(LinkInvalid):
        LinkSigner([KEY], 600, files=FILES).verify(token)


def test_tampered_token_is_invalid() -> None:
    signer = LinkSigner([KEY], 600, files=FILES)
    token, _ = signer.issue("a.txt")
    # A middle character: the last one of a base64 signature carries spare bits.
    flipped = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
    with pytest.raises(LinkInvalid):
        signer.verify(flipped)


@pytest.mark.parametrize(
    ("keys", "keyword", "limit"),
    [
        pytest.param([KEY], "", 0, id="plain"),
        pytest.param([KEY], "芝麻开门", 3, id="keyword-and-limit"),
        pytest.param(["old-" + KEY, KEY], "k", 1, id="rotated-keys-last-signs"),
    ],
)
def test_issued_tokens_are_itsdangerous_tokens_byte_for_byte(
    keys: list[str], keyword: str, limit: int
) -> None:
    """#20: tokens are signed without itsdangerous' layers, exactly as it signs them."""
    clock = Clock()
    signer = LinkSigner(
        keys, 600, files=FILES, keywords=[keyword], clock=clock, new_id=lambda: "L1"
    )
    token, _ = signer.issue("使用说明.txt", keyword=keyword, max_downloads=limit)
    payload = ["L1", file_ref("使用说明.txt"), keyword_ref(keyword), limit, 600]

    class AtTheClock(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(clock.now)

    reference = URLSafeTimedSerializer(keys[-1], salt=SALT, signer=AtTheClock)
    assert token == reference.dumps(payload)
    assert signer.verify(token).link_id == "L1"
