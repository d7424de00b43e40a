"""One writer for the log file with ``--workers N``: workers send lines, the parent writes them.

Several processes rotating one file lose lines and print "Logging error in Loguru Handler". So
the supervising ``bot serve`` process owns the file (stdlib RotatingFileHandler, one thread at a
time) and listens on a Unix socket named by ``$BOT_LOG_SOCKET``; each worker's file sink is a
``SocketSink`` that sends every formatted line there, length-prefixed.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import shutil
import socket
import struct
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

ENV = "BOT_LOG_SOCKET"
_HEADER = struct.Struct("!I")


class LogCollector:
    """The parent's end: a Unix socket whose every frame is appended to the rotated file."""

    def __init__(self, path: Path, *, max_bytes: int, keep: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = logging.handlers.RotatingFileHandler(
            path, maxBytes=max_bytes, backupCount=keep, encoding="utf-8"
        )
        self._file.terminator = ""
        self._lock = threading.Lock()
        self._dir = tempfile.mkdtemp(prefix="bot-log-")
        self.address = os.path.join(self._dir, "log.sock")
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.address)
        self._server.listen(64)
        self._readers: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, name="log-collector", daemon=True)
        self._acceptor.start()

    def write(self, text: str) -> None:
        """Append one formatted line (the parent's own, or a worker's)."""
        record = logging.makeLogRecord({"msg": text})  # no args: the text is not %-formatted
        with self._lock:
            self._file.emit(record)
            self._file.flush()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return  # closed
            reader = threading.Thread(target=self._read, args=(conn,), daemon=True)
            self._readers.append(reader)
            reader.start()

    def _read(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as stream:
            while header := stream.read(_HEADER.size):
                if len(header) < _HEADER.size:
                    return
                (size,) = _HEADER.unpack(header)
                self.write(stream.read(size).decode("utf-8", "replace"))

    def close(self, timeout: float = 10.0) -> None:
        """After the workers have exited: read what they sent to the end, then close the file."""
        self._server.close()
        for reader in self._readers:
            reader.join(timeout)
        with self._lock:
            self._file.close()
        shutil.rmtree(self._dir, ignore_errors=True)


class SocketSink:
    """A worker's loguru sink: every message (a formatted line) to the collector's socket."""

    def __init__(self, address: str) -> None:
        self._address = address
        self._sock: socket.socket | None = None

    def write(self, message: Any) -> None:
        data = str(message).encode("utf-8")
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self._sock.connect(self._address)
            self._sock.sendall(_HEADER.pack(len(data)) + data)
        except OSError as exc:  # the parent is gone: keep the line on stderr at least
            self._sock = None
            sys.stderr.write(f"log collector unreachable ({exc}): {message}")

    def stop(self) -> None:
        """Close the connection (loguru calls this when the sink is removed)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
