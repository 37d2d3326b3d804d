"""The chart on a real kubelet node, hostPath mode: real probes, `helm test`, cross-pod IPC
with the real vineyard client, the RPC Service through kube-proxy and CoreDNS, the socket's
access gate, vineyardd restart, and get latency from a pod vs. from the host."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest

from localcluster import Cluster, wait_until
from localcluster.realnode import NODE_NAME
from tests.support.kube import kube, ready_pods

from .conftest import (
    SOCKET_GID,
    Helm,
    _namespace,
    hostpath_socket,
    record,
    run_pod,
    worker_pod,
)

RELEASE = "vy"
PUT = """
import numpy as np, vineyard
c = vineyard.connect()
a = np.arange(1 << 20, dtype='int64') * 3
oid = c.put(a)
c.persist(oid)
print('ID', repr(oid), int(oid))
"""
GET = """
import numpy as np, vineyard
c = vineyard.connect()
b = c.get(vineyard.ObjectID({oid}))
assert np.array_equal(b, np.arange(1 << 20, dtype='int64') * 3), 'arrays differ'
print('EQUAL', c.instance_id)
"""
RPC_GET = """
import numpy as np, vineyard
c = vineyard.connect({host!r}, {port})
meta = c.get_meta(vineyard.ObjectID({oid}))
print('META', meta.typename)
b = c.get(vineyard.ObjectID({oid}))
assert np.array_equal(b, np.arange(1 << 20, dtype='int64') * 3), 'arrays differ'
print('RPC-EQUAL')
"""
LATENCY = """
import time, numpy as np, vineyard
c = vineyard.connect()
a = np.ones(256 << 20, dtype='uint8')
t0 = time.perf_counter(); oid = c.put(a); put = time.perf_counter() - t0
gets = []
for _ in range(15):
    t0 = time.perf_counter(); b = c.get(oid); gets.append(time.perf_counter() - t0)
    assert b.nbytes == 256 << 20
    del b
