"""The pinned helm binaries (hack/build-tools.sh: `helm` is v4, `helm3` is v3), a helm home of
a test's own, and helm runs."""
from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.support.paths import BIN

HELM_MAJORS = (3, 4)
#: Where hack/build-tools.sh puts each major version.
HELM_BINARIES = {3: BIN / "helm3", 4: BIN / "helm"}
HELM = HELM_BINARIES[4]
HELM3 = HELM_BINARIES[3]


def helm_binary(major: int = 4) -> str:
    """The pinned helm of that major version: the built one, else the one on PATH by that
    name; the test fails when there is neither."""
    path = HELM_BINARIES[major]
    if path.exists():
        return str(path)
    found = shutil.which(path.name)
    if found is None:
        pytest.fail(f"{path.name} not found: run `make tools` (hack/build-tools.sh) first")
    return found


def tools_env() -> dict[str, str]:
    """os.environ with the built tools first on PATH."""
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def isolated_helm_env(base: Mapping[str, str], home: Path) -> dict[str, str]:
    """`base` with helm's config, cache and data under `home`: repositories added and
    registries logged in to there change nothing outside it."""
    home.mkdir(parents=True, exist_ok=True)
    return {**base,
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_DATA_HOME": str(home / "data"),
            "HELM_REPOSITORY_CONFIG": str(home / "config" / "repositories.yaml"),
            "HELM_REPOSITORY_CACHE": str(home / "cache" / "repository"),
            "HELM_REGISTRY_CONFIG": str(home / "config" / "registry.json")}


def run_helm(env: Mapping[str, str], *args: str, major: int = 4, check: bool = True,
             timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """`helm <args>` with the pinned binary of that major version; output captured."""
    result = subprocess.run([helm_binary(major), *args], env=dict(env), text=True,
                            capture_output=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}")
    return result
