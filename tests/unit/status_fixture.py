"""A helm status document (``helm status -o json`` with live resources) for a release of the
vineyard chart, built from a real render plus the live fields a cluster would add."""

from __future__ import annotations

import copy
from typing import Any

import yaml

import vineyard_helm


def live_pod(
    name: str, node: str, ip: str, labels: dict[str, str], *, ready: bool, reason: str = ""
) -> dict[str, Any]:
    waiting = {"waiting": {"reason": reason}} if reason else {"running": {}}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "vineyard", "labels": labels},
        "spec": {"nodeName": node},
        "status": {
            "phase": "Running" if ready else "Pending",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [
                {"name": "c", "restartCount": 0 if ready else 2, "state": waiting}
            ],
        },
    }


def status_document(
    helm: str, *, nodes_ready: tuple[bool, ...] = (True, True, False)
) -> dict[str, Any]:
    manifests = vineyard_helm.render(helm=helm)
    by_kind = {(m["kind"], m["metadata"]["name"]): m for m in manifests}
    daemonset = copy.deepcopy(by_kind[("DaemonSet", "vineyard")])
    daemonset["metadata"]["generation"] = 2
    count = len(nodes_ready)
    daemonset["status"] = {
        "desiredNumberScheduled": count,
        "numberReady": sum(nodes_ready),
        "updatedNumberScheduled": count - 1,
        "numberAvailable": sum(nodes_ready),
    }
    statefulset = copy.deepcopy(by_kind[("StatefulSet", "vineyard-etcd")])
    statefulset["status"] = {
        "replicas": 1,
        "readyReplicas": 1,
        "updatedReplicas": 1,
        "updateRevision": "etcd-rev",
    }
    ds_labels = dict(daemonset["spec"]["selector"]["matchLabels"])
    etcd_labels = dict(statefulset["spec"]["selector"]["matchLabels"])
    pods = [
        live_pod(
            f"vineyard-{i}",
            f"node-{i}",
            f"10.0.0.{i + 1}",
            {**ds_labels, "pod-template-generation": "2" if i else "1"},
            ready=ready,
            reason="" if ready else "ContainerCreating",
        )
        for i, ready in enumerate(nodes_ready)
    ]
    pods.append(
        live_pod(
            "vineyard-etcd-0",
            "node-0",
            "10.0.1.1",
            {**etcd_labels, "controller-revision-hash": "etcd-rev"},
            ready=True,
        )
    )
    services = [copy.deepcopy(m) for m in manifests if m["kind"] == "Service"]
    for service in services:
        service["spec"]["clusterIP"] = (
            "None" if "headless" in service["metadata"]["name"] else "10.96.0.10"
        )
    manifest = "\n".join("---\n" + yaml.safe_dump(m) for m in manifests)
    return {
        "name": "vineyard",
        "namespace": "vineyard",
        "version": 3,
        "info": {
            "status": "deployed",
            "last_deployed": "2026-11-28T18:00:00Z",
            "description": "Upgrade complete",
            "notes": "vineyard is running",
            "resources": {
                "v1/DaemonSet": [daemonset],
                "v1/StatefulSet": [statefulset],
                "v1/Service": services,
                "v1/Pod(related)": pods,
            },
        },
        "manifest": manifest,
    }


METADATA = {
    "name": "vineyard",
    "chart": "vineyard",
    "version": "0.1.0",
    "appVersion": "0.24.2",
    "namespace": "vineyard",
    "revision": 3,
    "status": "deployed",
    "deployedAt": "2026-11-28T18:00:00Z",
}
