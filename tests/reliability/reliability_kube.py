"""Namespace helpers of the reliability checks, shared by conftest.py and the fault checks
(a module of its own: `from conftest import` would find another folder's conftest)."""
from __future__ import annotations

import uuid

from localcluster import ApiError, Cluster, wait_until


def make_namespace(c: Cluster, prefix: str, labels: dict[str, str] | None = None) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    c.api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                       "metadata": {"name": name, "labels": labels or {}}})
    # Pods are refused until the token controller has made the namespace's default SA.
    assert wait_until(lambda: c.api.ok(f"/api/v1/namespaces/{name}/serviceaccounts/default"),
                      30), f"no default ServiceAccount in {name}"
    return name


def delete_namespace(c: Cluster, name: str) -> None:
    try:
        c.api.delete(f"/api/v1/namespaces/{name}")
    except ApiError as e:
        if e.status != 404:
            raise
