"""Fixtures of the real-node suite: a local cluster with a real kubelet node (containerd, CNI
bridge, kube-proxy, CoreDNS: localcluster/realnode.py) and no fake nodes, in its own state dir
(.cache/realnode-cluster, or LOCALCLUSTER_REAL_STATE_DIR) so it never fights the kwok suite.
The cluster lives as long as this package's tests (package scope), so its control plane is gone
before the kwok suites start theirs.

There is one real node per machine. When another state dir's node runs (`make demo` left
running), the suite borrows the machine: that node is stopped by its own state dir's teardown
for the duration, and started again afterwards (its pods come back through their controllers).

The chart is installed with its default images, exactly as `helm install` would: the node's
containerd pulls them from its loopback mirror (localcluster/images.py, realnode.py). Nothing
may leave the machine: the node's egress counter must read 0 when the suite ends. Workload
pods run the worker image (python3 + vineyard client) as a non-root user.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcluster import Cluster, images, wait_until
from localcluster.cluster import REPO_ROOT
from localcluster.realnode import NODE_NAME, live_owner, unavailable_reason
from tests.support.clusters import slug_of
from tests.support.figures import record_figures
from tests.support.helm import helm_binary
from tests.support.kube import create_namespace, kube, unique_name

STATE_DIR = Path(os.environ.get("LOCALCLUSTER_REAL_STATE_DIR")
                 or REPO_ROOT / ".cache" / "realnode-cluster")
CHART = REPO_ROOT / "charts" / "vineyard"
MEASURE_FILE = REPO_ROOT / ".cache" / "realnode-measurements.json"
WORKER_UID = 1001          # not vineyardd's uid, not in the socket group unless given
SOCKET_GID = 2000
# A raw connect to the socket: CONNECTED, or REFUSED and the errno (13: EACCES).
CONNECT_PROBE = ("import os, socket\ns = socket.socket(socket.AF_UNIX)\n"
                 "try:\n    s.connect(os.environ['VINEYARD_IPC_SOCKET']); print('CONNECTED')\n"
                 "except OSError as e:\n    print('REFUSED', e.errno)\n")

# Packets the egress counter is expected to see: only those a test sends on purpose to prove
# that the counter counts (test_realnode_egress.py adds them).
EXPECTED_EGRESS: list[int] = []


def record(key: str, value) -> None:
    """Adds a figure to .cache/realnode-measurements.json (the note's numbers)."""
    record_figures(MEASURE_FILE, {key: value})


@pytest.fixture(scope="package")
def real_cluster() -> Iterator[Cluster]:
    c = Cluster(STATE_DIR)
    reason = unavailable_reason(c.bin_dir)
    if reason:
        pytest.skip(f"no real node here: {reason}")
    with _machine_borrowed(c.state_dir), c.session(nodes=0, real_nodes=1, timeout=300):
        record("node join (kubelet start to Ready), s",
               round(c.timings.get("real node: node join (kubelet start to Ready)", -1), 2))
        node = c.real_node()
        yield c
        egress = node.egress_packets()
        record("packets bound off the machine from the real node and its pods (dropped)",
               egress - sum(EXPECTED_EGRESS))
        record("packets to not yet programmed ClusterIPs (dropped)",
               node.unprogrammed_service_packets())
        assert egress == sum(EXPECTED_EGRESS), (
            f"the real node or its pods sent {egress - sum(EXPECTED_EGRESS)} packets to "
            f"addresses off this machine (dropped and counted by {node.egress_chain}); the "
            f"kernel logged:\n{node.egress_log()}")


@contextlib.contextmanager
def _machine_borrowed(me: Path) -> Iterator[None]:
    """Stops another state dir's live real node for the duration, then starts it again."""
    owner = live_owner()
    if owner is None or owner == me:
        yield
        return
    lender = Cluster(owner)
    print(f"\nreal-node suite: borrowing the machine's real node from {owner} "
          "(stopped now, started again when the suite ends)", flush=True)
    lender.real_node().down()
    try:
        yield
    finally:
        if lender.is_healthy():
            lender.real_node().up(timeout=300)


class Helm:
    def __init__(self, cluster: Cluster, namespace: str):
        self.cluster, self.namespace = cluster, namespace

    def __call__(self, *args: str, check: bool = True,
                 timeout: float = 600) -> subprocess.CompletedProcess:
        res = subprocess.run([helm_binary(), *args, "-n", self.namespace], env=self.cluster.env,
                             capture_output=True, text=True, timeout=timeout)
        if check and res.returncode:
            raise AssertionError(f"helm {' '.join(args)}: {res.returncode}\n{res.stdout}\n"
                                 f"{res.stderr}\n{self.describe()}")
        return res

    def install(self, release: str, *sets: str, values: dict | None = None,
                wait: bool = True) -> float:
        """helm install of the chart (default images); returns seconds to all pods Ready."""
        argv = ["install", release, str(CHART)]
        for s in sets:
            argv += ["--set", s]
        if values:
            # JSON is YAML; a file keeps commas and newlines that --set would split on.
            path = STATE_DIR / f"values-{self.namespace}-{release}.json"
            path.write_text(json.dumps(values))
            argv += ["-f", str(path)]
        if wait:
            argv += ["--wait", "--timeout", "4m"]
        start = time.monotonic()
        self(*argv)
        return time.monotonic() - start

    def describe(self) -> str:
        pods = self.cluster.kubectl("-n", self.namespace, "get", "pods", "-o", "wide",
                                    check=False).stdout
        events = self.cluster.kubectl("-n", self.namespace, "get", "events",
                                      "--sort-by=.lastTimestamp", check=False).stdout
        return f"pods:\n{pods}\nevents:\n{events[-3000:]}"


@pytest.fixture
def namespace(real_cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    yield from _namespace(real_cluster, unique_name(f"real-{slug_of(request, 30)}"))


def _namespace(cluster: Cluster, name: str) -> Iterator[str]:
    yield create_namespace(cluster, name)
    for rel in _releases(cluster, name):
        subprocess.run([helm_binary(), "uninstall", rel, "-n", name, "--wait", "--timeout", "2m"],
                       env=cluster.env, capture_output=True, check=False)
    kube(cluster).delete(f"/api/v1/namespaces/{name}")
    wait_until(lambda: not kube(cluster).exists(f"/api/v1/namespaces/{name}"), 120, 0.5)
    # The chart's hostPath socket directories (kubelet made them: DirectoryOrCreate).
    shutil.rmtree(f"/var/run/vineyard/{name}", ignore_errors=True)
    with contextlib.suppress(OSError):
        os.rmdir("/var/run/vineyard")


def _releases(cluster: Cluster, ns: str) -> list[str]:
    res = subprocess.run([helm_binary(), "list", "-q", "-n", ns], env=cluster.env,
                         capture_output=True, text=True, check=False)
    return res.stdout.split()



def worker_pod(name: str, script: str, *, volumes: list[dict] | None = None,
               mounts: list[dict] | None = None, env: list[dict] | None = None,
               groups: list[int] | None = None) -> dict:
    """A one-shot pod running `script` with python3 in the worker image, as WORKER_UID."""
    sc: dict = {"runAsUser": WORKER_UID, "runAsGroup": WORKER_UID, "runAsNonRoot": True}
    if groups:
        sc["supplementalGroups"] = groups
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never", "nodeName": NODE_NAME, "securityContext": sc,
            "enableServiceLinks": False, "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "worker", "image": images.WORKER, "imagePullPolicy": "Never",
                "command": ["python3", "-c", script], "env": env or [],
                "volumeMounts": mounts or [],
                "resources": {"limits": {"memory": "2Gi"}},
            }],
            "volumes": volumes or [],
        },
    }


