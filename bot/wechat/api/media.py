"""Pictures for image replies: uploaded as temporary media, their media_id kept under 3 days."""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path
from typing import TYPE_CHECKING

from loguru import logger

from bot.clock import Clock
from bot.errors import StoreUnavailable
from bot.state import STORE_TIMEOUT, MediaIds, bounded
from bot.wechat.api.errors import RequestRefused

if TYPE_CHECKING:
    from bot.wechat.api.client import WeChatAPI

KEEP = 2.5 * 86400  # WeChat keeps temporary media 3 days: a media_id is used for 2.5 of them
MAX_BYTES = 10 * 1024 * 1024  # WeChat's limit for an image uploaded as temporary media
# What a passive image reply may show, by the file's first bytes: PNG and JPEG (GIF is refused).
KINDS = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg"}


def image_problem(root: Path, name: str) -> str | None:
    """Why ``name`` in ``root`` can't be an image reply (None: it can); reads its first bytes."""
    path = (root / name).resolve()
    if not path.is_relative_to(root.resolve()) or not path.is_file():
        return f"{name!r} is not a file inside {root}"
    size = path.stat().st_size
    if size > MAX_BYTES:
        return f"{name!r} has {size:,} bytes; WeChat takes images of up to {MAX_BYTES:,}"
    with path.open("rb") as file:
        if kind_of(file.read(8)) is None:
            return f"{name!r} is not a PNG or JPEG (a GIF can't be a reply)"
    return None


def kind_of(head: bytes) -> str | None:
    """The MIME type of an image starting with ``head``, if a reply may show it."""
    return next((kind for magic, kind in KINDS.items() if head.startswith(magic)), None)


class Pictures:
    """Each image uploaded once and its media_id shared through the store until it expires."""

    def __init__(self, api: WeChatAPI, store: MediaIds, *, wall: Clock = time.time) -> None:
        self._api, self._store, self._wall = api, store, wall
        self._locks: dict[str, asyncio.Lock] = {}  # one upload per picture in this process

    async def media_id(self, path: Path) -> str:
        """The picture's media_id: the kept one, else a fresh upload (WeChatAPIError, OSError)."""
        name = _name(path)
        known = await self._read(name)
        if known is not None:
            return known
        async with self._locks.setdefault(name, asyncio.Lock()):
            return await self._read(name) or await self._upload(path, name)

    async def renew(self, path: Path) -> str:
        """A fresh media_id for a picture WeChat refused (40007: expired or lost)."""
        return await self._upload(path, _name(path))

    async def _read(self, name: str) -> str | None:
        try:
            return await bounded(self._store.media_id(name), STORE_TIMEOUT)
        except StoreUnavailable as exc:
            logger.error("media id of {} not read, uploading it: {}", name, exc)
            return None

    async def _upload(self, path: Path, name: str) -> str:
        data = await asyncio.to_thread(path.read_bytes)
        kind = kind_of(data)
        if kind is None:  # replaced since the config was loaded
            raise RequestRefused("image", f"{path.name} is not a PNG or JPEG", "replace it")
        media_id = await self._api.upload_image(path.name, data, kind)
        expires_at = self._wall() + KEEP
        logger.info("image {} uploaded as temporary media {}", path.name, media_id)
        try:
            await bounded(self._store.keep_media_id(name, media_id, expires_at), STORE_TIMEOUT)
        except StoreUnavailable as exc:
            logger.error("media id of {} not kept (uploaded again next time): {}", name, exc)
        return media_id


def _name(path: Path) -> str:
    """The picture as the store knows it: name and a digest of where it is, its size and time."""
    stat = path.stat()
    where = f"{path.resolve()}\n{stat.st_size}\n{stat.st_mtime_ns}"
    return f"{path.name}:{hashlib.sha256(where.encode()).hexdigest()[:16]}"
