"""Placement on labelled kwok nodes, by the real scheduler and DaemonSet controller: each node
pool's DaemonSet runs on exactly its nodes and the release's own on every other node; the RPC
Service has them all behind it; relabelling a node moves it; removing a pool the documented way
hands its nodes back; status reports each pool. And host networking: one vineyardd per node
and RPC port, the API server accepting what the chart renders for it; a claim per vineyardd pod
for spilling (ephemeral volumes)."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import vineyard_helm
from localcluster import Cluster
from tests.e2e.e2e_kube import install_args
from tests.support.helm import HELM_BINARIES, run_helm
from tests.support.kube import INSTANCE, events, items, kube, pods, ready_nodes
from tests.support.paths import CHART
from tests.support.wait import wait_for

POOL = "vineyard.v6d.io/pool"
VINEYARDD = "app.kubernetes.io/component=vineyardd"
RELEASE = "vineyard"
POOLS = [
    {"name": "bigmem", "nodeSelector": {POOL: "bigmem"}, "size": "1Gi",
     "memoryHeadroom": "256Mi"},
    {"name": "gpu", "nodeSelector": {POOL: "gpu"}},
]  # fmt: skip
# Installs and upgrades wait for every DaemonSet; the module's flow runs in its fixtures.
pytestmark = pytest.mark.timeout(1200)


def label(cluster: Cluster, node: str, value: str | None) -> None:
    change = f"{POOL}-" if value is None else f"{POOL}={value}"
    cluster.kubectl("label", "node", node, change, "--overwrite")


@pytest.fixture(scope="module")
def pool_nodes(cluster: Cluster) -> Iterator[list[str]]:
    """Three nodes of this module's own: one labelled bigmem, one gpu, one without a pool.
    Removed (with the pods bound to them) when the module ends."""
    names = cluster.add_nodes(3)
    try:
        label(cluster, names[0], "bigmem")
        label(cluster, names[1], "gpu")
        yield names
    finally:
        cluster.remove_nodes(names)


def placement(cluster: Cluster, namespace: str) -> dict[str, set[str]]:
    """The nodes of each vineyardd DaemonSet's running pods, by the DaemonSet that owns them."""
    found: dict[str, set[str]] = {}
    for pod in pods(cluster, namespace, f"{INSTANCE}={RELEASE},{VINEYARDD}"):
        if pod["metadata"].get("deletionTimestamp") or pod["status"].get("phase") != "Running":
            continue
        [owner] = [o["name"] for o in pod["metadata"]["ownerReferences"] if o.get("controller")]
        found.setdefault(owner, set()).add(pod["spec"]["nodeName"])
    return found


def wait_placement(cluster: Cluster, namespace: str, expected: dict[str, set[str]]) -> None:
    wait_for(lambda: placement(cluster, namespace) == expected,
             f"vineyardd DaemonSets in {namespace} on {expected}",
             describe=lambda: placement(cluster, namespace))


@pytest.fixture(scope="module")
def pooled(cluster: Cluster, e2e_env: dict[str, str], make_namespace,
           pool_nodes: list[str], tmp_path_factory: pytest.TempPathFactory) -> str:
    """A release with pools bigmem and gpu, installed and ready; its namespace."""
    namespace = make_namespace("pools")
    values = tmp_path_factory.mktemp("pools") / "values.yaml"
    values.write_text(json.dumps({"pools": POOLS}))
    run_helm(e2e_env, *install_args(RELEASE, namespace, extra=("--values", str(values))))
    return namespace


def own_nodes(cluster: Cluster, *in_pools: str) -> set[str]:
    """The nodes the release's own DaemonSet should run on: every Ready node in no pool."""
    return set(ready_nodes(cluster)) - set(in_pools)


