"""The local cluster behaves like a real one: workloads on kwok nodes, RBAC, PodSecurity."""
from __future__ import annotations

import json

from localcluster import Cluster, wait_until
from tests.support.kube import kube, pods

PAUSE = {"name": "pause", "image": "registry.k8s.io/pause:3.10"}


def _workload(kind: str, name: str, spec: dict) -> dict:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": labels}, **spec,
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [PAUSE]}}}}


def _status(cluster: Cluster, namespace: str, kind: str, name: str) -> dict:
    path = f"/apis/apps/v1/namespaces/{namespace}/{kind.lower()}s/{name}"
    return kube(cluster).get(path).get("status", {})


def test_deployment_becomes_ready_and_scales_down(cluster: Cluster, namespace: str) -> None:
    kube(cluster).create(f"/apis/apps/v1/namespaces/{namespace}/deployments",
                         _workload("Deployment", "web", {"replicas": 3}))
    def ready() -> bool:
        return _status(cluster, namespace, "Deployment", "web").get("readyReplicas") == 3

    assert wait_until(ready, 60), _status(cluster, namespace, "Deployment", "web")

    cluster.kubectl("-n", namespace, "scale", "deployment/web", "--replicas=0")
    # kwok confirms the deletions, so pods go away instead of staying Terminating.
    assert wait_until(lambda: not pods(cluster, namespace, {"app": "web"}), 60)


def test_daemonset_follows_added_and_removed_nodes(cluster: Cluster, namespace: str) -> None:
    kube(cluster).create(f"/apis/apps/v1/namespaces/{namespace}/daemonsets",
                         _workload("DaemonSet", "agent", {}))
    nodes = len(cluster.node_names())

    def ready(count: int) -> bool:
        status = _status(cluster, namespace, "DaemonSet", "agent")
        return status.get("desiredNumberScheduled") == count == status.get("numberReady")

    assert wait_until(lambda: ready(nodes), 60), _status(cluster, namespace, "DaemonSet", "agent")

    def on(node: str) -> list[dict]:
        return [p for p in pods(cluster, namespace, {"app": "agent"})
                if p["spec"].get("nodeName") == node]

    [added] = cluster.add_nodes(1)
    try:
        assert wait_until(lambda: ready(nodes + 1), 60)
        assert [p["status"]["phase"] for p in on(added)] == ["Running"]
    finally:
        cluster.remove_nodes([added])
    assert wait_until(lambda: not on(added) and ready(nodes), 30)


def test_pod_security_admission_enforces_namespace_labels(
    cluster: Cluster, namespace: str
) -> None:
    cluster.kubectl("label", "namespace", namespace,
                    "pod-security.kubernetes.io/enforce=restricted")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "privileged"},
           "spec": {"containers": [{**PAUSE, "securityContext": {"privileged": True}}]}}
    result = cluster.kubectl("-n", namespace, "create", "-f", "-", input=json.dumps(pod),
                             check=False)
    assert result.returncode != 0
    assert "violates PodSecurity" in result.stderr


def test_rbac_denies_a_service_account_without_bindings(cluster: Cluster, namespace: str) -> None:
    who = f"--as=system:serviceaccount:{namespace}:default"
    result = cluster.kubectl("auth", "can-i", "list", "pods", "-n", namespace, who, check=False)
    assert result.stdout.strip() == "no"
