"""`status` names the nodes without vineyardd, with the facts that explain each, on the kwok
cluster with the real DaemonSet controller, scheduler and node lifecycle controller.

The release selects only this test's nodes (a nodeSelector on a label of the test's own), so
nodes other sessions add to the shared cluster never show up, and has a node pool, so the
release's own DaemonSet carries the chart's node affinity keeping it off the pool's nodes:

- not-ready: a Node object kwok does not manage (no kwok annotation), created with the Ready
  condition a joining kubelet posts (False, KubeletNotReady), in the pool. The node lifecycle
  controller keeps `node.kubernetes.io/not-ready:NoSchedule` on it, and, once its status has
  not been renewed for the node-monitor grace period, Ready Unknown and
  `node.kubernetes.io/unreachable:NoSchedule`. Either way no DaemonSet places a pod there.
  (Created without any Ready condition it would carry no taint for the node-startup grace
  period, about a minute, and every DaemonSet would put a pod there that never starts.)
- tainted: a Ready kwok node, cordoned and tainted with a taint the release does not tolerate.
- cordoned: a Ready kwok node, cordoned, with a taint the release tolerates (so that no other
  session's DaemonSet goes there): it runs vineyardd, since DaemonSet pods tolerate a cordon
  (the controller adds `node.kubernetes.io/unschedulable:NoSchedule` to their tolerations), and
  is not listed.
- pool: a Ready kwok node of the pool, running the pool's vineyardd.

status lists exactly not-ready and tainted. Then not-ready joins as a kwok node (which kwok
makes Ready) and tainted is uncordoned and untainted: both get their pod and status lists none.

With VINEYARD_HELM_RECORD_NODE_GAPS=1 the test records what status read (helm's status JSON,
Helm 4 and Helm 3, and the nodes listed per DaemonSet) into tests/unit/data/node-gaps/, for
tests/unit/test_status_node_gaps.py."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import vineyard_helm
from localcluster import Cluster
from localcluster.components import KWOK_NODE_ANNOTATION
from localcluster.nodes import node_manifest
from tests.support.helm import HELM_BINARIES
from tests.support.kube import kube, pods
from tests.support.wait import wait_for
from vineyard_helm.records import NodeGap, ReleaseStatus

pytestmark = pytest.mark.timeout(900)

RECORD = os.environ.get("VINEYARD_HELM_RECORD_NODE_GAPS") == "1"
RECORDED = Path(__file__).resolve().parents[1] / "unit" / "data" / "node-gaps"
POOL = "vineyard.v6d.io/pool"
NOT_READY = "node.kubernetes.io/not-ready:NoSchedule"
UNREACHABLE = "node.kubernetes.io/unreachable:NoSchedule"


def cli(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vineyard_helm", *args, "--kubeconfig",
                           str(cluster.kubeconfig), "--helm", str(HELM_BINARIES[4])],
                          capture_output=True, text=True, env=cluster.env, timeout=600)


def status(cluster: Cluster, namespace: str) -> ReleaseStatus:
    return vineyard_helm.status(namespace=namespace, kubeconfig=cluster.kubeconfig,
                                helm=str(HELM_BINARIES[4]), metrics=False)


def gaps(cluster: Cluster, namespace: str) -> dict[str, NodeGap]:
    return {gap.node: gap for gap in status(cluster, namespace).nodes_without_vineyardd}


@pytest.fixture
def nodes(cluster: Cluster) -> Iterator[dict[str, Any]]:
    """The four nodes, all labelled with this test's own label; removed (with their pods)
    at the end."""
    test_id = uuid.uuid4().hex[:6]
    label = {"e2e.vineyard-helm/node-gaps": test_id}
    mine, other = f"e2e.vineyard-helm/mine-{test_id}", f"e2e.vineyard-helm/other-{test_id}"
    not_ready = f"e2e-gaps-not-ready-{test_id}"
    manifest = node_manifest(not_ready)
    del manifest["metadata"]["annotations"][KWOK_NODE_ANNOTATION[0]]
    manifest["metadata"]["labels"].update({**label, POOL: f"big-{test_id}"})
    manifest["status"]["conditions"] = [{
        "type": "Ready", "status": "False", "reason": "KubeletNotReady",
        "message": "container runtime network not ready"}]
    made = [not_ready]
    try:
        kube(cluster).create("/api/v1/nodes", manifest)
        tainted, cordoned, pool = cluster.add_nodes(3)
        made += [tainted, cordoned, pool]
        for name in (tainted, cordoned, pool):
            cluster.kubectl("label", "node", name, *(f"{k}={v}" for k, v in label.items()))
        cluster.kubectl("label", "node", pool, f"{POOL}=big-{test_id}")
        # Taints first, then the cordon: no other DaemonSet's pod lands there in between.
        cluster.kubectl("taint", "node", tainted, f"{other}={test_id}:NoSchedule")
        cluster.kubectl("taint", "node", cordoned, f"{mine}=yes:NoSchedule")
        cluster.kubectl("cordon", tainted, cordoned)
        yield {"id": test_id, "label": label, "mine": mine, "other": other,
               "not_ready": not_ready, "tainted": tainted, "cordoned": cordoned, "pool": pool}
    finally:
        cluster.remove_nodes(made)


def record(cluster: Cluster, namespace: str, daemonsets: list[str]) -> None:
    """What status reads, as it reads it: helm's JSON and the nodes per DaemonSet."""
    from tests.unit.helm_json.record import helm_json, without_managed_fields
    from vineyard_helm.nodes import NodeLister, label_selector

    RECORDED.mkdir(parents=True, exist_ok=True)
    ns = ["--kubeconfig", str(cluster.kubeconfig), "-n", namespace]
    for major, extra in ((4, []), (3, ["--show-resources"])):
        document = helm_json(str(HELM_BINARIES[major]), "status", "vineyard", *ns, *extra)
        (RECORDED / f"helm{major}-status.json").write_text(
            json.dumps(without_managed_fields(document), indent=1) + "\n")
    metadata = helm_json(str(HELM_BINARIES[4]), "get", "metadata", "vineyard", *ns)
    (RECORDED / "metadata.json").write_text(json.dumps(metadata, indent=1) + "\n")
    lister = NodeLister(kubeconfig=str(cluster.kubeconfig), context=None)
    listed = {}
    for name in daemonsets:
        ds = kube(cluster).get(f"/apis/apps/v1/namespaces/{namespace}/daemonsets/{name}")
        listed[name] = lister.list(label_selector(ds))
    (RECORDED / "nodes.json").write_text(
        json.dumps(without_managed_fields(listed), indent=1) + "\n")


