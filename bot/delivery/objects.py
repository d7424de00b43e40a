"""Object storage's side of a download, whatever the bucket: what a HEAD says, the catalogue
of objects and the presigned redirect. A bucket module (``s3``) gives a ``Bucket``."""

from __future__ import annotations

import mimetypes
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import anyio
from fastapi.responses import Response
from starlette.types import Receive, Scope, Send

from bot.delivery import Offer, Transfer
from bot.delivery.catalog import Catalog, FileInfo
from bot.errors import FileMissing, ObjectStoreUnavailable
from bot.state.base import Outcome


@dataclass(frozen=True, slots=True)
class StoredObject:
    """What a HEAD of a keyword's object says."""

    key: str  # the catalogue key (keyword ``file``)
    object_key: str  # the key in the bucket (``prefix`` + file)
    size: int
    modified: float

    def info(self) -> FileInfo:
        """The object as the download route and the landing page see a file."""
        # The path only names the file (landing page, Content-Disposition); it is never opened.
        return FileInfo(self.key, Path(self.key), self.size, self.modified)


class Bucket(Protocol):
    """What the redirect and the catalogue ask of a bucket (blocking calls, run off the loop)."""

    def head(self, key: str) -> StoredObject:
        """The object of a catalogue key; FileMissing, or ObjectStoreUnavailable."""

    def presign(self, key: str, disposition: str, media_type: str, seconds_left: float) -> str:
        """A GET URL answering with these headers, expiring no later than ``seconds_left``."""


class PresignedRedirect(Response):
    """The 302 to the bucket (presigned off the event loop when it goes), the whole file
    reported as sent; for a HEAD, the object's headers and nothing counted."""

    def __init__(self, bucket: Bucket, offer: Offer, transfer: Transfer) -> None:
        self.bucket, self.offer, self.transfer = bucket, offer, transfer
        self.kind = mimetypes.guess_type(offer.info.key)[0] or "application/octet-stream"
        if offer.method == "HEAD":
            size = str(offer.info.size)
            head = {**offer.headers, "Content-Length": size, "Accept-Ranges": "bytes"}
            super().__init__(status_code=200, headers=head, media_type=self.kind)
            return
        # The redirect carries the bot's headers except those the bucket now sends itself.
        own = {k: v for k, v in offer.headers.items() if k != "Content-Disposition"}
        super().__init__(status_code=302, headers=own)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        offer = self.offer
        if offer.method != "HEAD":
            disposition = offer.headers["Content-Disposition"]
            try:
                url = await anyio.to_thread.run_sync(
                    self.bucket.presign, offer.info.key, disposition, self.kind, offer.seconds_left
                )
            except BaseException as exc:
                refused = isinstance(exc, ObjectStoreUnavailable)
                with anyio.CancelScope(shield=True):  # the lease ends, nothing was sent
                    await self.transfer.finished(
                        0, 0, Outcome.UNAVAILABLE if refused else Outcome.ABORTED
                    )
                if isinstance(exc, ObjectStoreUnavailable):  # before the status line:
                    exc.link_id = offer.link_id  # the busy page's handler records it
                raise
            self.headers["location"] = url
        sent = 0 if offer.method == "HEAD" else offer.span.length  # the whole file, handed over
        await self.transfer.finished(self.status_code, sent, Outcome.SERVED)
        await super().__call__(scope, receive, send)


class ObjectCatalog(Catalog):
    """A Catalog whose files are objects: ``open`` HEADs the object (size, time) instead of stat."""

    def __init__(self, bucket: Bucket, keys: Iterable[str]) -> None:
        super().__init__(Path("/"), keys)
        self.bucket = bucket

    def open(self, key: str) -> FileInfo:
        """HEAD a catalogue object (blocking); FileMissing or ObjectStoreUnavailable."""
        if key not in self.keys:
            raise FileMissing(key)
        return self.bucket.head(key).info()