def test_each_pool_runs_on_exactly_its_nodes_and_the_release_s_own_on_the_rest(
    cluster: Cluster, pooled: str, pool_nodes: list[str]
) -> None:
    bigmem, gpu, _ = pool_nodes
    wait_placement(cluster, pooled, {
        "vineyard": own_nodes(cluster, bigmem, gpu),
        "vineyard-bigmem": {bigmem},
        "vineyard-gpu": {gpu},
    })  # fmt: skip
    big = kube(cluster).get(f"/apis/apps/v1/namespaces/{pooled}/daemonsets/vineyard-bigmem")
    args = big["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--size=1Gi" in args


def test_the_rpc_service_has_every_pool_s_pods_behind_it(
    cluster: Cluster, pooled: str, pool_nodes: list[str]
) -> None:
    ips = {p["status"].get("podIP") for p in pods(cluster, pooled, VINEYARDD)}
    slices = items(cluster, f"/apis/discovery.k8s.io/v1/namespaces/{pooled}/endpointslices",
                   "kubernetes.io/service-name=vineyard-rpc")
    behind = {a for s in slices for e in s.get("endpoints") or [] for a in e["addresses"]}
    assert behind == ips
    assert len(ips) == len(ready_nodes(cluster))


def test_status_reports_each_pool(cluster: Cluster, pooled: str, pool_nodes: list[str]) -> None:
    report = vineyard_helm.status(RELEASE, namespace=pooled, kubeconfig=cluster.kubeconfig,
                                  helm=str(HELM_BINARIES[4]))
    assert [(p.pool, p.name, p.desired) for p in report.pools] == [
        ("bigmem", "vineyard-bigmem", 1), ("gpu", "vineyard-gpu", 1)]
    assert [p.node for p in report.pools[0].pods] == [pool_nodes[0]]
    assert report.vineyardd is not None
    assert pool_nodes[0] not in {p.node for p in report.vineyardd.pods}
    assert report.vineyardd.desired == len(ready_nodes(cluster)) - 2
    assert report.ready


def test_relabelling_a_node_moves_it_to_its_new_pool_and_back(
    cluster: Cluster, pooled: str, pool_nodes: list[str]
) -> None:
    bigmem, gpu, spare = pool_nodes
    label(cluster, spare, "gpu")
    try:
        wait_placement(cluster, pooled, {
            "vineyard": own_nodes(cluster, bigmem, gpu, spare),
            "vineyard-bigmem": {bigmem},
            "vineyard-gpu": {gpu, spare},
        })  # fmt: skip
    finally:
        label(cluster, spare, None)
    wait_placement(cluster, pooled, {
        "vineyard": own_nodes(cluster, bigmem, gpu),
        "vineyard-bigmem": {bigmem},
        "vineyard-gpu": {gpu},
    })  # fmt: skip


def test_removing_a_pool_the_documented_way_hands_its_nodes_back(
    cluster: Cluster, e2e_env: dict[str, str], pooled: str, pool_nodes: list[str]
) -> None:
    """Delete the pool's DaemonSet and let its pods go, then upgrade without the pool (chart
    README, Node pools); the last test of the module that uses the pooled release."""
    bigmem = pool_nodes[0]
    cluster.kubectl("-n", pooled, "delete", "daemonset", "vineyard-gpu", "--cascade=foreground",
                    "--wait=true", "--timeout=180s")
    gone = f"/apis/apps/v1/namespaces/{pooled}/daemonsets/vineyard-gpu"
    assert kube(cluster).get_or_none(gone) is None
    run_helm(e2e_env, "upgrade", RELEASE, str(CHART), "-n", pooled,
             "--reuse-values", "--set-json", f"pools={json.dumps(POOLS[:1])}",
             "--wait", "--timeout", "5m")
    wait_placement(cluster, pooled, {
        "vineyard": own_nodes(cluster, bigmem),
        "vineyard-bigmem": {bigmem},
    })  # fmt: skip


# ---- host network ----------------------------------------------------------------------


def pod_state(cluster: Cluster, namespace: str) -> list[tuple[str, str]]:
    return [(p["status"].get("phase", ""), p["spec"].get("nodeName", ""))
            for p in pods(cluster, namespace, VINEYARDD)]


def test_host_network_allows_one_vineyardd_per_node_and_port(
    cluster: Cluster, e2e_env: dict[str, str], make_namespace, pool_nodes: list[str]
) -> None:
    """Three host-network releases pinned to one node: the second on the first's RPC port is
    left Pending by the scheduler (its host port is taken), the third on another port runs."""
    node = pool_nodes[2]
    first, second, third = (make_namespace(f"hostnet-{i}") for i in range(3))
    pin = ["hostNetwork=true", "vineyard.meta=local", "tests.enabled=false",
           f"nodeSelector.kubernetes\\.io/hostname={node}"]
    run_helm(e2e_env, *install_args(RELEASE, first, sets=pin))
    spec = kube(cluster).get(f"/apis/apps/v1/namespaces/{first}/daemonsets/vineyard")["spec"]
    pod_spec = spec["template"]["spec"]
    assert (pod_spec["hostNetwork"], pod_spec["dnsPolicy"]) == (True, "ClusterFirstWithHostNet")
    assert pod_spec["containers"][0]["ports"][0]["hostPort"] == 9600
    assert pod_state(cluster, first) == [("Running", node)]
    run_helm(e2e_env, *install_args(RELEASE, second, sets=pin, wait=False))
    wait_for(lambda: any("free ports" in e.get("message", "") for e in events(cluster, second)
                         if e.get("reason") == "FailedScheduling"),
             f"the scheduler refusing the second release's pod a port on {node}",
             describe=lambda: pod_state(cluster, second))
    assert pod_state(cluster, second) == [("Pending", "")]
    run_helm(e2e_env, *install_args(RELEASE, third, sets=[*pin, "vineyard.rpc.port=9700"]))
    assert pod_state(cluster, third) == [("Running", node)]


# ---- a claim per pod for spilling ------------------------------------------------------


def test_ephemeral_spill_gives_every_vineyardd_pod_a_claim_of_its_own(
    cluster: Cluster, e2e_env: dict[str, str], make_namespace, pool_nodes: list[str],
    tmp_path: Path,
) -> None:
    """A DaemonSet has no volumeClaimTemplates: with spill.volume.type ephemeral the
    controller manager creates one claim per pod from the template (this cluster has no
    provisioner, so the claims stay Pending and so do the pods: placement is what counts)."""
    namespace = make_namespace("spill")
    values = {"vineyard": {"meta": "local", "spill": {"path": "/spill", "volume": {
        "type": "ephemeral", "ephemeral": {"storageClass": "e2e-none", "size": "2Gi"}}}},
        "tests": {"enabled": False}}  # fmt: skip
    (tmp_path / "v.yaml").write_text(json.dumps(values))
    run_helm(e2e_env, *install_args(RELEASE, namespace, wait=False,
                                    extra=("--values", str(tmp_path / "v.yaml"))))
    nodes = set(ready_nodes(cluster))

    def claims() -> dict[str, dict]:
        return {c["metadata"]["name"]: c for c in items(
            cluster, f"/api/v1/namespaces/{namespace}/persistentvolumeclaims")}

    wait_for(lambda: len(claims()) == len(nodes), f"one spill claim per node in {namespace}",
             describe=lambda: sorted(claims()))
    vineyardd = {p["metadata"]["name"]: p for p in pods(cluster, namespace)}
    assert set(claims()) == {f"{name}-spill" for name in vineyardd}
    for claim in claims().values():
        assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
        assert claim["spec"]["storageClassName"] == "e2e-none"
        assert claim["metadata"]["labels"]["app.kubernetes.io/component"] == "vineyardd"
        [owner] = claim["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"] in vineyardd) == ("Pod", True)
