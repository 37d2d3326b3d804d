"""Fixtures of the reliability and security checks (docs/reliability.md).

Each check records its figures with `record(...)` into .cache/reliability/<check>.json;
hack/gen_reliability_table.py turns those files into docs/reliability.md, so every figure in
the table is one a test produced (and the file names the test and the commit it ran on).

Clusters: the admission, concurrency and fuzzing checks share the session's cluster with tests/e2e
(tests/support/clusters.py: LOCALCLUSTER_STATE_DIR or .cache/e2e-cluster). The fault
checks restart kube-apiserver and delete nodes, so they run on a cluster of this run alone,
.cache/faults-cluster-<pid> (or RELIABILITY_FAULTS_STATE_DIR), started when the first fault
check needs it and stopped, its state dir removed, when the last one ends (package scope); two
concurrent runs never share it. State dirs left by runs that died are stopped and removed.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from localcluster import Cluster
from tests.support.clusters import cluster
from tests.support.kube import create_namespace, delete_namespace, unique_name
from tests.support.paths import REPO

__all__ = ["cluster"]
RESULTS_DIR = REPO / ".cache" / "reliability"
FAULTS_STATE_DIR_PREFIX = "faults-cluster-"
NODES = 3


# What a figure depends on: a run with uncommitted changes here is marked as such in the table.
MEASURED = ["tests/reliability", "tests/support", "charts/vineyard", "vineyard_helm",
            "localcluster"]


def _commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                              check=False).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return f"{head}+uncommitted" if git("status", "--porcelain", "--", *MEASURED) else head


Recorder = Callable[..., None]


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Recorder:
    """record(check, figure=..., result=..., **details): one row of docs/reliability.md."""

    def write(check: str, *, area: str, figure: str, result: str, **details: Any) -> None:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        slug = re.sub(r"[^a-z0-9]+", "-", check.lower()).strip("-")
        data = {"check": check, "area": area, "figure": figure, "result": result,
                "test": request.node.nodeid, "commit": _commit(),
                "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **details}
        (RESULTS_DIR / f"{slug}.json").write_text(json.dumps(data, indent=2, default=str) + "\n")

    return write


@pytest.fixture(scope="package")
def faults_cluster() -> Iterator[Cluster]:
    """A cluster of this run alone, for checks that restart or stop its components."""
    if os.environ.get("RELIABILITY_FAULTS_STATE_DIR"):
        c = Cluster(os.environ["RELIABILITY_FAULTS_STATE_DIR"])
        with c.session(nodes=NODES):
            yield c
        return
    _remove_dead_faults_clusters()
    state_dir = REPO / ".cache" / f"{FAULTS_STATE_DIR_PREFIX}{os.getpid()}"
    c = Cluster(state_dir)
    try:
        with c.session(nodes=NODES):
            yield c
    finally:
        c.down()
        shutil.rmtree(state_dir, ignore_errors=True)


def _remove_dead_faults_clusters() -> None:
    for state_dir in (REPO / ".cache").glob(f"{FAULTS_STATE_DIR_PREFIX}*"):
        pid = state_dir.name.removeprefix(FAULTS_STATE_DIR_PREFIX)
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            Cluster(state_dir).down()
            shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture
def namespace_factory(cluster: Cluster) -> Iterator[Callable[..., str]]:
    made: list[str] = []

    def make(prefix: str = "rel", labels: dict[str, str] | None = None) -> str:
        made.append(create_namespace(cluster, unique_name(prefix, 6), labels))
        return made[-1]

    yield make
    for name in made:
        delete_namespace(cluster, name)
