"""Issue #11 deliver 4: hot reload of a real `bot serve` (one worker and two) by SIGHUP / `bot reload`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.app import WorkerApp
from bot.cli.running import note_server, pid_file, running_server
from bot.config import config_text, load_settings
from bot.reload import WorkerStart, outcome_file, reloaded
from tests.conftest import (
    AES_KEY,
    BIG_NAME,
    DEMO_NAME,
    SECRET,
    TOKEN,
    free_port,
    push,
    write_config,
)
from tests.helpers.botproc import BotProcess
from tests.helpers.paths import ROOT
from tests.helpers.processes import running, wait_started
from tests.helpers.waiting import wait_for

pytestmark = pytest.mark.slow

OLD = [{"match": "芝麻开门", "file": DEMO_NAME}, {"match": "Big", "file": BIG_NAME}]
NEW = [*OLD, {"match": ["新词", "fresh"], "file": DEMO_NAME, "style": "anchor"}]
BAD = [*OLD, {"match": "(", "mode": "regex", "file": DEMO_NAME}]
_ids = iter(range(10_000, 99_999))


def configure(folder: Path, files_dir: Path, rules: list[dict[str, Any]], port: int) -> Path:
    return write_config(
        folder,
        keywords=rules,
        server={"port": port, "public_url": f"http://127.0.0.1:{port}"},
        files={"dir": str(files_dir)},
        log={"file": "bot.log"},
        limits={"rate_bytes_per_second": 1_000_000, "links_per_user_per_hour": 0},  # ~3 s download
    )


def ask(url: str, text: str) -> str:
    response = push(url, timestamp=time.time(), msg_id=str(next(_ids)), content=text)
    assert response.status_code == 200, response.text
    return response.text


def bot_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def link_in(text: str) -> str:
    match = re.search(r"/d/[A-Za-z0-9_.\-]+", text)
    assert match, text
    return match.group(0)


def wait_for_rule(url: str, started: float, limit: float = 5.0) -> float:
    """Seconds until the new rule answers; every worker must give it a few times in a row."""
    streak = 0
    while time.monotonic() - started < limit + 10:
        streak = streak + 1 if "/d/" in ask(url, "ＦＲＥＳＨ") else 0
        if streak >= 6:
            return time.monotonic() - started
        time.sleep(0.05)
    pytest.fail("the new rule never answered")


@pytest.mark.parametrize(
    "workers", [pytest.param(1, id="one-worker"), pytest.param(2, id="two-workers")]
)
def test_reload_swaps_rules_keeps_links_and_refuses_a_bad_config(
    tmp_path: Path, files_dir: Path, workers: int
) -> None:
    """Issue #11 deliver 4: new rules within 5 s, in-flight requests finish, links keep working,
    a bad config is refused by `bot reload` (exit 2 + reason) and by SIGHUP (running one kept)."""
    port = free_port()
    config = configure(tmp_path, files_dir, OLD, port)
    with running(config, f"http://127.0.0.1:{port}", workers=workers) as url:
        server = running_server(config)
        assert server is not None and server.port == port
        pid = server.pid
        assert "/d/" not in ask(url, "新词")
        old_link = link_in(ask(url, "芝麻开门"))
        big_link = link_in(ask(url, "Big"))
        got: dict[str, Any] = {}
        streaming = threading.Event()

        def download() -> None:
            with httpx.stream("GET", url + big_link, timeout=30) as response:
                got["status"] = response.status_code
                streaming.set()
                got["body"] = b"".join(response.iter_bytes())

        in_flight = threading.Thread(target=download)
        in_flight.start()
        streaming.wait(10)
        configure(tmp_path, files_dir, NEW, port)
        began = time.monotonic()
        result = bot_cli("reload", "--config", str(config))
        assert result.returncode == 0, result.stderr
        signalled = time.monotonic()  # `bot reload` itself spends ~1-2 s starting Python
        took = wait_for_rule(url, signalled)
        print(
            f"{workers} worker(s): new rule answered {took:.2f}s after the signal, "
            f"{signalled - began:.2f}s in `bot reload`"
        )
        assert took < 5.0
        in_flight.join(30)
        assert got == {"status": 200, "body": (files_dir / BIG_NAME).read_bytes()}
        assert httpx.get(url + old_link, timeout=10).content == (files_dir / DEMO_NAME).read_bytes()
        assert '<a href="' in ask(url, "新词。")

        configure(tmp_path, files_dir, BAD, port)
        refused = bot_cli("reload", "--config", str(config))
        assert refused.returncode == 2
        assert "keywords[2] ('(')" in refused.stderr and "not a valid regex" in refused.stderr
        assert "Value error" not in refused.stderr
        os.kill(pid, signal.SIGHUP)  # straight to the server: it must keep the running config
        log_file = tmp_path / "bot.log"
        wait_for(lambda: log_file.read_text(encoding="utf-8").count("reload refused") >= workers)
        for _ in range(6):
            assert "/d/" in ask(url, "fresh")
        log = (tmp_path / "bot.log").read_text(encoding="utf-8")
        assert "not a valid regex" in log


def test_reload_without_a_server_says_so(tmp_path: Path, files_dir: Path) -> None:
    config = configure(tmp_path, files_dir, OLD, free_port())
    result = bot_cli("reload", "--config", str(config))
    assert result.returncode == 1 and "no running `bot serve`" in result.stderr


def test_serving_from_a_read_only_config_folder_still_starts(tmp_path: Path) -> None:
    """make test-deploy: compose mounts /config read-only; the pid note is skipped, not fatal."""
    folder = tmp_path / "config"
    folder.mkdir()
    config = folder / "config.toml"
    config.write_text("", encoding="utf-8")
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):  # root ignores the mode: make the write fail another way
            (folder / "config.toml.pid").mkdir()
        note_server(config, "127.0.0.1", 8000)
        assert running_server(config) is None and not pid_file(config).is_file()
    finally:
        folder.chmod(0o755)


# --- issue #19 item 6: reload tells the truth; the pid file ----------------------------------

RESTART_KEYS = ["limits.links_per_user_per_hour", "wechat.encoding_aes_key"]


def edit(config: Path, old: str, new: str) -> None:
    text = config.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    config.write_text(text.replace(old, new), encoding="utf-8")


def wait_for_log(path: Path, needle: str, count: int = 1) -> str:
    """The log once ``needle`` is in it ``count`` times (lines land just after the signal)."""
    deadline = time.monotonic() + 15
    while (text := path.read_text(encoding="utf-8")).count(needle) < count:
        assert time.monotonic() < deadline, f"{needle!r} not logged {count} time(s):\n{text}"
        time.sleep(0.05)
    return text


@pytest.mark.parametrize(
    "workers", [pytest.param(1, id="one-worker"), pytest.param(2, id="two-workers")]
)
def test_seen_6_reload_names_every_changed_key_that_waits_for_a_restart(
    tmp_path: Path, files_dir: Path, workers: int
) -> None:
    """Issue #19 seen 6: an edit to [wechat], [links] ttl_seconds or [limits] got "asked the bot
    to reload", exit 0 and a log of "reloaded … rule(s)", while the old values stayed."""
    port = free_port()
    config = configure(tmp_path, files_dir, OLD, port)
    log = tmp_path / "bot.log"
    with running(config, f"http://127.0.0.1:{port}", workers=workers) as url:
        assert "（10 分钟内有效）" in ask(url, "芝麻开门")
        edit(config, "ttl_seconds = 600", "ttl_seconds = 1200")  # a reload applies this one
        edit(config, "links_per_user_per_hour = 0", "links_per_user_per_hour = 5")
        edit(config, f'encoding_aes_key = "{AES_KEY}"', f'encoding_aes_key = "{"B" * 43}"')
        result = bot_cli("reload", "--config", str(config))
        assert result.returncode == 3, (result.stdout, result.stderr)
        named = result.stderr.rsplit("restart: ", 1)[-1].strip()
        assert named == ", ".join(RESTART_KEYS)
        assert "asked the bot" not in result.stdout + result.stderr
        # One line from the supervisor (if any) and one from each worker once it has swapped.
        per_reload = 1 if workers == 1 else workers + 1
        warned = "not applied until a restart: " + ", ".join(RESTART_KEYS)
        text = wait_for_log(log, warned, count=per_reload)
        assert "WARNING" in next(line for line in text.splitlines() if "until a restart" in line)
        for _ in range(6):  # every worker has swapped: each answer carries the new lifetime
            assert "（20 分钟内有效）" in ask(url, "芝麻开门")
        server = running_server(config)
        assert server is not None
        os.kill(server.pid, signal.SIGHUP)  # straight to the server: the log says it too
        wait_for_log(log, warned, count=2 * per_reload)
        edit(config, f'encoding_aes_key = "{"B" * 43}"', f'encoding_aes_key = "{AES_KEY}"')
        edit(config, "links_per_user_per_hour = 5", "links_per_user_per_hour = 0")
        again = bot_cli("reload", "--config", str(config))
        assert again.returncode == 0, again.stderr
        assert f"reloaded {config}" in again.stdout and "2 rule(s)" in again.stdout


