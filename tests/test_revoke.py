"""Issue #9 seen 12: ``bot revoke`` names the ids, followers and files it does not know (exit 1)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BIG_NAME, SECRET, Clock, Start
from tests.helpers.webhook import ask, get

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def bot(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "revoke", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
        check=False,
    )


def test_seen_12_revoke_names_what_it_does_not_know(
    start: Start, clock: Clock, tmp_path: Path
) -> None:
    """Issue #9 seen 12: an unknown id, file or follower is named and exits 1; known ones revoke."""
    server = start()
    _, path = ask(server, "big")
    config = tmp_path / "config.toml"
    from bot.links import LinkSigner

    known = LinkSigner([SECRET], 600, files=[BIG_NAME], clock=clock).verify(path[3:]).link_id

    unknown_id = bot(config, "deadbeefdeadbeef")
    assert unknown_id.returncode == 1, unknown_id.stdout
    assert "revoked 1 link(s)" not in unknown_id.stdout
    assert "deadbeefdeadbeef" in unknown_id.stderr and "not in the audit trail" in unknown_id.stderr

    no_file = bot(config, "--file", "nope.txt")
    assert no_file.returncode == 1, no_file.stdout
    assert "'nope.txt'" in no_file.stderr and "no such file" in no_file.stderr

    no_user = bot(config, "--user", "o_nobody")
    assert no_user.returncode == 1 and "o_nobody" in no_user.stderr

    assert get(server, path).status_code == 200
    mixed = bot(config, known, "0123456789abcdef")
    assert mixed.returncode == 1
    assert "revoked 1 link(s)" in mixed.stdout and "0123456789abcdef" in mixed.stderr
    assert get(server, path).status_code == 410

    again = bot(config, "--file", BIG_NAME)
    assert again.returncode == 0, again.stderr
    assert "revoked 0 link(s) (1 already revoked)" in again.stdout
