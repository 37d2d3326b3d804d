"""etcd survives losing a pod, on the real node (issue 20): every topology the chart offers keeps
every key through the replacement of any one member pod, and vineyardd registers again when its
etcd did lose everything (the throwaway emptyDir member, opted into).

Each test counts the keys under vineyard's prefix before and after, reads a named object through
vineyard afterwards, and records the time from the fault to a healthy etcd
(.cache/realnode-measurements.json: the chart README's Operations table quotes them). The claims
come from the cluster's default StorageClass (localcluster's local-path provisioner), as on any
cluster with one: the chart's defaults, nothing pre-bound.
"""
from __future__ import annotations

import json
import subprocess
import time

import yaml

from localcluster import Cluster, wait_until
from localcluster.realnode import NODE_NAME
from tests.support.kube import kube, ready_pods

from .conftest import (
    CHART,
    SOCKET_GID,
    Helm,
    etcdctl,
    hostpath_socket,
    record,
    run_pod,
    worker_pod,
)
from .test_realnode_chart import PUT

ETCD = "app.kubernetes.io/component=etcd"
VINEYARDD = "app.kubernetes.io/component=vineyardd"
PUT_NAMED = PUT + "c.put_name(oid, {name!r})\nprint('NAMED', {name!r})\n"
GET_NAMED = ("import vineyard\nc = vineyard.connect()\n"
             "try:\n    print('FOUND', int(c.get_name({name!r})))\n"
             "except Exception as e:\n    print('MISSING', type(e).__name__)\n")


class Etcd:
    """etcdctl in a member's container (the etcd image has no shell: one command per exec)."""

    def __init__(self, cluster: Cluster, namespace: str, release: str = "vy"):
        self.cluster, self.namespace, self.release = cluster, namespace, release

    def run(self, member: int, *args: str) -> subprocess.CompletedProcess:
        return etcdctl(self.cluster, self.namespace, f"{self.release}-vineyard-etcd-{member}",
                       *args)

    def ctl(self, member: int, *args: str, timeout: str = "5s") -> str:
        res = self.run(member, f"--command-timeout={timeout}", *args)
        assert res.returncode == 0, (args, res.stdout, res.stderr)
        return res.stdout

    def keys(self, member: int = 0) -> int:
        out = json.loads(self.ctl(member, "get", "/vineyard", "--prefix", "--keys-only",
                                  "--consistency=s", "-w", "json"))
        return int(out.get("count", 0))

    def healthy_members(self, member: int = 0) -> int:
        res = self.run(member, "endpoint", "health", "--cluster", "-w", "json")
        if res.returncode and not res.stdout.strip():
            return 0
        return sum(1 for h in json.loads(res.stdout or "[]") if h.get("health"))

    def revision(self, member: int = 0) -> int:
        out = json.loads(self.ctl(member, "endpoint", "status", "-w", "json"))
        return int(out[0]["Status"]["header"]["revision"])


def _named(cluster: Cluster, namespace: str, pod: str, script: str, name: str) -> str:
    sock = hostpath_socket(f"/var/run/vineyard/{namespace}/vy")
    phase, out = run_pod(cluster, namespace, worker_pod(pod, script.format(name=name),
                                                        groups=[SOCKET_GID], **sock))
    assert phase == "Succeeded", out
    return out


def _replace(cluster: Cluster, namespace: str, pod: str, members: int, etcd: Etcd) -> float:
    """Deletes one etcd pod (what a drain or an eviction does to it); returns the seconds until
    its replacement is Ready and every member reports healthy."""
    path = f"/api/v1/namespaces/{namespace}/pods/{pod}"
    uid = kube(cluster).get(path)["metadata"]["uid"]
    t0 = time.monotonic()
    kube(cluster).delete(path)

    def back() -> bool:
        ready = {p["metadata"]["name"]: p["metadata"]["uid"]
                 for p in ready_pods(cluster, namespace, ETCD)}
        return ready.get(pod, uid) != uid and len(ready) == members
    assert wait_until(back, 240, 0.5), Helm(cluster, namespace).describe()
    assert wait_until(lambda: etcd.healthy_members() == members, 60, 1)
    return time.monotonic() - t0


