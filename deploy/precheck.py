"""Before `make test-deploy` starts a container: every command podman and its network stack call."""

# On a fresh machine podman ran, then every container stayed "Created": `netavark: No such file
# or directory` was netavark failing to exec iptables, which Debian's podman only suggests.
# netavark (the network backend deploy/containers.conf picks) sets up each network's NAT and
# port forwards with its firewall driver: iptables and ip6tables (netavark 1.4, bookworm), or
# nft (the nftables driver, netavark 1.9 on); aardvark-dns answers the containers' names.

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Need:
    """A command the deployment check runs, directly or through podman, and its Debian package."""

    command: str
    package: str
    why: str


NEEDS = (
    Need("podman", "podman", "runs the stack"),
    Need("podman-compose", "podman-compose", "reads docker/compose.yaml"),
    Need("runc", "runc", "the OCI runtime deploy/containers.conf picks"),
    Need("netavark", "netavark", "podman's network backend"),
    Need("aardvark-dns", "aardvark-dns", "container names on every network (netavark runs it)"),
    Need("iptables", "iptables", "netavark's firewall driver: NAT and port forwards (IPv4)"),
    Need("ip6tables", "iptables", "netavark's firewall driver, IPv6 (run on every setup)"),
    Need("nft", "nftables", "netavark's nftables firewall driver (netavark 1.9 and later)"),
)
# Where podman looks for netavark and aardvark-dns (containers.conf helper_binaries_dir), and
# where Debian puts iptables when root's PATH is not the shell's.
HELPER_DIRS = (
    "/usr/local/libexec/podman",
    "/usr/local/lib/podman",
    "/usr/libexec/podman",
    "/usr/lib/podman",
    "/usr/sbin",
    "/sbin",
)


def missing(path: str | None = None, helper_dirs: tuple[str, ...] = HELPER_DIRS) -> list[Need]:
    """The needs whose command is on neither ``path`` (default: $PATH) nor a helper dir."""
    search = os.pathsep.join(
        [path if path is not None else os.environ.get("PATH", ""), *helper_dirs]
    )
    return [need for need in NEEDS if shutil.which(need.command, path=search) is None]


def report(absent: list[Need]) -> str:
    """What to install, one line a command, then the apt-get line."""
    lines = [f"missing: {n.command} (Debian package {n.package}): {n.why}" for n in absent]
    packages = " ".join(dict.fromkeys(n.package for n in absent))
    return "\n".join([*lines, f"install them: apt-get install -y {packages}"])


def main() -> int:
    """Exit 1 naming every missing command and its package, else 0."""
    absent = missing()
    if absent:
        print(report(absent), file=sys.stderr)
        return 1
    print(f"precheck ok: {', '.join(n.command for n in NEEDS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
