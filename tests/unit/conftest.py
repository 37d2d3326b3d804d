"""Fixtures for vineyard_helm's unit tests: the real helm binaries, no cluster."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.helm import HELM_MAJORS, helm_binary
from tests.unit.unreachable_cluster import write_unreachable_kubeconfig


@pytest.fixture(params=HELM_MAJORS, ids=lambda major: f"helm{major}")
def helm(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once with Helm 3 and once with Helm 4."""
    return helm_binary(int(request.param))


@pytest.fixture
def helm4() -> str:
    return helm_binary(4)


@pytest.fixture
def on_path_helm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, helm: str) -> str:
    """Make `helm` on PATH (and nothing in $VINEYARD_HELM_BINARY) the given binary."""
    link_dir = tmp_path / "path-bin"
    link_dir.mkdir()
    (link_dir / "helm").symlink_to(helm)
    monkeypatch.setenv("PATH", f"{link_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("VINEYARD_HELM_BINARY", raising=False)
    return helm


@pytest.fixture
def unreachable_kubeconfig(tmp_path: Path) -> Path:
    """A kubeconfig naming a loopback port nothing listens on."""
    return write_unreachable_kubeconfig(tmp_path / "unreachable-kubeconfig")
