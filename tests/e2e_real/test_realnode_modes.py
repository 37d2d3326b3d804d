"""The other socket modes and the release's life cycle on the real node: PVC mode on a local
PersistentVolume, emptyDir mode with the workload as a sidecar, an upgrade that changes a flag,
and uninstall leaving nothing on the node. (etcd losing pods: test_realnode_etcd_survival.py.)"""
from __future__ import annotations

from pathlib import Path

from localcluster import Cluster, wait_until
from tests.support.kube import kube, ready_pods

from .conftest import (
    CHART,
    CONNECT_PROBE,
    SOCKET_GID,
    Helm,
    hostpath_socket,
    pvc_socket,
    record,
    run_pod,
    worker_pod,
)
from .test_realnode_chart import GET, PUT


def test_pvc_mode_cross_pod(real_cluster: Cluster, namespace: str, local_pvs) -> None:
    local_pvs(namespace, "vy-vineyard-socket", ["ReadWriteMany"])
    helm = Helm(real_cluster, namespace)
    seconds = helm.install("vy", "socket.volume.type=persistentVolumeClaim",
                           "socket.volume.persistentVolumeClaim.storageClass=")
    record("helm install to all pods Ready (PVC mode, real node), s", round(seconds, 1))
    claim = pvc_socket("vy-vineyard-socket")
    phase, out = run_pod(real_cluster, namespace, worker_pod("pvc-a", PUT, groups=[SOCKET_GID],
                                                             **claim))
    assert phase == "Succeeded", out
    oid = int(out.split("ID", 1)[1].split()[1])
    phase, out = run_pod(real_cluster, namespace, worker_pod("pvc-b", GET.format(oid=oid),
                                                             groups=[SOCKET_GID], **claim))
    assert phase == "Succeeded", out
    assert "EQUAL" in out, out
    # The claim is mountable by any pod of the namespace: the directory's group still gates.
    _, out = run_pod(real_cluster, namespace, worker_pod("pvc-no-group", CONNECT_PROBE, **claim))
    assert "REFUSED 13" in out, out   # EACCES
    _, out = run_pod(real_cluster, namespace, worker_pod("pvc-group", CONNECT_PROBE,
                                                         groups=[SOCKET_GID], **claim))
    assert "CONNECTED" in out, out
    res = helm("test", "vy", "--logs", "--timeout", "3m")
    assert "Phase:          Succeeded" in res.stdout, res.stdout


def test_emptydir_mode_sidecar(real_cluster: Cluster, namespace: str) -> None:
    from localcluster import images
    script = ("import time, numpy as np, vineyard\n"
              "c = vineyard.connect()\n"
              "oid = c.put(np.arange(1000) * 7)\n"
              "assert np.array_equal(c.get(oid), np.arange(1000) * 7)\n"
              "print('SIDECAR-EQUAL', oid, flush=True)\n"
              "time.sleep(1e9)\n")
    helm = Helm(real_cluster, namespace)
    helm.install("vy", "socket.volume.type=emptyDir", values={"sidecars": [{
        "name": "worker", "image": images.WORKER, "imagePullPolicy": "Never",
        "command": ["python3", "-c", script]}]})
    pods = ready_pods(real_cluster, namespace, "app.kubernetes.io/component=vineyardd")
    assert len(pods) == 1

    def logged() -> bool:
        out = real_cluster.kubectl("-n", namespace, "logs", pods[0]["metadata"]["name"],
                                   "-c", "worker", check=False).stdout
        return "SIDECAR-EQUAL" in out

    assert wait_until(logged, 60, 0.5), helm.describe()


def test_upgrade_rolls_and_serves_then_uninstall_leaves_nothing(
        real_cluster: Cluster, namespace: str) -> None:
    helm = Helm(real_cluster, namespace)
    helm.install("vy")
    sel = "app.kubernetes.io/component=vineyardd"
    before = ready_pods(real_cluster, namespace, sel)[0]
    argv = [str(a) for a in ["upgrade", "vy", Path(__file__).parents[2] / "charts/vineyard",
                             "--reuse-values", "--set", "vineyard.compression=false",
                             "--wait", "--timeout", "4m"]]
    helm(*argv)
    after = ready_pods(real_cluster, namespace, sel)
    assert len(after) == 1
    assert after[0]["metadata"]["uid"] != before["metadata"]["uid"]
    assert "--compression=false" in after[0]["spec"]["containers"][0]["args"]
    sock = hostpath_socket(f"/var/run/vineyard/{namespace}/vy")
    phase, out = run_pod(real_cluster, namespace, worker_pod("after-upgrade", PUT,
                                                             groups=[SOCKET_GID], **sock))
    assert phase == "Succeeded", out
    kube(real_cluster).delete(f"/api/v1/namespaces/{namespace}/pods/after-upgrade")
    pod_uids = {p["metadata"]["uid"] for p in
                kube(real_cluster).get(f"/api/v1/namespaces/{namespace}/pods")["items"]}
    helm("uninstall", "vy", "--wait", "--timeout", "3m")
    assert wait_until(lambda: not kube(real_cluster).get(
        f"/api/v1/namespaces/{namespace}/pods")["items"], 120, 0.5)
    node = real_cluster.real_node()

    def nothing_left() -> bool:
        containers = node._ctr("containers", "ls",
                               f"labels.\"io.kubernetes.pod.namespace\"=={namespace}").stdout
        running = [line for line in containers.splitlines()[1:] if line.strip()]
        mounts = [line for line in Path("/proc/self/mountinfo").read_text().splitlines()
                  if any(uid in line for uid in pod_uids)]
        return not running and not mounts

    # Dead containers are garbage-collected by kubelet (every minute); mounts go at once.
    assert wait_until(nothing_left, 150, 2.0), node._ctr("containers", "ls").stdout


def test_socket_volume_type_change_on_upgrade_moves_the_socket(
        real_cluster: Cluster, namespace: str, local_pvs) -> None:
    """What the chart README says an upgrade of socket.volume.type does to running workloads:
    vineyardd restarts on the new volume, a workload still mounting the old location finds no
    live socket there, and one with the mount NOTES prints for the new mode connects."""
    helm = Helm(real_cluster, namespace)
    helm.install("vy")
    old = hostpath_socket(f"/var/run/vineyard/{namespace}/vy")
    _, out = run_pod(real_cluster, namespace, worker_pod("old-before", CONNECT_PROBE,
                                                         groups=[SOCKET_GID], **old))
    assert "CONNECTED" in out, out
    local_pvs(namespace, "vy-vineyard-socket", ["ReadWriteMany"])
    helm("upgrade", "vy", str(CHART), "--reuse-values", "--set",
         "socket.volume.type=persistentVolumeClaim", "--set",
         "socket.volume.persistentVolumeClaim.storageClass=", "--wait", "--timeout", "4m")
    _, out = run_pod(real_cluster, namespace, worker_pod("old-after", CONNECT_PROBE,
                                                         groups=[SOCKET_GID], **old))
    assert "REFUSED" in out, out   # ECONNREFUSED (stale file) or ENOENT: nobody listens there
    claim = pvc_socket("vy-vineyard-socket")
    _, out = run_pod(real_cluster, namespace, worker_pod("new-after", CONNECT_PROBE,
                                                         groups=[SOCKET_GID], **claim))
    assert "CONNECTED" in out, out
