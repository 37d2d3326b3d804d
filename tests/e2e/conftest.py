"""End-to-end fixtures: one local cluster per test session, one fresh namespace per test.

The cluster lives in a state dir of the test suite's own, LOCALCLUSTER_STATE_DIR or
.cache/e2e-cluster, never the demo's (.cache/cluster, whose real node would pull the chart's
images): kwok nodes only. A running one there (`python -m localcluster --state-dir
.cache/e2e-cluster up`) is reused and left running; otherwise the session starts it and stops
it at the end, unless another test session still uses it (the last one out stops it).
Tests never skip for want of a cluster: starting one is part of the run.
"""
from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator

import pytest

from localcluster import Cluster, wait_until
from localcluster.cluster import REPO_ROOT

E2E_NODES = 3
E2E_STATE_DIR = REPO_ROOT / ".cache" / "e2e-cluster"


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """A healthy cluster with at least E2E_NODES Ready fake nodes. Handle: `.kubeconfig`,
    `.env` (KUBECONFIG and PATH for helm/kubectl subprocesses), `.api` (REST client),
    `.kubectl(*args)`, `.add_nodes(n)`, `.remove_nodes(names)`, `.serve_repo()`."""
    c = Cluster(os.environ.get("LOCALCLUSTER_STATE_DIR") or E2E_STATE_DIR)
    with c.session(nodes=E2E_NODES):
        yield c


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace (with its `default` ServiceAccount), deleted after the test."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"e2e-{slug}-{uuid.uuid4().hex[:5]}"
    cluster.api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                             "metadata": {"name": name}})
    # Pods are refused until the token controller has made the namespace's default SA.
    sa = f"/api/v1/namespaces/{name}/serviceaccounts/default"
    assert wait_until(lambda: cluster.api.exists(sa),
                      30), f"no default ServiceAccount in {name}"
    yield name
    cluster.api.delete(f"/api/v1/namespaces/{name}")



# ==== The vineyard chart's end-to-end suite (tests/e2e/test_e2e_*.py) ========================
# Helpers live in e2e_kube.py. Module-scoped factories let a module install its releases once
# (in parallel where it can) and share them between read-only tests.

from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

from e2e_kube import (  # noqa: E402
    SESSION_TIMINGS,
    create_namespace,
    create_pv,
    delete_namespace,
    delete_pvs,
    helm_env,
)


@pytest.fixture(scope="session")
def e2e_env(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for helm/kubectl: this cluster, and a helm home of the session's own (no
    repository or cache outside it is touched)."""
    return helm_env(cluster, tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="module")
def make_namespace(cluster: Cluster) -> Iterator[Callable[..., str]]:
    """`make_namespace(prefix, labels=None)` -> a fresh namespace, deleted after the module."""
    made: list[str] = []

    def make(prefix: str, labels: dict[str, str] | None = None) -> str:
        made.append(create_namespace(cluster, prefix, labels))
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
    return helm_env(cluster, tmp_path / "helm-home")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SESSION_TIMINGS:
        terminalreporter.section("e2e timings (also in .cache/e2e-timings.json)")
        for name, entry in SESSION_TIMINGS.items():
            details = ", ".join(
                f"{k}={v}" for k, v in entry.items() if k not in ("seconds", "when"))
            terminalreporter.write_line(f"{name}: {entry['seconds']:.2f}s  {details}")