@pytest.mark.parametrize(
    "workers", [pytest.param(1, id="one-worker"), pytest.param(2, id="two-workers")]
)
def test_seen_6_the_pid_file_goes_with_a_clean_stop(
    tmp_path: Path, files_dir: Path, workers: int
) -> None:
    """Issue #19 seen 6: `config.toml.pid` survived a clean stop (uvicorn re-raises SIGTERM)."""
    port = free_port()
    config = configure(tmp_path, files_dir, OLD, port)
    bot = BotProcess(config, port, workers=workers).wait_ready()
    assert pid_file(config).is_file()
    assert bot_cli("reload", "--config", str(config)).returncode == 0  # notes its outcome too
    bot.stop()
    assert bot.process.returncode in (0, -signal.SIGTERM), bot.text()
    assert not pid_file(config).exists() and not outcome_file(config).exists()


def stranger() -> subprocess.Popen[bytes]:
    """A process SIGHUP would kill, as a reused pid after a crash or a reboot would be."""
    return subprocess.Popen(["sleep", "60"])


@pytest.mark.parametrize(
    "note",
    [
        pytest.param("old", id="a-plain-pid-as-bot-serve-wrote-it"),
        pytest.param("reused", id="the-pid-of-another-start"),
        pytest.param("not-serve", id="the-right-process-but-not-bot-serve"),
    ],
)
def test_seen_6_a_stale_pid_file_signals_nobody(tmp_path: Path, files_dir: Path, note: str) -> None:
    """Issue #19 seen 6: `bot reload` sent SIGHUP to whatever live process the pid file named:
    a `sleep` was killed this way."""
    config = configure(tmp_path, files_dir, OLD, free_port())
    victim = stranger()
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
        started = Path(f"/proc/{victim.pid}/stat").read_text().rpartition(")")[2].split()[19]
        started = {"reused": str(int(started) + 1)}.get(note, started)
        fields = {"pid": victim.pid, "boot": boot, "started": started, "port": 8000}
        text = f"{victim.pid}\n" if note == "old" else json.dumps(fields)
        pid_file(config).write_text(text, encoding="ascii")
        result = bot_cli("reload", "--config", str(config))
        assert result.returncode == 1
        assert f"names pid {victim.pid}" in result.stderr and "no signal sent" in result.stderr
        with pytest.raises(subprocess.TimeoutExpired):
            victim.wait(0.5)  # a SIGHUP would have ended it by now
    finally:
        victim.kill()
        victim.wait()


