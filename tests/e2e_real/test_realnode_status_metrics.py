"""`vineyard-helm status` on the real node reads vineyardd's memory from the chart's exporter and
etcd's database from etcd's own /metrics, through the API server's pod proxy: after a worker
pod puts 64 MiB, the node's vineyardd shows at least that much used against its size (256 MiB,
the chart's default), and etcd's database is below its quota with no alarm and a leader."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from localcluster import Cluster, wait_until
from localcluster.realnode import NODE_NAME

from .conftest import Helm, record
from .test_realnode_metrics import hold

MIB = 1 << 20


def status_json(cluster: Cluster, namespace: str) -> dict[str, Any]:
    res = subprocess.run(
        [sys.executable, "-m", "vineyard_helm", "status", "vy", "-n", namespace, "-o", "json",
         "--kubeconfig", str(cluster.kubeconfig)],
        capture_output=True, text=True, env=cluster.env, timeout=120,
    )
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)  # type: ignore[no-any-return]


def status_table(cluster: Cluster, namespace: str) -> str:
    res = subprocess.run(
        [sys.executable, "-m", "vineyard_helm", "status", "vy", "-n", namespace,
         "--kubeconfig", str(cluster.kubeconfig)],
        capture_output=True, text=True, env=cluster.env, timeout=120,
    )
    assert res.returncode == 0, res.stderr
    return res.stdout


@pytest.mark.timeout(900)
def test_status_shows_vineyardd_memory_and_etcd_database_on_the_node(
    real_cluster: Cluster, namespace: str
) -> None:
    Helm(real_cluster, namespace).install("vy", values={"metrics": {"enabled": True}})

    def vineyardd_ok() -> dict[str, Any] | None:
        metrics = status_json(real_cluster, namespace)["metrics"]
        ok = [m for m in metrics["vineyardd"] if m["state"] == "ok"]
        return metrics if ok and metrics["etcd"] and metrics["etcd"][0]["state"] == "ok" else None

    assert wait_until(vineyardd_ok, 120, 1), status_json(real_cluster, namespace)
    before = vineyardd_ok()
    assert before is not None
    (node_before,) = before["vineyardd"]
    hold(real_cluster, namespace, "hold-64", 64)
    after = status_json(real_cluster, namespace)["metrics"]
    table = status_table(real_cluster, namespace)

    (node,) = after["vineyardd"]
    assert after["metrics_enabled"] is True
    assert node["node"] == NODE_NAME
    assert node["instance_node"] == NODE_NAME
    assert node["state"] == "ok", node
    assert node["memory_size"] == 256 * MIB
    assert node["memory_used"] > 0
    assert node["memory_used"] - node_before["memory_used"] >= 64 * MIB, (node_before, node)
    assert node["memory_used"] <= node["memory_size"]

    (member,) = after["etcd"]
    assert member["state"] == "ok", member
    assert 0 < member["db_size"] < member["quota"]
    assert 0 < member["db_in_use"] <= member["db_size"]
    assert member["alarms"] == []
    assert member["has_leader"] is True
    assert "MEMORY" in table
    assert "of 256.0 MiB" in table, table
    assert "quota" in table, table
    record(
        "status: vineyardd memory and etcd database on the real node",
        {"vineyardd before": node_before, "vineyardd after a 64 MiB put": node,
         "etcd": member, "table": table},
    )
