"""Locked installs: uv.lock pins every dependency, and .venv and the image install exactly it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "uv.lock"
UV = ROOT / ".tools" / "uv" / "bin" / "uv"
PROJECT = "wechat-link-bot"


def locked() -> dict[str, list[dict[str, Any]]]:
    """Package name -> its [[package]] tables in uv.lock (more than one where the resolution
    forks by Python version, e.g. networkx under moto: one version per fork)."""
    if not LOCK.is_file():
        pytest.fail("uv.lock is missing: run `make lock` and commit it")
    packages: dict[str, list[dict[str, Any]]] = {}
    for package in tomllib.loads(LOCK.read_text(encoding="utf-8"))["package"]:
        packages.setdefault(canonicalize_name(package["name"]), []).append(package)
    return packages


def declared() -> list[Requirement]:
    """Every requirement in pyproject.toml: the runtime dependencies and the dev extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = project["dependencies"] + project["optional-dependencies"]["dev"]
    return [Requirement(name) for name in names]


def makefile_variable(name: str) -> str:
    match = re.search(rf"^{name} := (.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert match, f"Makefile sets no {name}"
    return match.group(1).strip()


def test_every_dependency_is_pinned_with_hashes_from_pypi() -> None:
    """Issue #10 seen 8: every dependency was `>=` with no lock file."""
    packages = locked()
    for requirement in declared():
        versions = packages.get(canonicalize_name(requirement.name))
        assert versions, f"{requirement.name} is not in uv.lock: run `make lock`"
        for package in versions:
            assert requirement.specifier.contains(package["version"], prereleases=True)
    for name, package in ((n, p) for n, versions in packages.items() for p in versions):
        if name == PROJECT:
            assert package["source"] == {"editable": "."}
            continue
        assert package["source"] == {"registry": "https://pypi.org/simple"}, name
        artifacts = package.get("wheels", []) + ([package["sdist"]] if "sdist" in package else [])
        assert artifacts, f"{name} has no artifact in uv.lock"
        for artifact in artifacts:
            assert re.fullmatch(r"sha256:[0-9a-f]{64}", artifact["hash"]), (name, artifact)


def test_lock_agrees_with_pyproject() -> None:
    """Issue #10 seen 8: pyproject.toml and uv.lock disagreeing fails `make test`, offline."""
    if not UV.is_file():
        pytest.fail(f"{UV} is missing: run `make .venv/.installed-stamp`")
    env = dict(os.environ, UV_PYTHON_DOWNLOADS="never", UV_PYTHON=sys.executable)
    done = subprocess.run(
        [str(UV), "lock", "--check", "--offline"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def test_the_environment_holds_exactly_the_locked_versions() -> None:
    """Issue #10 seen 8: the .venv that runs these tests was installed from uv.lock."""
    packages = locked()
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    assert installed, "no distributions found"
    for name, version in installed.items():
        assert name in packages, f"{name} {version} is installed but not locked"
        versions = [p["version"] for p in packages[name]]
        assert version in versions, (name, version, versions)
    for requirement in declared():
        if requirement.marker is None or requirement.marker.evaluate():
            assert canonicalize_name(requirement.name) in installed, requirement.name


def test_make_and_the_image_install_from_the_lock() -> None:
    """Issue #10 seen 8: make run/test and docker/Dockerfile install the locked versions."""
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install -e" not in makefile and "pip install --quiet -e" not in makefile
    assert re.search(r"^\t\$\(UV\) sync --locked --extra dev", makefile, re.MULTILINE)
    assert re.search(r"^test: lock-check ", makefile, re.MULTILINE)
    assert re.search(r"^run: lock-check ", makefile, re.MULTILINE)
    assert re.search(r"^lock: ", makefile, re.MULTILINE)
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert "COPY pyproject.toml uv.lock" in dockerfile
    assert "uv sync --frozen --no-editable" in dockerfile
    assert "pip install ." not in dockerfile
    uv_version = makefile_variable("UV_VERSION")
    assert f"ARG UV_VERSION={uv_version}\n" in dockerfile, "Dockerfile and Makefile differ on uv"
    assert "!uv.lock" in (ROOT / ".dockerignore").read_text().splitlines()