def test_seen_6_a_second_serve_on_the_same_config_is_refused_naming_the_first(
    tmp_path: Path, files_dir: Path
) -> None:
    """Issue #19 seen 6: a second `bot serve` on the same config overwrote the pid file without
    a warning, and the first server could no longer be reloaded."""
    port, other_port = free_port(), free_port()
    config = configure(tmp_path, files_dir, OLD, port)
    first = BotProcess(config, port).wait_ready()
    try:
        second = BotProcess(config, other_port)
        deadline = time.monotonic() + 30
        while second.process.poll() is None:
            if time.monotonic() > deadline:
                second.stop()
                pytest.fail(f"the second `bot serve` kept running:\n{second.text()[-2000:]}")
            time.sleep(0.05)
        assert second.process.returncode == 1
        said = second.text()
        assert "already served" in said and f"pid {first.process.pid} on 127.0.0.1:{port}" in said
        note = json.loads(pid_file(config).read_text(encoding="ascii"))
        assert (note["pid"], note["port"]) == (first.process.pid, port)
        result = bot_cli("reload", "--config", str(config))
        assert result.returncode == 0 and f":{port})" in result.stdout, result.stderr
    finally:
        first.stop()


def test_what_a_reload_applies_and_what_waits_for_a_restart(
    tmp_path: Path, files_dir: Path
) -> None:
    """LIVE keys are applied; every other changed key is named (pure, no server)."""
    config = configure(tmp_path, files_dir, OLD, 8000)
    running = load_settings(config)
    edit(config, "ttl_seconds = 600", "ttl_seconds = 900")
    edit(config, "rate_bytes_per_second = 1000000", "rate_bytes_per_second = 5")
    settings, outcome = reloaded(running, config)
    assert settings is not None and settings.links.ttl_seconds == 900
    assert settings.limits.rate_bytes_per_second == 1_000_000  # kept until a restart
    assert (outcome.rules, outcome.restart, outcome.error) == (
        2,
        ("limits.rate_bytes_per_second",),
        "",
    )


# --- a worker started after an edit (found by #17's done-when runs) ---------------------------


