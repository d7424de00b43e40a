"""Object storage (S3, Tencent COS, Aliyun OSS, MinIO): HEAD checks and presigned GET redirects.

The bot stays the gatekeeper (token, limits, counts, audit, pages); the bucket sends the bytes.
A presigned URL serves the whole object, Range or not, for as long as it lives: the span handed
over is the whole file, reported as sent at the redirect (like x-accel's hand-over).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from fastapi.responses import Response
from loguru import logger

from bot.config import Settings
from bot.delivery import Offer, Transfer
from bot.delivery.catalog import FileInfo
from bot.delivery.modes import S3Settings
from bot.delivery.objects import ObjectCatalog, PresignedRedirect, StoredObject
from bot.delivery.slots import DownloadSlots
from bot.errors import RETRY_AFTER, ConfigError, FileMissing, ObjectStoreUnavailable

# A dead bucket must turn into a 503 within a few seconds, not botocore's 60 s x 5 tries.
CLIENT_CONFIG = {
    "connect_timeout": 2,
    "read_timeout": 3,
    "retries": {"total_max_attempts": 2, "mode": "standard"},
    "max_pool_connections": 32,  # HEADs run in anyio's worker threads (40 at most)
}
NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}
DENIED = {"403", "AccessDenied", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch"}


def make_client(settings: S3Settings) -> Any:
    """A boto3 S3 client with bounded timeouts and few retries; credentials only from settings
    (or, when both keys are empty, boto3's own chain: AWS_* variables, instance role)."""
    # botocore's DEBUG lines carry signed headers (access key id, signatures): keep them out.
    logging.getLogger("botocore").setLevel(logging.WARNING)
    logging.getLogger("boto3").setLevel(logging.WARNING)
    keys: dict[str, str] = {}
    if settings.access_key_id.get_secret_value() or settings.secret_access_key.get_secret_value():
        keys = {
            "aws_access_key_id": settings.access_key_id.get_secret_value(),
            "aws_secret_access_key": settings.secret_access_key.get_secret_value(),
        }
    config = Config(
        **CLIENT_CONFIG,
        signature_version="s3v4",
        s3={"addressing_style": settings.addressing_style},
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=settings.endpoint_url or None,
        region_name=settings.region or None,
        config=config,
        **keys,
    )


class S3Delivery:
    """``[files] delivery = "s3"``: HEAD a keyword's object, check them all, answer a download
    with a redirect to the bucket."""

    counts_slots = False  # the bucket sends the bytes: no slot, no speed cap
    whole_file = True  # a presigned URL serves the whole object whatever Range it is sent
    hands_over = False  # a 302: the span counts when the redirect goes out
    one_piece = 0  # the count and the finish are one trip already

    def __init__(self, settings: S3Settings, client: Any | None = None) -> None:
        self.settings = settings
        self.client = client if client is not None else make_client(settings)

    def object_key(self, key: str) -> str:
        """The bucket key of a catalogue key: ``prefix/file`` (or ``file`` without a prefix)."""
        prefix = self.settings.prefix.strip("/")
        return f"{prefix}/{key}" if prefix else key

    def where(self, key: str) -> str:
        """``s3://bucket/object`` for messages (never the endpoint's credentials)."""
        return f"s3://{self.settings.bucket}/{self.object_key(key)}"

    def head(self, key: str, *, quiet: bool = False) -> StoredObject:
        """HEAD one object (blocking); FileMissing if absent, ObjectStoreUnavailable otherwise
        (logged, unless ``quiet``: `bot check` says it as a config error instead)."""
        try:
            answer = self.client.head_object(Bucket=self.settings.bucket, Key=self.object_key(key))
        except ClientError as exc:
            code = _code(exc)
            if code in NOT_FOUND:
                raise FileMissing(key) from None
            denied = code in DENIED
            raise self._unavailable(key, f"answered {code}", denied=denied, quiet=quiet) from None
        except BotoCoreError as exc:
            raise self._unavailable(key, type(exc).__name__, quiet=quiet) from None
        modified = answer.get("LastModified")
        return StoredObject(
            key,
            self.object_key(key),
            int(answer["ContentLength"]),
            modified.timestamp() if modified is not None else 0.0,
        )

    def check(self, files: Sequence[str]) -> list[tuple[int, str]]:
        """HEAD every keyword's object (``files[i]`` is ``keywords[i].file``): its size and
        ``s3://`` name; ConfigError names the key and the fix for a missing object or a bucket
        that does not answer."""
        found: list[tuple[int, str]] = []
        for i, key in enumerate(files):
            try:
                found.append((self.head(key, quiet=True).size, self.where(key)))
            except FileMissing:
                raise ConfigError(
                    f"keywords[{i}].file",
                    f"{key!r}: no object {self.where(key)}",
                    f"upload it (aws s3 cp FILE {self.where(key)}) or fix the name, "
                    "s3.prefix or s3.bucket",
                ) from None
            except ObjectStoreUnavailable as exc:
                if exc.denied:
                    raise ConfigError(
                        "s3.access_key_id",
                        f"the bucket {self.settings.bucket!r} refused the key pair for {key!r} "
                        f"({exc.reason})",
                        "set a key pair that may read (GetObject) the objects: "
                        "BOT_S3__ACCESS_KEY_ID, BOT_S3__SECRET_ACCESS_KEY",
                    ) from None
                raise ConfigError(
                    "s3.endpoint_url",
                    f"the bucket {self.settings.bucket!r} did not answer for {key!r} "
                    f"({exc.reason})",
                    "check s3.endpoint_url, s3.region, s3.bucket and the key pair "
                    "(BOT_S3__ACCESS_KEY_ID, BOT_S3__SECRET_ACCESS_KEY)",
                ) from None
        return found

    def presign(
        self, key: str, disposition: str, media_type: str, seconds_left: float = math.inf
    ) -> str:
        """A GET URL for the object, answering with our headers, valid ``presign_seconds`` but
        never past the link's own expiry (``seconds_left``, to the second; at least 1 s)."""
        lifetime = max(1, math.floor(min(self.settings.presign_seconds, seconds_left)))
        params = {
            "Bucket": self.settings.bucket,
            "Key": self.object_key(key),
            "ResponseContentDisposition": disposition,
            "ResponseContentType": media_type,
            "ResponseCacheControl": "private, no-store",
        }
        try:
            url: str = self.client.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=lifetime
            )
        except BotoCoreError as exc:  # no credentials found, a broken endpoint…
            raise self._unavailable(key, type(exc).__name__) from None
        return url

    def etag(self, info: FileInfo) -> str:
        """Unused: ``whole_file`` means no Range, so no If-Range, is ever checked."""
        return ""

    def respond(self, offer: Offer, transfer: Transfer) -> Response:
        """302 to a presigned URL for a GET; a HEAD gets the object's headers and no redirect
        (a presigned GET URL does not answer HEAD)."""
        return PresignedRedirect(self, offer, transfer)

    def catalog(self, keys: Iterable[str]) -> ObjectCatalog:
        """The catalogue of these keys, each opened with a HEAD of its object."""
        return ObjectCatalog(self, keys)

    def _unavailable(
        self, key: str, reason: str, denied: bool = False, quiet: bool = False
    ) -> ObjectStoreUnavailable:
        if not quiet:
            logger.error("object store: HEAD/presign of {} failed: {}", self.where(key), reason)
        return ObjectStoreUnavailable(
            f"object store unavailable ({reason})", RETRY_AFTER, file_key=key, denied=denied
        )


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def build(settings: Settings, slots: DownloadSlots) -> S3Delivery:
    """The s3 mode, from ``[s3]`` (boto3 is imported only in this mode)."""
    return S3Delivery(settings.s3)
