"""The validators a download answers with (ETag, Last-Modified), from a file's description.

Each delivery mode sends the ETag its sender makes, so that If-Range is checked against the one
clients saw: Starlette's form for the bot's own stream, nginx's for x-accel.
"""

from __future__ import annotations

from email.utils import formatdate
from hashlib import md5

from bot.delivery.catalog import FileInfo


def stream_etag(info: FileInfo) -> str:
    """The ETag of the bot's own stream (from mtime and size, as Starlette's FileResponse)."""
    digest = md5(f"{info.modified}-{info.size}".encode(), usedforsecurity=False).hexdigest()
    return f'"{digest}"'


def nginx_etag(info: FileInfo) -> str:
    """nginx's ETag for a static file: ``"<mtime hex>-<size hex>"`` (ngx_http_set_etag)."""
    return f'"{int(info.modified):x}-{info.size:x}"'


def last_modified(info: FileInfo) -> str:
    """The file's Last-Modified value."""
    return formatdate(info.modified, usegmt=True)
