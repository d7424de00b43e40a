"""`make test-deploy` is wired into CI, and what it runs is the shipped product (issue #10 Deliver 7)."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from deploy.precheck import NEEDS, missing, report
from deploy.stack import REPLICAS, fixed_subnets, loopback_compose

ROOT = Path(__file__).resolve().parent.parent
OFFICIAL = {"python:3.11-slim", "nginx:1.27", "redis:7"}


def test_ci_runs_the_deployment_check_after_the_tests() -> None:
    commands = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line]
    assert commands[-2:] == ["make test", "make test-deploy"]


def deploy_debs(makefile: str) -> set[str]:
    """The packages in the Makefile's DEPLOY_DEBS (continued lines included)."""
    match = re.search(r"^DEPLOY_DEBS := ((?:.*\\\n)*.*)$", makefile, re.MULTILINE)
    assert match
    return set(match.group(1).replace("\\\n", " ").split())


def test_deploy_debs_are_installed_by_test_deploy() -> None:
    makefile = (ROOT / "Makefile").read_text()
    debs = deploy_debs(makefile)
    assert {"podman", "podman-compose", "debootstrap", "runc", "buildah"} <= debs
    assert 'TEST_DEBS="$(DEPLOY_DEBS)" sh .ci/ensure-debs' in makefile


def test_deploy_debs_give_every_command_the_precheck_needs() -> None:
    """#19 seen 10: netavark execs iptables, which no install step gave; containers stayed Created."""
    debs = deploy_debs((ROOT / "Makefile").read_text())
    assert {"iptables", "nftables", "netavark", "aardvark-dns"} <= {n.package for n in NEEDS}
    assert {"iptables", "ip6tables", "nft"} <= {n.command for n in NEEDS}
    assert {need.package for need in NEEDS} - debs == set()


def test_test_deploy_runs_the_precheck_before_any_container() -> None:
    recipe = (ROOT / "Makefile").read_text().split("\ntest-deploy: $(STAMP)\n", 1)[1]
    steps = [line.strip() for line in recipe.split("\n\n", 1)[0].splitlines()]
    precheck = steps.index("$(BIN)/python -m deploy.precheck")
    assert "ensure-debs" in steps[precheck - 1]  # after the installs, before standins and build
    assert all("podman" not in step and "standins" not in step for step in steps[:precheck])


def test_precheck_names_each_missing_command_and_its_package(tmp_path: Path) -> None:
    """On a machine without iptables the precheck says so, with the package to install."""
    for need in NEEDS:
        if need.package != "iptables":
            tool = tmp_path / need.command
            tool.write_text("#!/bin/sh\n")
            tool.chmod(0o755)
    absent = missing(str(tmp_path), helper_dirs=())
    assert [n.command for n in absent] == ["iptables", "ip6tables"]
    assert report(absent).splitlines() == [
        "missing: iptables (Debian package iptables): "
        "netavark's firewall driver: NAT and port forwards (IPv4)",
        "missing: ip6tables (Debian package iptables): "
        "netavark's firewall driver, IPv6 (run on every setup)",
        "install them: apt-get install -y iptables",
    ]
    assert missing(str(tmp_path / "nowhere"), helper_dirs=()) == list(NEEDS)


def test_the_product_names_only_official_images() -> None:
    """The stand-ins stay in deploy/: the Dockerfile and compose file name the official images."""
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    bases = set(re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE))
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text(encoding="utf-8"))
    images = {s["image"] for s in compose["services"].values() if "build" not in s}
    assert bases | images <= OFFICIAL
    for standin in (ROOT / "deploy" / "standins").glob("*.Containerfile"):
        assert "wechat-link-bot-standin/bookworm" in standin.read_text()


def test_the_tested_stack_differs_from_the_shipped_one_only_in_ports_and_replicas() -> None:
    shipped = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text(encoding="utf-8"))
    tested = loopback_compose(copy.deepcopy(shipped), 18080, 18443)
    nginx, bot = tested["services"]["nginx"], tested["services"]["bot"]
    assert nginx.pop("ports") == ["127.0.0.1:18080:80", "127.0.0.1:18443:443"]
    assert bot.pop("deploy") == {"replicas": REPLICAS} and REPLICAS == 2
    shipped["services"]["nginx"].pop("ports")
    shipped["services"]["bot"].pop("deploy", None)
    assert tested == shipped


@pytest.mark.parametrize(
    ("networks", "subnets"),
    [
        pytest.param(None, set(), id="no-networks"),
        pytest.param({"backend": None}, set(), id="no-ipam"),
        pytest.param(
            {"edge": {"ipam": {"config": [{"subnet": "172.28.0.0/24"}]}}, "backend": None},
            {"172.28.0.0/24"},
            id="one-fixed",
        ),
    ],
)
def test_fixed_subnets_are_found_for_the_preflight(
    networks: dict[str, object] | None, subnets: set[str]
) -> None:
    """A stale network holding a pinned subnet is named before podman-compose fails on it."""
    assert fixed_subnets({"services": {}, "networks": networks}) == subnets