def hostpath_socket(host_dir: str) -> dict:
    """The volume, mount and env of a workload pod in hostPath mode, as NOTES.txt prints them."""
    return {"volumes": [{"name": "vineyard-socket",
                         "hostPath": {"path": host_dir, "type": "Directory"}}],
            "mounts": [{"name": "vineyard-socket", "mountPath": "/var/run/vineyard",
                        "readOnly": True}],
            "env": [{"name": "VINEYARD_IPC_SOCKET", "value": "/var/run/vineyard/vineyard.sock"}]}


def pvc_socket(claim: str) -> dict:
    """The volume, mount and env of a workload pod in PVC mode, as NOTES.txt prints them (each
    node's socket in <claim>/<node name>/)."""
    return {"volumes": [{"name": "vineyard-socket",
                         "persistentVolumeClaim": {"claimName": claim}}],
            "mounts": [{"name": "vineyard-socket", "mountPath": "/var/run/vineyard",
                        "readOnly": True}],
            "env": [{"name": "NODE_NAME",
                     "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                    {"name": "VINEYARD_IPC_SOCKET",
                     "value": "/var/run/vineyard/$(NODE_NAME)/vineyard.sock"}]}


def run_pod(cluster: Cluster, ns: str, pod: dict, timeout: float = 180) -> tuple[str, str]:
    """Creates the pod, waits until it ends; returns (phase, logs)."""
    name = pod["metadata"]["name"]
    kube(cluster).create(f"/api/v1/namespaces/{ns}/pods", pod)
    path = f"/api/v1/namespaces/{ns}/pods/{name}"
    phase = ""

    def done() -> bool:
        nonlocal phase
        phase = kube(cluster).get(path)["status"].get("phase", "")
        return phase in ("Succeeded", "Failed")

    ok = wait_until(done, timeout, 0.3)
    logs = cluster.kubectl("-n", ns, "logs", name, check=False)
    out = logs.stdout + logs.stderr
    if not ok:
        status = json.dumps(kube(cluster).get(path)["status"], indent=1)[-2000:]
        raise AssertionError(f"pod {name} did not finish in {timeout}s ({phase}):\n{out}\n{status}")
    return phase, out


