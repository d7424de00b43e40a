"""A real S3 API on a free port (moto's server mode) and a bot config that delivers from it."""

from __future__ import annotations

import http.server
import logging
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from tests.conftest import BIG_NAME, DEMO_NAME, write_config

ACCESS_KEY_ID = "AKIABOT13TESTKEYID42"
SECRET_ACCESS_KEY = "bot13-s3-secret-never-logged-7f3a9c"
PREFIX = "dl"
REGION = "us-east-1"


@dataclass
class S3Server:
    """moto's S3 in this process; ``stop`` makes the bucket go away for the bot."""

    endpoint: str
    server: ThreadedMotoServer

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
        )

    def stop(self) -> None:
        self.server.stop()


def start_s3() -> S3Server:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    # Port 0: the server binds a free port itself (moto's start waits forever if its bind fails,
    # as a port picked here could be taken by another test process before it binds).
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    starting = threading.Thread(target=server.start, daemon=True)  # its wait has no timeout
    starting.start()
    starting.join(15)
    if starting.is_alive():
        pytest.fail("moto's S3 server did not start within 15 s")
    host, port = server.get_host_and_port()
    return S3Server(f"http://{host}:{port}", server)


@dataclass
class Bucket:
    """A fresh bucket holding the test files under ``dl/``."""

    name: str
    s3: S3Server
    files: dict[str, bytes]

    def put(self, name: str, body: bytes) -> None:
        self.s3.client().put_object(Bucket=self.name, Key=f"{PREFIX}/{name}", Body=body)
        self.files[name] = body

    def delete(self, name: str) -> None:
        self.s3.client().delete_object(Bucket=self.name, Key=f"{PREFIX}/{name}")


def make_bucket(s3: S3Server) -> Bucket:
    """Upload the demo files with boto3, as an owner would."""
    bucket = Bucket(f"bot-files-{uuid.uuid4().hex[:12]}", s3, {})
    s3.client().create_bucket(Bucket=bucket.name)
    bucket.put(DEMO_NAME, "使用说明：演示文件（对象存储）\n".encode())
    bucket.put(BIG_NAME, os.urandom(3 * 1024 * 1024 + 17))
    return bucket


def s3_config(tmp: Path, bucket: Bucket, *, keys_in_file: bool = True, **sections: Any) -> Path:
    """A config delivering from ``bucket``; no files folder exists at all (nothing local)."""
    s3 = {
        "endpoint_url": bucket.s3.endpoint,
        "region": REGION,
        "bucket": bucket.name,
        "prefix": PREFIX,
        "addressing_style": "path",
        **sections.pop("s3", {}),
    }
    if keys_in_file:
        s3 |= {"access_key_id": ACCESS_KEY_ID, "secret_access_key": SECRET_ACCESS_KEY}
    files = {"delivery": "s3", "dir": "no-such-folder", **sections.pop("files", {})}
    return write_config(tmp, files=files, s3=s3, **sections)


@pytest.fixture(name="s3_server", scope="module")
def s3_server_fixture() -> Iterator[S3Server]:
    """One moto S3 server per test module."""
    server = start_s3()
    yield server
    server.stop()


@pytest.fixture(name="bucket")
def bucket_fixture(s3_server: S3Server) -> Bucket:
    """A fresh bucket with the demo files for each test."""
    return make_bucket(s3_server)


class _Refuse(http.server.BaseHTTPRequestHandler):
    """Answers every request as a bucket that refuses the key pair (403 AccessDenied)."""

    BODY = b'<?xml version="1.0"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>'

    def _refuse(self, body: bool) -> None:
        self.send_response(403)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(self.BODY)))
        self.end_headers()
        if body:
            self.wfile.write(self.BODY)

    def do_HEAD(self) -> None:
        self._refuse(body=False)

    def do_GET(self) -> None:
        self._refuse(body=True)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def refusing_bucket() -> Iterator[str]:
    """The endpoint URL of an S3-speaking server that answers 403 AccessDenied to everything."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refuse)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
