"""End-to-end fixtures: one local cluster per test session, one fresh namespace per test.

The cluster in LOCALCLUSTER_STATE_DIR (default .cache/cluster) is reused when a developer
started it (`make cluster-up`) and left running afterwards; otherwise the session starts it and
stops it at the end, unless another test session still uses it (the last one out stops it).
Tests never skip for want of a cluster: starting one is part of the run.
"""
from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator

import pytest

from localcluster import DEFAULT_STATE_DIR, ApiError, Cluster, wait_until

E2E_NODES = 3


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """A healthy cluster with at least E2E_NODES Ready fake nodes. Handle: `.kubeconfig`,
    `.env` (KUBECONFIG and PATH for helm/kubectl subprocesses), `.api` (REST client),
    `.kubectl(*args)`, `.add_nodes(n)`, `.remove_nodes(names)`, `.serve_repo()`."""
    c = Cluster(os.environ.get("LOCALCLUSTER_STATE_DIR") or DEFAULT_STATE_DIR)
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
    assert wait_until(lambda: _exists(cluster, f"/api/v1/namespaces/{name}/serviceaccounts/default"),
                      30), f"no default ServiceAccount in {name}"
    yield name
    cluster.api.delete(f"/api/v1/namespaces/{name}")


def _exists(cluster: Cluster, path: str) -> bool:
    try:
        cluster.api.get(path)
        return True
    except ApiError as e:
        if e.status == 404:
            return False
        raise
