"""`bot admin-password`: twice from a terminal, once from standard input, only a hash kept."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.config import load_settings
from bot.owner.password import parse, verify_password
from tests.conftest import Clock, write_config
from tests.helpers.admin import on_store
from tests.helpers.paths import ROOT

pytestmark = pytest.mark.slow  # runs the real `bot` command


@pytest.fixture
def config(tmp_path: Path, files_dir: Path, state_url: str) -> Path:
    return write_config(tmp_path, state={"url": state_url})


def stored(config: Path) -> str | None:
    return on_store(load_settings(config), Clock(), lambda store: store.owner_password())


def admin_password(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "admin-password", "--config", str(config), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
        check=False,
    )


def test_once_from_standard_input_only_a_slow_hash_is_kept(config: Path) -> None:
    result = admin_password(config, stdin="an owner's secret\n")
    assert result.returncode == 0, result.stderr
    assert "password set" in result.stdout and "/admin" in result.stdout
    hashed = stored(config)
    assert hashed is not None and "secret" not in hashed
    cost, _, _ = parse(hashed)
    assert (cost.ln, cost.r, cost.p) == (17, 8, 1)
    assert verify_password("an owner's secret", hashed)
    assert "secret" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("stdin", "problem"),
    [
        pytest.param("short\n", "at least 8", id="too-short"),
        pytest.param("\n", "is 0 characters", id="empty"),
    ],
)
def test_refused_passwords_change_nothing(config: Path, stdin: str, problem: str) -> None:
    result = admin_password(config, stdin=stdin)
    assert result.returncode == 2 and problem in result.stderr
    assert "Traceback" not in result.stderr
    assert stored(config) is None


def test_off_forgets_the_password(config: Path) -> None:
    assert admin_password(config, stdin="an owner's secret\n").returncode == 0
    result = admin_password(config, "--off")
    assert result.returncode == 0 and "off" in result.stdout
    assert stored(config) is None


# Becomes a session leader, makes the pseudo-terminal (fd 0) its controlling tty, which getpass
# opens as /dev/tty, then runs the command on it.
ON_TTY = (
    "import fcntl, os, sys, termios; os.setsid(); fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
)


def on_a_terminal(config: Path, answers: list[str]) -> tuple[int, str]:
    """Run the command on a pseudo-terminal, typing each answer once its prompt appears."""
    master, slave = os.openpty()
    command = ["-m", "bot", "admin-password", "--config", str(config)]
    process = subprocess.Popen(
        [sys.executable, "-c", ON_TTY, *command],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    os.close(slave)
    output, typed = b"", 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if typed < len(answers) and output.count(b": ") > typed:  # a prompt is waiting
            os.write(master, answers[typed].encode() + b"\r")
            typed += 1
        if not select.select([master], [], [], 1)[0]:
            continue
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the command ended and closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(master)
    return process.wait(30), output.decode("utf-8", "replace")


def test_twice_from_the_terminal(config: Path) -> None:
    code, output = on_a_terminal(config, ["typed on a tty", "typed on a tty"])
    assert code == 0, output
    assert "New password" in output and "same again" in output and "password set" in output
    assert "typed on a tty" not in output  # never echoed
    hashed = stored(config)
    assert hashed is not None and verify_password("typed on a tty", hashed)


def test_two_different_passwords_on_the_terminal_change_nothing(config: Path) -> None:
    code, output = on_a_terminal(config, ["typed on a tty", "typed on a TTY"])
    assert code == 2 and "differ" in output
    assert stored(config) is None