gets.sort()
print('LATENCY', put, gets[len(gets) // 2], gets[0])
c.delete(oid)
"""


@pytest.fixture(scope="module")
def release(real_cluster: Cluster) -> Iterator[tuple[str, str]]:
    """One hostPath release, shared by this module's tests: (namespace, host socket dir)."""
    for ns in _namespace(real_cluster, f"real-chart-{uuid.uuid4().hex[:5]}"):
        helm = Helm(real_cluster, ns)
        seconds = helm.install(RELEASE, "vineyard.size=1Gi", "resources.requests.memory=1536Mi",
                               "resources.limits.memory=1536Mi")
        record("helm install to all pods Ready (hostPath, real node), s", round(seconds, 1))
        yield ns, f"/var/run/vineyard/{ns}/{RELEASE}"


def _helm(cluster: Cluster, ns: str) -> Helm:
    return Helm(cluster, ns)


def test_pods_ready_by_real_probes_and_helm_test(real_cluster: Cluster, release) -> None:
    ns, host_dir = release
    pods = kube(real_cluster).get(f"/api/v1/namespaces/{ns}/pods")["items"]
    assert {p["spec"]["nodeName"] for p in pods} == {NODE_NAME}
    for pod in pods:
        statuses = pod["status"]["containerStatuses"]
        assert all(s["ready"] and "running" in s["state"] for s in statuses), statuses
        # A real container: containerd gave it an id, the image is the locally built one.
        assert all(s["containerID"].startswith("containerd://") for s in statuses)
    # The socket exists on the host, in a directory only group 2000 may enter.
    vineyardd = next(p for p in pods if p["metadata"]["labels"].get(
        "app.kubernetes.io/component") == "vineyardd")
    uid = vineyardd["spec"]["securityContext"]["runAsUser"]
    st = os.stat(host_dir)
    assert (st.st_uid, st.st_gid, oct(st.st_mode & 0o777)) == (uid, SOCKET_GID, "0o750")
    assert os.path.exists(f"{host_dir}/vineyard.sock")
    res = _helm(real_cluster, ns)("test", RELEASE, "--logs")
    assert "Phase:          Succeeded" in res.stdout or "Succeeded" in res.stdout, res.stdout


def test_cross_pod_ipc_and_rpc(real_cluster: Cluster, release) -> None:
    ns, host_dir = release
    sock = hostpath_socket(host_dir)
    phase, out = run_pod(real_cluster, ns, worker_pod("worker-a", PUT, groups=[SOCKET_GID], **sock))
    assert phase == "Succeeded", out
    oid = int(out.split("ID", 1)[1].split()[1])
    phase, out = run_pod(real_cluster, ns, worker_pod("worker-b", GET.format(oid=oid),
                                                      groups=[SOCKET_GID], **sock))
    assert phase == "Succeeded", out
    assert "EQUAL" in out, out
    # Over the RPC Service, by its DNS name (CoreDNS) and ClusterIP (kube-proxy); no socket.
    host = f"{RELEASE}-vineyard-rpc.{ns}.svc.cluster.local"
    svc = kube(real_cluster).get(f"/api/v1/namespaces/{ns}/services")["items"]
    rpc = [s for s in svc if s["metadata"]["name"].endswith("-rpc")]
    assert rpc, [s["metadata"]["name"] for s in svc]
    host = f"{rpc[0]['metadata']['name']}.{ns}.svc.cluster.local"
    phase, out = run_pod(real_cluster, ns, worker_pod(
        "worker-rpc", RPC_GET.format(host=host, port=9600, oid=oid)))
    assert phase == "Succeeded", out
    assert "RPC-EQUAL" in out, out


def test_socket_group_gates_access(real_cluster: Cluster, release) -> None:
    ns, host_dir = release
    sock = hostpath_socket(host_dir)
    probe = ("import vineyard\ntry:\n    vineyard.connect()\n    print('CONNECTED')\n"
             "except Exception as e:\n    print('REFUSED', type(e).__name__, e)\n")
    _, out = run_pod(real_cluster, ns, worker_pod("no-group", probe, **sock))
    assert "REFUSED" in out, out
    assert "CONNECTED" not in out, out
    _, out = run_pod(real_cluster, ns, worker_pod("with-group", probe, groups=[SOCKET_GID], **sock))
    assert "CONNECTED" in out, out


def test_get_latency_pod_vs_host(real_cluster: Cluster, release) -> None:
    """256 MiB object: get latency from a worker pod and from a host process (group 2000)."""
    ns, host_dir = release
    sock = hostpath_socket(host_dir)
    _, out = run_pod(real_cluster, ns, worker_pod("latency", LATENCY, groups=[SOCKET_GID], **sock))
    pod_put, pod_get, pod_min = map(float, out.split("LATENCY", 1)[1].split()[:3])
    host = subprocess.run(
        ["setpriv", "--reuid=1001", "--regid=1001", f"--groups={SOCKET_GID}",
         sys.executable, "-c", LATENCY],
        env={**os.environ, "VINEYARD_IPC_SOCKET": f"{host_dir}/vineyard.sock",
             "HOME": "/tmp"}, capture_output=True, text=True, timeout=300)
    assert host.returncode == 0, host.stderr
    host_put, host_get, host_min = map(float, host.stdout.split("LATENCY", 1)[1].split()[:3])
    record("get 256 MiB", {
        "pod median ms": round(pod_get * 1e3, 3), "host median ms": round(host_get * 1e3, 3),
        "pod/host ratio": round(pod_get / host_get, 2),
        "pod min ms": round(pod_min * 1e3, 3), "host min ms": round(host_min * 1e3, 3),
        "put pod ms": round(pod_put * 1e3, 1), "put host ms": round(host_put * 1e3, 1)})
    # Zero copy both ways: a pod pays no more than a few times the host's cost.
    assert pod_get < max(10 * host_get, 0.05), (pod_get, host_get)


def test_vineyardd_restart_and_reconnect(real_cluster: Cluster, release) -> None:
    ns, host_dir = release
    sel = "app.kubernetes.io/component=vineyardd"
    old = ready_pods(real_cluster, ns, sel)
    assert len(old) == 1
    kube(real_cluster).delete(f"/api/v1/namespaces/{ns}/pods/{old[0]['metadata']['name']}")
    t0 = time.monotonic()
    assert wait_until(lambda: [p for p in ready_pods(real_cluster, ns, sel)
                               if p["metadata"]["uid"] != old[0]["metadata"]["uid"]], 180, 0.5), \
        Helm(real_cluster, ns).describe()
    record("vineyardd pod deleted to replacement Ready, s", round(time.monotonic() - t0, 1))
    sock = hostpath_socket(host_dir)
    phase, out = run_pod(real_cluster, ns, worker_pod("after-restart", PUT, groups=[SOCKET_GID],
                                                      **sock))
    assert phase == "Succeeded", out
