"""A download's name in ``Content-Disposition``: UTF-8 ``filename*`` and an ASCII ``filename``.

The ASCII fallback is what ``curl -OJ`` (which ignores ``filename*``) and old clients save the
file as: Han characters in pinyin (使用说明.txt → ShiYongShuoMing.txt), accents dropped.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Callable
from functools import cache, lru_cache
from urllib.parse import quote

_HAN = re.compile(r"[\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]+")


def content_disposition(filename: str) -> str:
    """RFC 6266 ``attachment`` with an ASCII ``filename`` fallback and a UTF-8 ``filename*``."""
    name = "".join(c for c in filename if unicodedata.category(c)[0] != "C")
    return f"attachment; filename=\"{ascii_name(name)}\"; filename*=UTF-8''{quote(name, safe='')}"


@lru_cache(maxsize=1024)
def ascii_name(name: str) -> str:
    """``name`` in ASCII: pinyin for Han (each syllable capitalised), accents dropped."""
    text = unicodedata.normalize("NFKC", name)  # full-width letters and digits → ASCII
    text = _HAN.sub(lambda run: "".join(s.capitalize() for s in _pinyin()(run.group())), text)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = "".join("_" if c in '"\\;' else c for c in text).strip()
    stem, dot, ext = text.rpartition(".")
    if not dot:
        stem, ext = text, ""
    if not stem.strip(" ._"):
        return "download" + (f".{ext}" if ext else "")
    return text


@cache
def _pinyin() -> Callable[[str], list[str]]:
    """pypinyin's syllables, loaded on the first Han name in its documented low-memory mode.

    Without its phrase table a worker holds ~12 MB instead of ~58 MB; a character with several
    readings then gets its commonest one (银行 → YinXing), which is enough for a file name.
    """
    os.environ.setdefault("PYPINYIN_NO_PHRASES", "1")
    os.environ.setdefault("PYPINYIN_NO_DICT_COPY", "1")
    from pypinyin import lazy_pinyin

    return lambda text: list(lazy_pinyin(text))