def test_single_member_replaced_keeps_every_key(real_cluster: Cluster, namespace: str) -> None:
    """The default install (one member on a claim of the default StorageClass): its pod deleted,
    the replacement comes back on the same claim with every key; vineyardd never notices."""
    helm = Helm(real_cluster, namespace)
    helm.install("vy")
    claims = kube(real_cluster).get(
        f"/api/v1/namespaces/{namespace}/persistentvolumeclaims")["items"]
    assert [c["status"]["phase"] for c in claims] == ["Bound"], claims
    etcd = Etcd(real_cluster, namespace)
    assert "NAMED" in _named(real_cluster, namespace, "put", PUT_NAMED, "survivor")
    before = etcd.keys()
    assert before > 0
    vineyardd = ready_pods(real_cluster, namespace, VINEYARDD)[0]
    seconds = _replace(real_cluster, namespace, "vy-vineyard-etcd-0", 1, etcd)
    record("etcd 1 member (claim): pod deleted to healthy, s", round(seconds, 1))
    record("etcd 1 member (claim): pod deleted, keys before/after", [before, etcd.keys()])
    assert etcd.keys() == before
    assert "FOUND" in _named(real_cluster, namespace, "get", GET_NAMED, "survivor")
    after = ready_pods(real_cluster, namespace, VINEYARDD)[0]
    assert after["metadata"]["uid"] == vineyardd["metadata"]["uid"]
    assert after["status"]["containerStatuses"][0]["restartCount"] == 0


def test_three_members_each_replaced_in_turn_then_drained(real_cluster: Cluster,
                                                          namespace: str) -> None:
    """The ci etcd-ha scenario (three members on claims, NetworkPolicies): `helm test` passes;
    each member pod deleted in turn keeps every key and the quorum;
    then `kubectl drain` of the node holding them evicts one member and no more (the PDB), the
    others keep serving writes, and the evicted one comes back with its data on uncordon."""
    helm = Helm(real_cluster, namespace)
    values = yaml.safe_load((CHART / "ci" / "etcd-ha-values.yaml").read_text())
    seconds = helm.install("vy", values=values)  # the ci scenario: NetworkPolicies on too
    record("etcd 3 members (claims): helm install to all Ready, s", round(seconds, 1))
    etcd = Etcd(real_cluster, namespace)
    assert etcd.healthy_members() == 3
    res = helm("test", "vy", "--logs", "--timeout", "3m")
    assert res.stdout.count("Phase:          Succeeded") >= 2, res.stdout
    assert "NAMED" in _named(real_cluster, namespace, "put", PUT_NAMED, "ha-survivor")
    before = etcd.keys()
    times = []
    kept = []
    for i in range(3):
        times.append(_replace(real_cluster, namespace, f"vy-vineyard-etcd-{i}", 3, etcd))
        kept.append(etcd.keys(i))
        assert kept[-1] >= before, f"member {i} came back without every key"
    record("etcd 3 members (claims): keys before, then on each replaced member", [before, kept])
    record("etcd 3 members (claims): each pod deleted to all healthy, s",
           [round(t, 1) for t in times])
    assert "FOUND" in _named(real_cluster, namespace, "get", GET_NAMED, "ha-survivor")

    # A drain: one eviction at a time, each refused while the budget is used up.
    t0 = time.monotonic()
    res = real_cluster.kubectl("drain", NODE_NAME, "--ignore-daemonsets", "--force",
                               "--delete-emptydir-data", f"--pod-selector={ETCD}",
                               "--timeout=25s", check=False)
    try:
        assert res.returncode != 0, "the drain evicted every member despite the PDB"
        pods = kube(real_cluster).get(
            f"/api/v1/namespaces/{namespace}/pods?labelSelector={ETCD}")["items"]
        running = [p["metadata"]["name"] for p in pods
                   if p["metadata"].get("deletionTimestamp") is None
                   and p["status"].get("phase") == "Running"]
        assert len(running) == 2, (res.stdout, res.stderr, running)
        member = int(running[0].rsplit("-", 1)[1])
        etcd.ctl(member, "put", "/vineyard-drain-test/written-during-drain", "yes")
    finally:
        real_cluster.kubectl("uncordon", NODE_NAME, check=False)
    assert wait_until(lambda: len(ready_pods(real_cluster, namespace, ETCD)) == 3, 240, 1), \
        helm.describe()
    assert wait_until(lambda: etcd.healthy_members() == 3, 60, 1)
    record("etcd 3 members (claims): drain refused past 1 eviction, uncordon to all healthy, s",
           round(time.monotonic() - t0, 1))
    record("etcd 3 members (claims): keys on each member after the drain",
           [etcd.keys(i) for i in range(3)])
    for i in range(3):
        assert etcd.keys(i) >= before
        out = etcd.ctl(i, "get", "/vineyard-drain-test/written-during-drain",
                       "--print-value-only", "--consistency=s")
        assert out.strip() == "yes", f"member {i}: {out!r}"
    assert "FOUND" in _named(real_cluster, namespace, "get-after-drain", GET_NAMED, "ha-survivor")


