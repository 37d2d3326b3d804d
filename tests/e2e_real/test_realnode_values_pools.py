"""Issue 17's values on the real node: spilling into an existing claim past upperRate (files on
the claim, read back, a killed vineyardd's leftovers emptied at start, nothing left after a
graceful stop), vineyardd on the host network (the RPC port answers on the node's address; etcd
found through ClusterFirstWithHostNet), and one node pool taking the node (same socket path, the
pool's size, status), then handing it back with the new vineyardd waiting for the old one's
socket."""
from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import vineyard_helm
from localcluster import Cluster, wait_until
from localcluster.realnode import NODE_IP, NODE_NAME
from tests.support.kube import kube, ready_pods

from .conftest import (
    PV_ROOT,
    SOCKET_GID,
    Helm,
    hostpath_socket,
    record,
    run_pod,
    worker_pod,
)
from .test_realnode_chart import PUT, RPC_GET

VINEYARDD = "app.kubernetes.io/component=vineyardd"
POOL = "vineyard.v6d.io/pool"

# Twelve 4 MiB arrays into a 64 MiB vineyardd spilling above 0.5 x 64 MiB: each put in a
# connection of its own, closed at once, since vineyardd spills only objects no connected
# client holds (measured: a client holding 48 MiB saw no file until it disconnected).
SPILL_PUTS = """
import numpy as np, vineyard
ids = []
for i in range(12):
    c = vineyard.connect()
    ids.append(int(c.put(np.full((4 << 20) // 8, i, dtype='int64'))))
    c.close()
print('IDS', ' '.join(map(str, ids)), flush=True)
"""
SPILL_GET = """
import numpy as np, vineyard
c = vineyard.connect()
for i, oid in enumerate([{ids}]):
    a = np.asarray(c.get(vineyard.ObjectID(oid)))
    assert a.shape == ((4 << 20) // 8,) and (a == i).all(), (i, oid)
print('ALL-EQUAL', c.status.memory_usage, c.status.memory_limit, flush=True)
"""
SIZE = """
import vineyard
print('LIMIT', vineyard.connect().status.memory_limit, flush=True)
"""


def spill_files(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()} if directory.is_dir() else set()


def test_spill_to_a_claim_fills_past_upper_rate_and_files_appear_on_the_claim(
        real_cluster: Cluster, namespace: str, local_pvs) -> None:
    pv = local_pvs(namespace, "vy-spill", ["ReadWriteOnce"])
    kube(real_cluster).create(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims", {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "vy-spill"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "",
                 "resources": {"requests": {"storage": "1Gi"}}}})
    # The node's directory in the claim, as the chart names it (vineyard-spill/<release>/<node>),
    # with a file a killed vineyardd would have left: prepare-spill-dir must empty it.
    directory = PV_ROOT / pv / "vineyard-spill" / "vy" / NODE_NAME
    directory.mkdir(parents=True)
    (directory / "1234567890").write_bytes(b"left by a killed vineyardd")
    helm = Helm(real_cluster, namespace)
    helm.install("vy", values={
        "vineyard": {"size": "64Mi", "meta": "local", "spill": {
            "path": "/spill", "lowerRate": 0.2, "upperRate": 0.5,
            "volume": {"type": "persistentVolumeClaim",
                       "persistentVolumeClaim": {"existingClaim": "vy-spill"}}}},
        "tests": {"enabled": False}})
    assert spill_files(directory) == set(), spill_files(directory)
    stat = directory.stat()
    assert (stat.st_uid, stat.st_gid, stat.st_mode & 0o777) == (65532, 65532, 0o700)

    sock = hostpath_socket(f"/var/run/vineyard/{namespace}/vy")

    def put(name: str) -> list[str]:
        phase, out = run_pod(real_cluster, namespace,
                             worker_pod(name, SPILL_PUTS, groups=[SOCKET_GID], **sock))
        assert phase == "Succeeded", out
        return out.split("IDS", 1)[1].split()

    ids = put("spill-put")
    spilled = spill_files(directory)
    record("blobs spilled to the claim after 12 x 4 MiB into 64Mi (upperRate 0.5)", len(spilled))
    assert spilled, f"no spill file in {directory} after 48 MiB into a 64 MiB vineyardd"
    # One file per blob, named by the blob's ID: its ID and size (16 bytes), then the 4 MiB.
    assert {(directory / name).stat().st_size for name in spilled} == {(4 << 20) + 16}
    assert all(name.isdigit() for name in spilled), spilled

    phase, out = run_pod(real_cluster, namespace, worker_pod(
        "spill-get", SPILL_GET.format(ids=", ".join(ids)), groups=[SOCKET_GID], **sock))
    assert phase == "Succeeded", out
    assert "ALL-EQUAL" in out, out
    # Read back from the claim: a reloaded blob's file is deleted.
    assert spill_files(directory) == set(), spill_files(directory)

    # Spill again, then stop vineyardd gracefully: it deletes its spill files.
    put("spill-put-again")
    assert spill_files(directory), directory
    helm("uninstall", "vy", "--wait", "--timeout", "3m")
    assert spill_files(directory) == set(), spill_files(directory)


