"""Where the repository's files are, seen from the tests."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
NGINX_CONF = DOCKER / "nginx.conf"
