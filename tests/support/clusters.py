"""The local cluster a test session uses, and a fresh namespace per test.

The cluster lives in a state dir of the test suite's own, LOCALCLUSTER_STATE_DIR or
.cache/e2e-cluster, never the demo's (.cache/cluster, whose real node would pull the chart's
images): kwok nodes only. A running one there (`python -m localcluster --state-dir
.cache/e2e-cluster up`) is reused and left running; otherwise the session starts it and stops
it at the end, unless another test session still uses it (the last one out stops it).
Tests never skip for want of a cluster: starting one is part of the run.

Suites take the fixtures by importing them into their conftest.py (tests/e2e, tests/release,
tests/reliability share the one session cluster).
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest

from localcluster import Cluster
from tests.support.kube import create_namespace, delete_namespace, unique_name
from tests.support.paths import REPO

E2E_NODES = 3
E2E_STATE_DIR = REPO / ".cache" / "e2e-cluster"


def slug_of(request: pytest.FixtureRequest, length: int) -> str:
    """The test's name as a DNS label fragment of at most `length` characters."""
    return re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:length].strip("-")


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """A healthy cluster with at least E2E_NODES Ready fake nodes. Handle: `.kubeconfig`,
    `.env` (KUBECONFIG and PATH for helm/kubectl subprocesses), `.kubectl(*args)`,
    `.add_nodes(n)`, `.remove_nodes(names)`, `.serve_repo()`; its API through
    tests.support.kube."""
    c = Cluster(os.environ.get("LOCALCLUSTER_STATE_DIR") or E2E_STATE_DIR)
    with c.session(nodes=E2E_NODES):
        yield c


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace (with its `default` ServiceAccount), deleted after the test."""
    name = create_namespace(cluster, unique_name(f"e2e-{slug_of(request, 40)}"))
    yield name
    delete_namespace(cluster, name)
