"""Content-Disposition for names browsers get wrong."""

from __future__ import annotations

import pytest

from bot.web.downloads import content_disposition


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param(
            "使用说明.txt",
            "attachment; filename=\"ShiYongShuoMing.txt\"; filename*=UTF-8''%E4%BD%BF%E7%94%A8%E8%AF%B4%E6%98%8E.txt",
            id="chinese",
        ),
        pytest.param(
            "my file.pdf",
            "attachment; filename=\"my file.pdf\"; filename*=UTF-8''my%20file.pdf",
            id="space",
        ),
        pytest.param(
            'say "hi".txt',
            "attachment; filename=\"say _hi_.txt\"; filename*=UTF-8''say%20%22hi%22.txt",
            id="quotes",
        ),
        pytest.param(
            "安装包 v1.2.exe",
            "attachment; filename=\"AnZhuangBao v1.2.exe\"; filename*=UTF-8''%E5%AE%89%E8%A3%85%E5%8C%85%20v1.2.exe",
            id="mixed",
        ),
        pytest.param(
            "a;b\\c\r\n.txt",
            "attachment; filename=\"a_b_c.txt\"; filename*=UTF-8''a%3Bb%5Cc.txt",
            id="separators-and-controls",
        ),
        pytest.param(
            "Café.zip",
            "attachment; filename=\"Cafe.zip\"; filename*=UTF-8''Caf%C3%A9.zip",
            id="accent",
        ),
        pytest.param(  # issue #21 item 5: was "v2 ().exe"
            "v2 (测试版).exe",
            "attachment; filename=\"v2 (CeShiBan).exe\"; filename*=UTF-8''v2%20%28%E6%B5%8B%E8%AF%95%E7%89%88%29.exe",
            id="pinyin-in-brackets",
        ),
        pytest.param(
            "ＡＢＣ１.pdf",
            "attachment; filename=\"ABC1.pdf\"; filename*=UTF-8''%EF%BC%A1%EF%BC%A2%EF%BC%A3%EF%BC%91.pdf",
            id="full-width",
        ),
        pytest.param(
            "😀.txt",
            "attachment; filename=\"download.txt\"; filename*=UTF-8''%F0%9F%98%80.txt",
            id="nothing-ascii-left",
        ),
    ],
)
def test_content_disposition(name: str, expected: str) -> None:
    assert content_disposition(name) == expected
