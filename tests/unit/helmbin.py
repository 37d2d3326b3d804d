"""The real helm binaries the unit tests run (built by hack/build-tools.sh)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "vineyard"
BIN = REPO / ".cache" / "bin"
HELM_MAJORS = (3, 4)


def helm_path(major: int) -> str:
    """The pinned helm of that major version (hack/build-tools.sh: helm is v4, helm3 is v3)."""
    name = "helm" if major == 4 else f"helm{major}"
    if (BIN / name).exists():
        return str(BIN / name)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found: run `make tools` (hack/build-tools.sh) first")
    return found
