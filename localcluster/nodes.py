"""Fake nodes: Node objects that kwok keeps alive (heartbeats, leases, pod status)."""
from __future__ import annotations

from .components import KWOK_NODE_ANNOTATION

NODE_PREFIX = "kwok-node-"


def node_manifest(name: str) -> dict:
    key, value = KWOK_NODE_ANNOTATION
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {key: value, "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
        # No kwok taint: these nodes stand in for real ones, so charts schedule onto them as-is.
        "status": {
            "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux",
                         "kubeletVersion": "fake", "kubeProxyVersion": "fake"},
        },
    }


def is_ready(node: dict) -> bool:
    conditions = node.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def next_names(existing: list[str], count: int) -> list[str]:
    """`count` names `kwok-node-<i>` not in `existing`, lowest indices first."""
    taken, names, i = set(existing), [], 0
    while len(names) < count:
        if f"{NODE_PREFIX}{i}" not in taken:
            names.append(f"{NODE_PREFIX}{i}")
        i += 1
    return names