def test_etcd_container_killed_in_place_keeps_every_key(real_cluster: Cluster,
                                                         namespace: str) -> None:
    """SIGKILL to the etcd process (an OOM kill, a crash): the kubelet restarts the container in
    the same pod, on the same volume, and every key is there."""
    helm = Helm(real_cluster, namespace)
    helm.install("vy")
    etcd = Etcd(real_cluster, namespace)
    assert "NAMED" in _named(real_cluster, namespace, "put", PUT_NAMED, "killed")
    before = etcd.keys()
    pod = kube(real_cluster).get(f"/api/v1/namespaces/{namespace}/pods/vy-vineyard-etcd-0")
    container_id = pod["status"]["containerStatuses"][0]["containerID"].split("://", 1)[1]
    t0 = time.monotonic()
    real_cluster.real_node().kill_container(container_id)

    def restarted() -> bool:
        p = kube(real_cluster).get(f"/api/v1/namespaces/{namespace}/pods/vy-vineyard-etcd-0")
        statuses = p["status"].get("containerStatuses") or [{}]
        return statuses[0].get("restartCount", 0) >= 1 and statuses[0].get("ready", False)
    assert wait_until(restarted, 120, 0.5), helm.describe()
    record("etcd container SIGKILLed to Ready again, s", round(time.monotonic() - t0, 1))
    record("etcd container SIGKILLed, keys before/after", [before, etcd.keys()])
    assert etcd.keys() == before
    assert "FOUND" in _named(real_cluster, namespace, "get", GET_NAMED, "killed")


def test_vineyardd_registers_again_when_throwaway_etcd_comes_back_empty(
        real_cluster: Cluster, namespace: str) -> None:
    """etcd.persistence.enabled=false, opted into: the replaced member is empty (the names written
    before are lost, as values.yaml and NOTES warn). vineyardd's liveness probe sees etcd's
    revision go backwards, the kubelet restarts it, and it registers again: a name written after
    the recovery resolves. failureThreshold 2 here (default 6: a minute) to keep the test short."""
    helm = Helm(real_cluster, namespace)
    helm.install("vy", "etcd.persistence.enabled=false", "probes.liveness.failureThreshold=2")
    notes = helm("get", "notes", "vy").stdout
    assert "WARNING: throwaway metadata" in notes, notes
    etcd = Etcd(real_cluster, namespace)
    assert "NAMED" in _named(real_cluster, namespace, "put", PUT_NAMED, "before-loss")
    # The probe records the revision at its next run (every 10 s); wait for one past the put.
    revision = etcd.revision()
    time.sleep(11)
    assert etcd.revision() > revision
    before = etcd.keys()
    t0 = time.monotonic()
    _replace(real_cluster, namespace, "vy-vineyard-etcd-0", 1, etcd)
    empty = etcd.keys()
    record("etcd 1 member (emptyDir): pod deleted, keys before/after", [before, empty])
    assert empty < before

    def restarted() -> bool:
        pods = ready_pods(real_cluster, namespace, VINEYARDD)
        return bool(pods) and pods[0]["status"]["containerStatuses"][0]["restartCount"] >= 1
    assert wait_until(restarted, 120, 1), helm.describe()
    record("vineyardd restarted by liveness after etcd came back empty (failureThreshold 2), s",
           round(time.monotonic() - t0, 1))
    assert wait_until(lambda: etcd.keys() > empty, 60, 1)
    record("etcd 1 member (emptyDir): keys once vineyardd registered again", etcd.keys())
    assert "MISSING" in _named(real_cluster, namespace, "lost", GET_NAMED, "before-loss")
    assert "NAMED" in _named(real_cluster, namespace, "put2", PUT_NAMED, "after-recovery")
    assert "FOUND" in _named(real_cluster, namespace, "get2", GET_NAMED, "after-recovery")