def _parent(stat: Path) -> int:
    """The parent pid in a /proc/<pid>/stat (0 when the process ended meanwhile)."""
    try:
        return int(stat.read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def workers_of(supervisor: int) -> list[int]:
    """The worker processes of a `bot serve --workers 2` (by the parent pid in /proc/<pid>/stat)."""
    workers = [
        int(stat.parent.name)
        for stat in Path("/proc").glob("[0-9]*/stat")
        if _parent(stat) == supervisor
        and "spawn_main" in (stat.parent / "cmdline").read_text(errors="replace")
    ]
    assert len(workers) == 2, workers
    return workers


def restart_every_worker(supervisor: int, log: Path) -> None:
    """SIGKILL each worker (uvicorn's supervisor starts another) and wait for their successors."""
    started = log.read_text(encoding="utf-8").count("Application startup complete.")
    workers = workers_of(supervisor)
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    wait_for_log(log, "Application startup complete.", count=started + len(workers))


def test_a_worker_started_after_an_edit_runs_what_its_siblings_run(
    tmp_path: Path, files_dir: Path
) -> None:
    """Each worker of `bot serve --workers N` read config.toml as it started, so one uvicorn
    started again after a crash ran an edit nobody had reloaded, restart-only keys included."""
    port = free_port()
    config = configure(tmp_path, files_dir, OLD, port)
    log = tmp_path / "bot.log"
    with running(config, f"http://127.0.0.1:{port}", workers=2) as url:
        server = running_server(config)
        assert server is not None
        edit(config, "ttl_seconds = 600", "ttl_seconds = 1200")  # applied by a reload only
        edit(config, "links_per_user_per_hour = 0", "links_per_user_per_hour = 1")  # a restart
        restart_every_worker(server.pid, log)
        for _ in range(4):  # one follower: a quota of 1 would refuse all but the first
            assert "（10 分钟内有效）" in ask(url, "芝麻开门")
        assert bot_cli("reload", "--config", str(config)).returncode == 3
        restart_every_worker(server.pid, log)
        for _ in range(4):  # the reload's ttl; still no quota (it waits for a restart)
            assert "（20 分钟内有效）" in ask(url, "芝麻开门")


def test_workers_hold_no_secret_in_their_environment(tmp_path: Path, files_dir: Path) -> None:
    """`bot serve --workers N` handed its workers the config text in their environment, secrets
    included: readable in /proc/<pid>/environ and inherited by any child a worker starts. The
    text now reaches each worker through the supervisor's pipe; a reload still reaches workers
    started after it (`test_a_worker_started_after_an_edit_runs_what_its_siblings_run`)."""
    port = free_port()
    config = configure(tmp_path, files_dir, OLD, port)
    with running(config, f"http://127.0.0.1:{port}", workers=2) as url:
        assert "/d/" in ask(url, "芝麻开门")
        server = running_server(config)
        assert server is not None
        edit(config, "ttl_seconds = 600", "ttl_seconds = 1200")
        assert bot_cli("reload", "--config", str(config)).returncode == 0
        restart_every_worker(server.pid, tmp_path / "bot.log")  # started after the reload
        assert "（20 分钟内有效）" in ask(url, "芝麻开门")
        for pid in workers_of(server.pid):
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            assert b"[links]" not in environ
            for secret in (SECRET, TOKEN, AES_KEY):
                assert secret.encode() not in environ, f"worker {pid} holds {secret[:4]}…"


def test_uvicorn_factory_reads_the_config_named_in_the_environment(
    tmp_path: Path, files_dir: Path
) -> None:
    """`uvicorn --factory bot.app:app_from_environment` serves the file `$BOT_CONFIG` names."""
    port = free_port()
    config = configure(tmp_path, files_dir, NEW, port)
    command = ["-m", "uvicorn", "bot.app:app_from_environment", "--factory", "--port", str(port)]
    proc = subprocess.Popen(
        [sys.executable, *command],
        env={**os.environ, "PYTHONPATH": str(ROOT), "BOT_CONFIG": str(config)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_started(url, proc)
        assert "/d/" in ask(url, "fresh")  # a rule only this config has
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_what_a_worker_is_handed_never_shows_the_config_text(tmp_path: Path) -> None:
    """The config text the supervisor hands its workers holds the secrets: no repr shows it
    (uvicorn's Config, a log line or a traceback's locals could print the app factory)."""
    text = config_text(write_config(tmp_path))
    assert text is not None and SECRET in text
    start = WorkerStart(tmp_path / "config.toml", text, text)
    for shown in (repr(start), repr(WorkerApp(start))):
        assert SECRET not in shown and TOKEN not in shown and "[links]" not in shown