def etcdctl(cluster: Cluster, ns: str, member: str, *args: str,
            stdin: str | None = None) -> subprocess.CompletedProcess:
    """etcdctl in an etcd member's container: the etcd image has no shell, one command per exec
    (stdin, when given, is passed with `kubectl exec -i`)."""
    interactive = ["-i"] if stdin is not None else []
    return cluster.kubectl("-n", ns, "exec", *interactive, member, "-c", "etcd", "--", "etcdctl",
                           *args, input=stdin, check=False)


PV_ROOT = Path("/tmp/localcluster-real-pv")


@pytest.fixture
def local_pvs(real_cluster: Cluster) -> Iterator:
    """make(name, claim_ns, claim_name, modes): a local PV pre-bound to that claim, on the real
    node, in a fresh host directory; all deleted afterwards."""
    made: list[tuple[str, Path]] = []

    def make(claim_ns: str, claim_name: str, modes: list[str]) -> str:
        name = f"real-pv-{uuid.uuid4().hex[:8]}"
        path = PV_ROOT / name
        path.mkdir(parents=True)
        kube(real_cluster).create("/api/v1/persistentvolumes", {
            "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
            "spec": {
                "capacity": {"storage": "2Gi"}, "accessModes": modes,
                "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                "claimRef": {"namespace": claim_ns, "name": claim_name},
                "local": {"path": str(path)},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In",
                     "values": [NODE_NAME]}]}]}},
            }})
        made.append((name, path))
        return name

    yield make
    for name, _ in made:
        kube(real_cluster).delete(f"/api/v1/persistentvolumes/{name}")
    for name, path in made:
        wait_until(lambda n=name: not _pv_exists(real_cluster, n), 60, 0.5)
        shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(OSError):
        PV_ROOT.rmdir()


def _pv_exists(cluster: Cluster, name: str) -> bool:
    return any(p["metadata"]["name"] == name
               for p in kube(cluster).get("/api/v1/persistentvolumes")["items"])
