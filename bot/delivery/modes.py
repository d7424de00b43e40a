"""The delivery modes as one table: each names its module, where its files live, its own
settings section and its load-time check. Light on purpose: ``bot.config`` reads it.

A new mode is its module (``build(settings, slots)``), one ``MODES`` line, and, if it has
settings, its section here plus one field in ``Settings``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from bot.errors import ConfigError

if TYPE_CHECKING:
    from bot.config import Settings


class S3Settings(BaseModel):
    """Object storage for ``[files] delivery = "s3"`` (AWS S3, Tencent COS, Aliyun OSS, MinIO)."""

    model_config = ConfigDict(extra="forbid")

    endpoint_url: str = ""
    region: str = ""
    bucket: str = ""
    prefix: str = ""
    # SecretStr: never printed by a repr, a validation error or a log line.
    access_key_id: SecretStr = SecretStr("")
    secret_access_key: SecretStr = SecretStr("")
    addressing_style: Literal["auto", "path", "virtual"] = "auto"
    presign_seconds: int = Field(default=60, ge=1, le=3600)

    @field_validator("endpoint_url")
    @classmethod
    def _empty_or_absolute(cls, value: str) -> str:
        parts = urlsplit(value)
        if value and (parts.scheme not in ("http", "https") or not parts.netloc):
            raise ValueError(
                "must be empty (AWS) or an absolute http(s) URL such as "
                "https://cos.ap-guangzhou.myqcloud.com"
            )
        return value.rstrip("/")


def _check_s3(settings: Settings) -> None:
    if not settings.s3.bucket:
        raise ConfigError(
            "s3.bucket",
            "is empty",
            'name the bucket the files are in, or set [files] delivery = "direct"',
        )


@dataclass(frozen=True, slots=True)
class Mode:
    """One value of ``[files] delivery``."""

    module: str  # has ``build(settings, slots) -> Delivery``
    local_files: bool = True  # its files are in ``[files] dir`` (checked there at load)
    check: Callable[[Settings], None] | None = None  # its settings, at load (no I/O)


MODES: dict[str, Mode] = {
    "direct": Mode("bot.delivery.disk"),
    "x-accel": Mode("bot.delivery.accel"),
    "s3": Mode("bot.delivery.s3", local_files=False, check=_check_s3),
}