def test_status_lists_the_nodes_without_vineyardd_with_their_facts(
    cluster: Cluster, namespace: str, nodes: dict[str, Any]
) -> None:
    test_id = nodes["id"]
    values = {
        "vineyard": {"size": "128Mi"},
        "nodeSelector": nodes["label"],
        "tolerations": [{"key": nodes["mine"], "operator": "Exists", "effect": "NoSchedule"}],
        "pools": [{"name": "big", "nodeSelector": {POOL: f"big-{test_id}"}}],
    }
    vineyard_helm.install(values, namespace=namespace, kubeconfig=cluster.kubeconfig,
                          helm=str(HELM_BINARIES[4]), timeout="5m")

    expected = {nodes["not_ready"], nodes["tainted"]}

    def listed_as_expected() -> dict[str, NodeGap]:
        found = gaps(cluster, namespace)
        return found if set(found) == expected else {}

    found = wait_for(listed_as_expected, "status lists the not-ready and the tainted node",
                     describe=lambda: gaps(cluster, namespace))
    report = status(cluster, namespace)
    assert report.ready, report  # the DaemonSets' desired pods are ready: helm's view too
    assert report.nodes_selected == 4
    assert report.nodes_note == ""

    not_ready = found[nodes["not_ready"]]
    # Ready False with the not-ready taint, or (once the node-monitor grace period has passed
    # without a heartbeat) Ready Unknown with the unreachable taint.
    assert (not_ready.ready, not_ready.taints) in (("False", (NOT_READY,)),
                                                  ("Unknown", (UNREACHABLE,))), not_ready
    assert not_ready.ready_reason in ("KubeletNotReady", "NodeStatusUnknown"), not_ready
    assert not not_ready.cordoned
    assert not not_ready.deleting
    assert not_ready.daemonsets == ("vineyard", "vineyard-big")
    assert not_ready.affinity_not_checked == ("vineyard",)  # kept off the pool's nodes

    tainted = found[nodes["tainted"]]
    assert tainted.ready == "True"
    assert tainted.cordoned
    assert tainted.taints == (f"{nodes['other']}={test_id}:NoSchedule",)  # not the cordon's
    assert tainted.daemonsets == ("vineyard",)
    assert tainted.affinity_not_checked == ("vineyard",)

    # The cordoned node runs the release's own vineyardd (DaemonSet pods tolerate a cordon),
    # the pool's node the pool's.
    placed = {(p["metadata"]["ownerReferences"][0]["name"], p["spec"].get("nodeName"))
              for p in pods(cluster, namespace, "app.kubernetes.io/component=vineyardd")}
    assert placed == {("vineyard", nodes["cordoned"]), ("vineyard-big", nodes["pool"])}

    table = cli(cluster, "status", "-n", namespace, "--no-metrics")
    assert table.returncode == 0, table.stderr
    line = next(line for line in table.stdout.splitlines() if "no vineyardd" in line)
    print(table.stdout)  # with -s: the whole table
    state = "NotReady" if not_ready.ready == "False" else "Ready Unknown"
    described = {nodes["not_ready"]: f"{state}; taint {not_ready.taints[0]}",
                 nodes["tainted"]: f"Ready; cordoned; taint {tainted.taints[0]}"}
    named = ", ".join(f"{name} ({described[name]})" for name in sorted(described))
    assert line == (f"2 nodes have no vineyardd (of 4 selected): {named}; "
                    "affinity not checked (vineyard has node affinity terms)"), table.stdout
    as_json = cli(cluster, "status", "-n", namespace, "--no-metrics", "-o", "json")
    assert as_json.returncode == 0, as_json.stderr
    listed = json.loads(as_json.stdout)["nodes_without_vineyardd"]
    assert {g["node"]: g["cordoned"] for g in listed} == {nodes["not_ready"]: False,
                                                        nodes["tainted"]: True}
    if RECORD:
        record(cluster, namespace, ["vineyard", "vineyard-big"])

    # The not-ready node joins for real: its Node object is made again the way kwok's nodes
    # are (kwok does not take over a node that existed before it was annotated), kwok reports
    # it Ready and the node lifecycle controller lifts the taint. The tainted node is untainted
    # and uncordoned. Each gets its pod, and status lists no node.
    cluster.remove_nodes([nodes["not_ready"]])
    wait_for(lambda: not kube(cluster).exists(f"/api/v1/nodes/{nodes['not_ready']}"),
             "the not-ready node gone")
    joined = node_manifest(nodes["not_ready"])
    joined["metadata"]["labels"].update({**nodes["label"], POOL: f"big-{test_id}"})
    kube(cluster).create("/api/v1/nodes", joined)
    cluster.kubectl("taint", "node", nodes["tainted"], f"{nodes['other']}-")
    cluster.kubectl("uncordon", nodes["tainted"])
    wait_for(lambda: not gaps(cluster, namespace), "every selected node runs vineyardd",
             describe=lambda: gaps(cluster, namespace))
    table = cli(cluster, "status", "-n", namespace, "--no-metrics")
    assert "vineyardd on all 4 nodes its DaemonSets select" in table.stdout, table.stdout
