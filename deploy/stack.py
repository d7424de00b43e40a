"""The shipped compose stack, up under podman-compose from a copy of docker/ for one test run.

The copy changes only what a test machine needs: nginx publishes on free 127.0.0.1 ports instead
of 80/443, the bot runs as two replicas (both behind the `bot` name nginx proxies to), and
docker/config holds a test config. Everything else (images, commands, environment, volumes,
nginx.conf) is the shipped file. The images must exist: `make test-deploy` builds them first.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
REPLICAS = 2


def run(
    args: list[str], *, timeout: float = 300, check: bool = True, stdin: str | None = None
) -> str:
    """Run a podman / podman-compose command; its stdout, or an error with both streams."""
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, input=stdin, check=False
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} -> {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done.stdout


def loopback_compose(shipped: dict[str, Any], http_port: int, https_port: int) -> dict[str, Any]:
    """The shipped compose file with loopback ports and two bot replicas."""
    services = shipped["services"]
    services["nginx"]["ports"] = [f"127.0.0.1:{http_port}:80", f"127.0.0.1:{https_port}:443"]
    services["bot"].setdefault("deploy", {})["replicas"] = REPLICAS
    return shipped


@dataclass
class Stack:
    """One running copy of the stack: its folder, project name and public URL."""

    folder: Path
    project: str
    http_port: int
    https_port: int
    files: Path = field(init=False)

    def __post_init__(self) -> None:
        self.files = self.folder / "files"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def config(self) -> Path:
        return self.folder / "docker" / "config" / "config.toml"

    def prepare(self, write_config: Any) -> None:
        """Copy docker/ and files/ into the folder; the test config from ``write_config(dir)``."""
        shutil.copytree(DOCKER, self.folder / "docker")
        shutil.copytree(ROOT / "files", self.files)
        shipped = yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))
        compose = loopback_compose(shipped, self.http_port, self.https_port)
        (self.folder / "docker" / "compose.yaml").write_text(yaml.safe_dump(compose))
        write_config(self.config.parent)
        for path in [self.folder, *self.folder.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)  # readable by the image's uid 10001

    def compose(self, *args: str, timeout: float = 600) -> str:
        compose_file = str(self.folder / "docker" / "compose.yaml")
        return run(
            ["podman-compose", "-p", self.project, "-f", compose_file, *args], timeout=timeout
        )

    def up(self) -> None:
        compose = yaml.safe_load((self.folder / "docker" / "compose.yaml").read_text())
        taken = subnets_in_use(fixed_subnets(compose))
        if taken:  # podman would refuse to create the network, with a less helpful message
            raise RuntimeError(f"subnets already used by podman networks {taken}: remove them")
        self.create_pinned_networks(compose)
        self.compose("up", "-d", "--no-build")

    def create_pinned_networks(self, compose: dict[str, Any]) -> None:
        """Networks whose subnet the compose file pins, made first as docs/deploy.md says.

        podman-compose 1.0 ignores ``ipam`` (the network would get any subnet, and the bot,
        trusting only 172.28.0.0/24, would take nginx for the client); it uses a network that
        exists under its ``<project>_<name>`` with the project's labels (``down`` removes it).
        """
        for name, network in (compose.get("networks") or {}).items():
            for entry in ((network or {}).get("ipam") or {}).get("config", []):
                if "subnet" in entry:
                    run(
                        ["podman", "network", "create", "--subnet", entry["subnet"],
                         "--label", f"io.podman.compose.project={self.project}",
                         "--label", f"com.docker.compose.project={self.project}",
                         f"{self.project}_{name}"],
                    )  # fmt: skip

    def addresses(self, container: str) -> set[str]:
        """A container's addresses on its networks."""
        template = "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}"
        return set(run(["podman", "inspect", "--format", template, container]).split())

    def down(self) -> None:
        self.compose("down", "-v", "--timeout", "5")
        label = f"label=io.podman.compose.project={self.project}"
        for kind in ("volume", "network"):  # podman-compose 1.0 leaves networks behind
            names = run(["podman", kind, "ls", "-q", "--filter", label], check=False).split()
            if names:
                run(["podman", kind, "rm", "-f", *names], check=False)

    def container(self, service: str, number: int = 1) -> str:
        return f"{self.project}_{service}_{number}"

    def replicas(self) -> list[str]:
        return [self.container("bot", n) for n in range(1, REPLICAS + 1)]

    def bot(self, *args: str, replica: int = 1) -> str:
        """The `bot` command inside a bot replica, with the stack's config."""
        return run(["podman", "exec", self.container("bot", replica), "bot", *args], timeout=60)

    def logs(self, container: str) -> str:
        done = subprocess.run(
            ["podman", "logs", container], capture_output=True, text=True, timeout=60, check=False
        )
        return done.stdout + done.stderr

    def wait_healthy(self, timeout: float = 180, steady: float = 12) -> None:
        """Poll /healthz through nginx until it has answered 200 for ``steady`` seconds on end.

        podman 4.3 ignores service_healthy and HEALTHCHECK. One 200 is not enough: a bot still
        starting refuses nginx, and each nginx worker then skips that upstream for its
        fail_timeout (10 s), so steady must outlast it.
        """
        deadline = time.monotonic() + timeout
        last, since = "no answer", None
        while time.monotonic() < deadline:
            try:
                response = httpx.get(f"{self.url}/healthz", timeout=5)
                last = f"{response.status_code} {response.text[:200]}"
                ok = response.status_code == 200
            except httpx.HTTPError as exc:
                last, ok = repr(exc), False
            now = time.monotonic()
            since = (since or now) if ok else None
            if since is not None and now - since >= steady:
                return
            time.sleep(0.5)
        raise TimeoutError(f"{self.url}/healthz not steadily 200 within {timeout} s: {last}")

    def report(self) -> str:
        """The tail of every container's log, for a failing run."""
        names = run(
            [
                "podman",
                "ps",
                "-a",
                "--filter",
                f"label=io.podman.compose.project={self.project}",
                "--format",
                "{{.Names}} {{.Status}}",
            ],
            check=False,
        )
        parts = [names]
        for line in names.splitlines():
            name = line.split()[0]
            parts.append(f"--- {name}\n" + "\n".join(self.logs(name).splitlines()[-40:]))
        return "\n".join(parts)


def fixed_subnets(compose: dict[str, Any]) -> set[str]:
    """The subnets the compose file's networks pin (ipam.config[].subnet)."""
    networks = (compose.get("networks") or {}).values()
    return {
        entry["subnet"]
        for network in networks
        for entry in ((network or {}).get("ipam") or {}).get("config", [])
        if "subnet" in entry
    }


def subnets_in_use(wanted: set[str]) -> dict[str, str]:
    """Existing podman networks (name -> subnet) holding one of ``wanted`` (a stale run's)."""
    if not wanted:
        return {}
    taken = {}
    for name in run(["podman", "network", "ls", "--format", "{{.Name}}"]).split():
        for network in json.loads(run(["podman", "network", "inspect", name])):
            for subnet in network.get("subnets") or []:
                if subnet.get("subnet") in wanted:
                    taken[name] = subnet["subnet"]
    return taken


def environment_ready() -> None:
    """podman's settings for this machine come from deploy/containers.conf."""
    os.environ.setdefault("CONTAINERS_CONF", str(Path(__file__).with_name("containers.conf")))
