"""etcd operations from the chart README ("Operations") run for real: the defragmentation
CronJob's job completes against the members, and the documented topology change (back up with
`etcdctl snapshot save` to a claim, uninstall, restore with `etcdutl` into each new member's
claim, install with the new values) takes a 1-member etcd to 3 members keeping every key, in
one cluster."""
from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

from localcluster import Cluster, images, wait_until
from tests.support.kube import kube

from .conftest import CHART, Helm, etcdctl, record

ETCD_SEL = "app.kubernetes.io/component=etcd"
SECURITY = {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532}


def _run_to_completion(cluster: Cluster, ns: str, pod: dict, timeout: float = 120) -> str:
    name = pod["metadata"]["name"]
    kube(cluster).create(f"/api/v1/namespaces/{ns}/pods", pod)
    path = f"/api/v1/namespaces/{ns}/pods/{name}"
    assert wait_until(lambda: kube(cluster).get(path)["status"].get("phase") in
                      ("Succeeded", "Failed"), timeout, 0.5), kube(cluster).get(path)["status"]
    logs = cluster.kubectl("-n", ns, "logs", name, check=False)
    phase = kube(cluster).get(path)["status"]["phase"]
    assert phase == "Succeeded", logs.stdout + logs.stderr
    return logs.stdout + logs.stderr


def _claim(name: str, size: str = "1Gi") -> dict:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "",
                     "resources": {"requests": {"storage": size}}}}


def _etcd_pod(name: str, command: list[str], volumes: dict[str, str]) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": "Never", "securityContext": SECURITY,
                     "enableServiceLinks": False, "automountServiceAccountToken": False,
                     "containers": [{"name": "etcd", "image": images.ETCD, "command": command,
                                     "volumeMounts": [{"name": v, "mountPath": m}
                                                      for v, m in volumes.items()]}],
                     "volumes": [{"name": v, "persistentVolumeClaim": {"claimName": v}}
                                 for v in volumes]}}


def test_defrag_cronjob_job_completes(real_cluster: Cluster, namespace: str) -> None:
    Helm(real_cluster, namespace).install("vy")
    res = real_cluster.kubectl("-n", namespace, "create", "job", "defrag-now",
                               "--from=cronjob/vy-vineyard-etcd-defrag")
    assert res.returncode == 0, res.stderr
    job = f"/apis/batch/v1/namespaces/{namespace}/jobs/defrag-now"
    assert wait_until(lambda: (kube(real_cluster).get(job)["status"].get("succeeded") or 0) >= 1,
                      120, 0.5), kube(real_cluster).get(job)["status"]
    logs = real_cluster.kubectl("-n", namespace, "logs", "job/defrag-now").stdout
    assert "Finished defragmenting etcd member" in logs, logs


def test_documented_topology_change_keeps_every_key(
        real_cluster: Cluster, namespace: str, local_pvs: Callable[..., str]) -> None:
    ns = namespace
    for claim in ("data-vy-vineyard-etcd-0", "vy-etcd-backup"):
        local_pvs(ns, claim, ["ReadWriteOnce"])
    helm = Helm(real_cluster, ns)
    helm.install("vy", "etcd.persistence.enabled=true", "etcd.persistence.storageClass=")
    keys = {f"/vineyard/topology-test/{i}": f"value-{i}" for i in range(50)}
    for key, value in keys.items():
        assert etcdctl(real_cluster, ns, "vy-vineyard-etcd-0", "put", key, value).returncode == 0

    # 1. Back up to a claim with a one-off pod (the README's etcd-backup pod).
    kube(real_cluster).create(f"/api/v1/namespaces/{ns}/persistentvolumeclaims",
                              _claim("vy-etcd-backup"))
    endpoint = f"http://etcd-for-vy-vineyard.{ns}.svc.cluster.local:2379"
    _run_to_completion(real_cluster, ns, _etcd_pod(
        "etcd-backup", ["etcdctl", f"--endpoints={endpoint}", "snapshot", "save",
                        "/backup/vineyard-etcd.db"], {"vy-etcd-backup": "/backup"}))
    status = _run_to_completion(real_cluster, ns, _etcd_pod(
        "etcd-backup-check", ["etcdutl", "snapshot", "status", "/backup/vineyard-etcd.db",
                              "-w", "json"], {"vy-etcd-backup": "/backup"}))
    record("topology change: snapshot status", status.strip().splitlines()[-1])

    # 2. Uninstall, delete the old members' claims.
    helm("uninstall", "vy", "--wait", "--timeout", "3m")
    real_cluster.kubectl("-n", ns, "delete", "pvc", "-l",
                         "app.kubernetes.io/instance=vy,app.kubernetes.io/component=etcd",
                         "--wait=true")

    # 3. The new members' cluster, from the new values.
    new = ["--set", "etcd.replicaCount=3", "--set", "etcd.persistence.enabled=true",
           "--set", "etcd.persistence.storageClass="]
    rendered = subprocess.run(["helm", "template", "vy", str(CHART), "-n", ns, *new,
                               "-s", "templates/etcd-statefulset.yaml"], env=real_cluster.env,
                              capture_output=True, text=True, check=True).stdout
    initial_cluster = next(line.split("=", 1)[1].strip() for line in rendered.splitlines()
                           if "--initial-cluster=" in line)
    token = next(line.split("=", 1)[1].strip() for line in rendered.splitlines()
                 if "--initial-cluster-token=" in line)

    # 4. Restore into each new member's claim.
    for i in range(3):
        claim = f"data-vy-vineyard-etcd-{i}"
        local_pvs(ns, claim, ["ReadWriteOnce"])
        kube(real_cluster).create(f"/api/v1/namespaces/{ns}/persistentvolumeclaims",
                                  {**_claim(claim), "metadata": {"name": claim, "labels": {
                                    "app.kubernetes.io/instance": "vy",
                                    "app.kubernetes.io/component": "etcd"}}})
        member = f"vy-vineyard-etcd-{i}"
        peer = f"http://{member}.vy-vineyard-etcd-headless.{ns}.svc.cluster.local:2380"
        _run_to_completion(real_cluster, ns, _etcd_pod(
            f"etcd-restore-{i}",
            ["etcdutl", "snapshot", "restore", "/backup/vineyard-etcd.db",
             "--data-dir=/var/lib/etcd/data", f"--name={member}",
             f"--initial-cluster={initial_cluster}", f"--initial-cluster-token={token}",
             f"--initial-advertise-peer-urls={peer}"],
            {claim: "/var/lib/etcd", "vy-etcd-backup": "/backup"}))

    # 5. Install with the new values: one cluster of 3, every key on every member.
    helm.install("vy", "etcd.replicaCount=3", "etcd.persistence.enabled=true",
                 "etcd.persistence.storageClass=")
    health = json.loads(etcdctl(real_cluster, ns, "vy-vineyard-etcd-0", "endpoint", "status",
                                 "--cluster", "-w", "json").stdout)
    cluster_ids = {h["Status"]["header"]["cluster_id"] for h in health}
    assert len(health) == 3, health
    assert len(cluster_ids) == 1, health
    for i in range(3):
        got = etcdctl(real_cluster, ns, f"vy-vineyard-etcd-{i}", "get", "--prefix",
                       "/vineyard/topology-test/", "--consistency=s", "-w", "json").stdout
        kvs = json.loads(got).get("kvs", [])
        assert len(kvs) == len(keys), (i, len(kvs))
    record("topology change 1 -> 3 members: keys kept on every member, cluster ids",
           [len(keys), len(cluster_ids)])
