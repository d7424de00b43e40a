"""Speed changes of issue #12 keep what they replace: the same tokens, the same rows."""

from __future__ import annotations

import secrets

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from bot.links import SALT, LinkSigner, file_ref

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
        KEYS, 600, files=["a.pdf", "使用说明.txt"], clock=lambda: NOW, new_id=lambda: next(ids)
    )
    for _ in range(150):
        for name in ("a.pdf", "使用说明.txt"):
            token, link = signer.issue(name)
            assert token == stock().dumps([link.link_id, file_ref(name)])


@pytest.mark.parametrize(
    "payload_id", ["a" * 64, "0123456789abcdef"], ids=["compressible", "plain"]
)
def test_links_signed_by_itsdangerous_still_verify(payload_id: str) -> None:
    """Issue #12 find the time: a compressed payload (itsdangerous' own) is still read."""
    token = stock().dumps([payload_id, file_ref("a.pdf")])
    assert token.startswith(".") == (payload_id == "a" * 64)
    link = LinkSigner(KEYS, 600, files=["a.pdf"], clock=lambda: NOW + 5).verify(token)
    assert (link.link_id, link.file_key) == (payload_id, "a.pdf")
