"""End-to-end fixtures: the session's local cluster and a fresh namespace per test
(tests/support/clusters.py), namespaces and volumes per module, helm homes of the suite's own.
Module-scoped factories let a module install its releases once (in parallel where it can) and
share them between read-only tests. Helpers live in e2e_kube.py and tests/support/."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from localcluster import Cluster
from tests.support.clusters import cluster, namespace
from tests.support.figures import SESSION_TIMINGS
from tests.support.helm import isolated_helm_env
from tests.support.kube import (
    SUITE_LABEL,
    create_namespace,
    create_pv,
    delete_namespace,
    delete_pvs,
    unique_name,
)

__all__ = ["cluster", "namespace"]


@pytest.fixture(scope="session")
def e2e_env(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for helm/kubectl: this cluster, and a helm home of the session's own (no
    repository or cache outside it is touched)."""
    return isolated_helm_env(cluster.env, tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="module")
def make_namespace(cluster: Cluster) -> Iterator[Callable[..., str]]:
    """`make_namespace(prefix, labels=None)` -> a fresh namespace, deleted after the module."""
    made: list[str] = []

    def make(prefix: str, labels: dict[str, str] | None = None) -> str:
        made.append(create_namespace(cluster, unique_name(f"e2e-{prefix}"),
                                     {**SUITE_LABEL, **(labels or {})}))
        return made[-1]

    yield make
    for name in made:
        delete_namespace(cluster, name)


@pytest.fixture(scope="module")
def make_pv(cluster: Cluster) -> Iterator[Callable[..., str]]:
    """`make_pv(storage_class=..., access_modes=[...], size=..., claim=(ns, name))` -> a
    hostPath PersistentVolume, deleted after the module."""
    made: list[str] = []

    def make(**spec: object) -> str:
        made.append(create_pv(cluster, **spec))  # type: ignore[arg-type]
        return made[-1]

    yield make
    delete_pvs(cluster, made)


@pytest.fixture
def helm_home(cluster: Cluster, tmp_path: Path) -> dict[str, str]:
    """Per test: an environment whose helm repositories, cache and config live in tmp_path."""
    return isolated_helm_env(cluster.env, tmp_path / "helm-home")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SESSION_TIMINGS:
        terminalreporter.section("e2e timings (also in .cache/e2e-timings.json)")
        for name, entry in SESSION_TIMINGS.items():
            details = ", ".join(
                f"{k}={v}" for k, v in entry.items() if k not in ("seconds", "when"))
            terminalreporter.write_line(f"{name}: {entry['seconds']:.2f}s  {details}")
