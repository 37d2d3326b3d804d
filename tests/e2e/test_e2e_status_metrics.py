"""`vineyard-helm status`'s memory and database columns on the kwok cluster: its pods run no
container, so there is no /metrics page to read. status must say so per pod ("unreachable"),
cleanly and quickly, in the table, the JSON and the Python API's record.

kwok's pods report their containers running but without a container ID (a kubelet always gives
one): status reads that from the pods helm returns and does not ask the API server to proxy to
them. That also keeps the API server from dialing kwok's made-up pod addresses (10.244.0.0/16),
which no route keeps on this machine. tests/e2e_real/test_realnode_status_metrics.py reads real
pages on the real node."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

import vineyard_helm
from localcluster import Cluster
from tests.support.helm import HELM_BINARIES

pytestmark = pytest.mark.timeout(900)

NO_CONTAINER = "not running (no container ID)"


def cli(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vineyard_helm", *args, "--kubeconfig",
                           str(cluster.kubeconfig), "--helm", str(HELM_BINARIES[4])],
                          capture_output=True, text=True, env=cluster.env, timeout=600)


def test_status_says_unreachable_per_pod_when_no_container_runs(
    cluster: Cluster, namespace: str
) -> None:
    ns = ["-n", namespace]
    installed = cli(cluster, "install", *ns, "--set", "vineyard.size=128Mi",
                    "--set", "metrics.enabled=true", "--timeout", "5m")
    assert installed.returncode == 0, installed.stderr

    started = time.monotonic()
    as_json = cli(cluster, "status", *ns, "-o", "json")
    elapsed = time.monotonic() - started
    assert as_json.returncode == 0, as_json.stderr
    assert "Traceback" not in as_json.stderr
    report = json.loads(as_json.stdout)
    metrics = report["metrics"]
    assert metrics["metrics_enabled"] is True
    assert metrics["note"] == ""
    nodes = {pod["node"] for pod in report["vineyardd"]["pods"]}
    assert {m["node"] for m in metrics["vineyardd"]} == nodes
    assert len(nodes) >= 3
    for record in metrics["vineyardd"]:
        assert record["state"] == f"unreachable: container metrics-exporter {NO_CONTAINER}"
        assert record["memory_used"] is None
        assert record["memory_size"] is None
    (member,) = metrics["etcd"]
    assert member["state"] == f"unreachable: container etcd {NO_CONTAINER}"
    assert (member["db_size"], member["quota"], member["alarms"]) == (None, None, [])
    assert elapsed < 60, f"status took {elapsed:.1f} s"  # nothing waited on a time-out

    table = cli(cluster, "status", *ns)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    header = next(line for line in lines if line.strip().startswith("NODE"))
    assert header.split()[-1] == "MEMORY", table.stdout
    for node in nodes:
        row = next(line for line in lines if line.strip().startswith(node))
        assert row.rstrip().endswith(f"unreachable: container metrics-exporter {NO_CONTAINER}")
    etcd_header = next(line for line in lines if line.strip().startswith("MEMBER"))
    assert etcd_header.split()[-3:] == ["DATABASE", "ALARMS", "LEADER"], table.stdout

    record = vineyard_helm.status(namespace=namespace, kubeconfig=cluster.kubeconfig,
                                  helm=str(HELM_BINARIES[4]))
    assert record.metrics is not None
    assert all(m.state.startswith("unreachable:") for m in record.metrics.vineyardd)
    assert vineyard_helm.status(namespace=namespace, kubeconfig=cluster.kubeconfig,
                                helm=str(HELM_BINARIES[4]), metrics=False).metrics is None


def test_status_without_metrics_enabled_says_so(cluster: Cluster, namespace: str) -> None:
    ns = ["-n", namespace]
    installed = cli(cluster, "install", *ns, "--set", "vineyard.size=128Mi", "--timeout", "5m")
    assert installed.returncode == 0, installed.stderr
    table = cli(cluster, "status", *ns)
    assert table.returncode == 0, table.stderr
    assert "vineyardd memory: metrics.enabled is off" in table.stdout
    assert "MEMORY" not in table.stdout
    report = json.loads(cli(cluster, "status", *ns, "-o", "json").stdout)
    assert {m["state"] for m in report["metrics"]["vineyardd"]} == {"metrics.enabled is off"}
    assert report["metrics"]["etcd"][0]["state"].startswith("unreachable: container etcd")


def test_the_api_servers_refusal_of_pods_proxy_is_reported_as_forbidden(
    cluster: Cluster, namespace: str, tmp_path
) -> None:
    """The client status uses, against this API server, as a ServiceAccount that may not get
    pods/proxy: the API server refuses before it looks for the pod (nothing is dialed)."""
    import yaml

    from vineyard_helm.metrics import Proxy, describe_error

    cluster.kubectl("-n", namespace, "create", "serviceaccount", "no-proxy")
    token = cluster.kubectl("-n", namespace, "create", "token", "no-proxy").stdout.strip()
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    config["users"] = [{"name": "no-proxy", "user": {"token": token}}]
    for context in config["contexts"]:
        context["context"]["user"] = "no-proxy"
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    proxy = Proxy(kubeconfig=str(path), context=None)
    with pytest.raises(Exception) as refused:  # noqa: PT011 the client's ApiException
        proxy.get(namespace, "vineyard-anything", 9610)
    assert describe_error(refused.value) == (
        "forbidden: Forbidden (needs get on pods/proxy)"
    ), refused.value
