"""Speed changes of issue #12 keep what they replace: the same tokens, the same rows."""

from __future__ import annotations

import secrets

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from bot.errors import LinkInvalid
from bot.links import SALT, LinkSigner, file_ref, keyword_ref

KEYS = ["first-key-0123456789abcdef", "second-key-0123456789abcdef"]
NOW = 1_800_000_000


class FixedSigner(TimestampSigner):
    def get_timestamp(self) -> int:
        return NOW


def stock() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(KEYS, salt=SALT, signer=FixedSigner)


def test_links_are_the_tokens_itsdangerous_makes() -> None:
    """Issue #12 find the time: signing without the zlib attempt gives the very same tokens."""
    ids = iter([secrets.token_hex(8) for _ in range(300)])
    signer = LinkSigner(
        KEYS,
        600,
        files=["a.pdf", "使用说明.txt"],
        keywords=["芝麻开门"],
        clock=lambda: NOW,
        new_id=lambda: next(ids),
    )
    for _ in range(150):
        for name in ("a.pdf", "使用说明.txt"):
            token, link = signer.issue(name, keyword="芝麻开门", max_downloads=1)
            payload = [link.link_id, file_ref(name), keyword_ref("芝麻开门"), 1, 600]
            assert token == stock().dumps(payload)


def test_links_signed_by_itsdangerous_still_verify() -> None:
    """Issue #12 find the time: a token from stock itsdangerous (two-field, pre-#9) still reads."""
    token = stock().dumps(["0123456789abcdef", file_ref("a.pdf")])
    link = LinkSigner(KEYS, 600, files=["a.pdf"], clock=lambda: NOW + 5).verify(token)
    assert (link.link_id, link.file_key) == ("0123456789abcdef", "a.pdf")


def test_a_compressed_payload_was_never_issued_and_is_refused() -> None:
    """The bot never compresses (payloads never shrink), so a '.'-prefixed token is not one of ours."""
    token = stock().dumps(["a" * 64, file_ref("a.pdf")])
    assert token.startswith(".")
    with pytest.raises(LinkInvalid):
        LinkSigner(KEYS, 600, files=["a.pdf"], clock=lambda: NOW + 5).verify(token)