def test_host_network_serves_rpc_on_the_node_address(real_cluster: Cluster,
                                                     namespace: str) -> None:
    helm = Helm(real_cluster, namespace)
    helm.install("vy", "hostNetwork=true")
    [pod] = ready_pods(real_cluster, namespace, VINEYARDD)
    spec = pod["spec"]
    assert (spec["hostNetwork"], spec["dnsPolicy"]) == (True, "ClusterFirstWithHostNet")
    # Ready means wait-for-etcd resolved etcd-for-vy-vineyard through the cluster's DNS.
    assert pod["status"]["podIP"] == NODE_IP
    # The port is open on the node's address, to anything that reaches it (chart README,
    # "Host network"): this very process, outside any pod, connects.
    with socket.create_connection((NODE_IP, 9600), timeout=5):
        pass
    sock = hostpath_socket(f"/var/run/vineyard/{namespace}/vy")
    phase, out = run_pod(real_cluster, namespace,
                         worker_pod("hostnet-put", PUT, groups=[SOCKET_GID], **sock))
    assert phase == "Succeeded", out
    oid = int(out.split("ID", 1)[1].split()[1])
    # Over RPC, straight to the node's address and through the Service (no socket group).
    for i, host in enumerate((NODE_IP, f"vy-vineyard-rpc.{namespace}.svc.cluster.local")):
        phase, out = run_pod(real_cluster, namespace, worker_pod(
            f"hostnet-rpc-{i}", RPC_GET.format(host=host, port=9600, oid=oid)))
        assert phase == "Succeeded", out
        assert "RPC-EQUAL" in out, out
    res = helm("test", "vy", "--logs", "--timeout", "3m")
    # rpc, etcd, and the data path test's writers (a Job) and reader
    assert res.stdout.count("Phase:          Succeeded") == 4, res.stdout


def test_one_pool_takes_the_node_and_hands_it_back(real_cluster: Cluster,
                                                   namespace: str) -> None:
    helm = Helm(real_cluster, namespace)
    real_cluster.kubectl("label", "node", NODE_NAME, f"{POOL}=big", "--overwrite")
    try:
        helm.install("vy", values={"pools": [{
            "name": "big", "nodeSelector": {POOL: "big"}, "size": "128Mi",
            "memoryHeadroom": "256Mi"}]})
        [pod] = ready_pods(real_cluster, namespace, VINEYARDD)
        assert pod["metadata"]["labels"][POOL] == "big"
        assert pod["metadata"]["ownerReferences"][0]["name"] == "vy-vineyard-big"
        # Workloads mount the socket where they always do, whatever the node's pool.
        sock = hostpath_socket(f"/var/run/vineyard/{namespace}/vy")
        phase, out = run_pod(real_cluster, namespace,
                             worker_pod("pool-size", SIZE, groups=[SOCKET_GID], **sock))
        assert phase == "Succeeded", out
        assert "LIMIT 134217728" in out, out          # the pool's --size=128Mi
        phase, out = run_pod(real_cluster, namespace,
                             worker_pod("pool-put", PUT, groups=[SOCKET_GID], **sock))
        assert phase == "Succeeded", out
        report = vineyard_helm.status("vy", namespace=namespace,
                                      kubeconfig=str(real_cluster.kubeconfig),
                                      helm=str(real_cluster.bin_dir / "helm"))
        assert [(p.pool, p.ready, p.desired) for p in report.pools] == [("big", 1, 1)]
        assert report.vineyardd is not None
        assert report.vineyardd.desired == 0
        assert report.ready
        res = helm("test", "vy", "--logs", "--timeout", "3m")
        # rpc, etcd, and the data path test's writers (a Job) and reader
        assert res.stdout.count("Phase:          Succeeded") == 4, res.stdout

        # The node leaves the pool: the release's own DaemonSet takes it while the pool's
        # vineyardd stops; the new one waits for the old one's socket before it listens, so
        # the old one's exit cannot delete the new socket.
        old = pod["metadata"]["uid"]
        t0 = time.monotonic()
        real_cluster.kubectl("label", "node", NODE_NAME, f"{POOL}-")

        def taken_over() -> list[dict[str, Any]]:
            return [p for p in ready_pods(real_cluster, namespace, VINEYARDD)
                    if p["metadata"]["uid"] != old]

        assert wait_until(lambda: bool(taken_over()), 240, 0.5), helm.describe()
        record("node left its pool to the release's own vineyardd Ready, s",
               round(time.monotonic() - t0, 1))
        [new] = taken_over()
        assert new["metadata"]["ownerReferences"][0]["name"] == "vy-vineyard"
        log = real_cluster.kubectl("-n", namespace, "logs", new["metadata"]["name"],
                                   "-c", "prepare-socket-dir", check=False).stdout
        record("prepare-socket-dir waited for the old socket", "waiting up to" in log)
        # Still Ready after the old pod is long gone: its exit did not take the new socket.
        pool_pods = f"/api/v1/namespaces/{namespace}/pods?labelSelector={POOL}=big"
        assert wait_until(lambda: not kube(real_cluster).get(pool_pods)["items"], 120, 0.5), (
            helm.describe())

        # For three readiness periods (5 s) after that, it stays the one Ready vineyardd.
        def lost_its_socket() -> bool:
            ready = [p["metadata"]["uid"] for p in ready_pods(real_cluster, namespace, VINEYARDD)]
            return ready != [new["metadata"]["uid"]]

        assert not wait_until(lost_its_socket, 15, 1), helm.describe()
        phase, out = run_pod(real_cluster, namespace,
                             worker_pod("own-size", SIZE, groups=[SOCKET_GID], **sock))
        assert phase == "Succeeded", out
        assert "LIMIT 268435456" in out, out          # the top-level 256Mi again
    finally:
        real_cluster.kubectl("label", "node", NODE_NAME, f"{POOL}-", check=False)
