"""The local cluster's API server through the official `kubernetes` client, and what the suites
read and make there: readiness of nodes, pods, DaemonSets and StatefulSets, namespaces and
volumes, object inventories.

`kube(cluster)` is a client made from the cluster's kubeconfig (the client's own kubeconfig
loading, TLS and ApiException). The tests compare the API's JSON, so it answers REST paths with
plain dicts rather than the client's typed models; a connection that fails raises
ConnectionError (an OSError), as an unreachable server does for any socket client.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException

from localcluster import Cluster
from localcluster.kubeapi import RestVerbs
from tests.support.wait import DEADLINE, wait_for

__all__ = ["ApiException", "Kube", "kube"]

INSTANCE = "app.kubernetes.io/instance"
#: Labels of the objects the suites create (a leftover is easy to find).
SUITE_LABEL = {"e2e.vineyard-helm/suite": "true"}


class Kube(RestVerbs):
    """REST paths of one API server, as the kubeconfig's user (get, get_or_none, exists, create,
    delete, ok: localcluster.kubeapi.RestVerbs, over this class's `request`)."""

    http_error = ApiException

    def __init__(self, kubeconfig: Path | str):
        configuration = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig), client_configuration=configuration,
            persist_config=False)
        self.client = kubernetes.client.ApiClient(configuration)
        self.server = configuration.host.rstrip("/")

    def request(self, method: str, path: str, body: Any = None, *, timeout: float = 10.0,
                content_type: str = "application/json") -> Any:
        """The decoded JSON answer (text when it is not JSON, None when empty); ApiException
        for an HTTP error."""
        try:
            response = self.client.call_api(
                method, self.server + path, body=body, _request_timeout=timeout,
                header_params={"Content-Type": content_type, "Accept": "application/json"})
            raw = response.read()  # type: ignore[no-untyped-call]
        except urllib3.exceptions.HTTPError as e:
            raise ConnectionError(f"{method} {path}: {e}") from e
        text = raw.decode(errors="replace") if raw else ""
        if not 200 <= response.status < 300:
            raise ApiException.from_response(http_resp=response, body=text, data=None)
        try:
            return json.loads(text) if text else None
        except json.JSONDecodeError:
            return text


_clients: dict[tuple[str, int], Kube] = {}


def kube(cluster: Cluster) -> Kube:
    """The client of the cluster's admin kubeconfig (made again when `up` rewrote it)."""
    key = (str(cluster.kubeconfig), cluster.kubeconfig.stat().st_mtime_ns)
    if key not in _clients:
        _clients[key] = Kube(cluster.kubeconfig)
    return _clients[key]


# ---- reading ------------------------------------------------------------------------------


def items(cluster: Cluster, path: str, selector: str | None = None) -> list[dict[str, Any]]:
    query = f"?labelSelector={selector}" if selector else ""
    listed: list[dict[str, Any]] = kube(cluster).get(path + query)["items"]
    return listed


def selector_of(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def pods(cluster: Cluster, namespace: str,
         selector: str | dict[str, str] | None = None) -> list[dict[str, Any]]:
    if isinstance(selector, dict):
        selector = selector_of(selector)
    return items(cluster, f"/api/v1/namespaces/{namespace}/pods", selector)


def daemonset(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = kube(cluster).get(
        f"/apis/apps/v1/namespaces/{namespace}/daemonsets/{name}")
    return found


def statefulset(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = kube(cluster).get(
        f"/apis/apps/v1/namespaces/{namespace}/statefulsets/{name}")
    return found


def events(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    return items(cluster, f"/api/v1/namespaces/{namespace}/events")


# ---- readiness ----------------------------------------------------------------------------


def is_ready(obj: dict[str, Any]) -> bool:
    """A Node's or a Pod's Ready condition."""
    conditions = obj.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def ready_pods(cluster: Cluster, namespace: str,
               selector: str | dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Pods that are Running and Ready and not being deleted."""
    return [p for p in pods(cluster, namespace, selector)
            if p["status"].get("phase") == "Running" and is_ready(p)
            and not p["metadata"].get("deletionTimestamp")]


def ready_nodes(cluster: Cluster) -> list[str]:
    """Nodes a DaemonSet without a nodeSelector runs on: Ready, schedulable, not going away."""
    return sorted(n["metadata"]["name"] for n in items(cluster, "/api/v1/nodes")
                  if is_ready(n) and not n["spec"].get("unschedulable")
                  and not n["metadata"].get("deletionTimestamp"))


def daemonset_counts(cluster: Cluster, namespace: str, name: str) -> dict[str, int]:
    status = daemonset(cluster, namespace, name).get("status", {})
    return {key: status.get(key, 0) for key in (
        "desiredNumberScheduled", "currentNumberScheduled", "numberReady",
        "updatedNumberScheduled", "numberAvailable", "numberUnavailable")}


def daemonset_settled(cluster: Cluster, namespace: str, name: str) -> bool:
    """Observed its latest spec, and desired = ready = up to date = the Ready nodes' count."""
    ds = daemonset(cluster, namespace, name)
    status = ds.get("status", {})
    nodes = len(ready_nodes(cluster))
    return (status.get("observedGeneration") == ds["metadata"]["generation"]
            and status.get("desiredNumberScheduled") == nodes
            and status.get("numberReady") == nodes
            and status.get("updatedNumberScheduled") == nodes
            and len(ready_pods(cluster, namespace, ds["spec"]["selector"]["matchLabels"]))
            == nodes)


def wait_daemonset_settled(cluster: Cluster, namespace: str, name: str,
                           timeout: float = DEADLINE) -> dict[str, int]:
    wait_for(lambda: daemonset_settled(cluster, namespace, name),
             f"DaemonSet {namespace}/{name} ready on every Ready node", timeout=timeout,
             describe=lambda: (daemonset_counts(cluster, namespace, name),
                               len(ready_nodes(cluster))))
    return daemonset_counts(cluster, namespace, name)


def statefulset_ready(cluster: Cluster, namespace: str, name: str, replicas: int) -> bool:
    """Observed its latest spec, with `replicas` replicas, all Ready and up to date."""
    sts = statefulset(cluster, namespace, name)
    status = sts.get("status", {})
    return bool(status.get("observedGeneration") == sts["metadata"]["generation"]
                and sts["spec"]["replicas"] == replicas
                and status.get("readyReplicas") == replicas
                and status.get("updatedReplicas") == replicas)


# ---- objects the tests create -------------------------------------------------------------


def create_namespace(cluster: Cluster, name: str, labels: dict[str, str] | None = None) -> str:
    """Creates namespace `name` and waits for its `default` ServiceAccount (pods are refused
    until the token controller has made it); returns the name."""
    client = kube(cluster)
    client.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                         "metadata": {"name": name, "labels": labels or {}}})
    wait_for(lambda: client.get_or_none(f"/api/v1/namespaces/{name}/serviceaccounts/default"),
             f"default ServiceAccount in {name}", timeout=60)
    return name


def unique_name(prefix: str, digits: int = 5) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:digits]}"


def delete_namespace(cluster: Cluster, name: str) -> None:
    kube(cluster).delete(f"/api/v1/namespaces/{name}")


def create_pv(cluster: Cluster, *, storage_class: str, access_modes: list[str], size: str,
              claim: tuple[str, str] | None = None) -> str:
    """A hostPath PersistentVolume (this cluster has no provisioner). With `claim`
    (namespace, name) it is reserved for that claim, so tests running side by side never take
    each other's volumes."""
    name = unique_name("e2e-pv", 8)
    spec: dict[str, Any] = {"capacity": {"storage": size}, "accessModes": access_modes,
                            "storageClassName": storage_class,
                            "persistentVolumeReclaimPolicy": "Retain",
                            "hostPath": {"path": f"/tmp/vineyard-helm-e2e/{name}"}}
    if claim is not None:
        spec["claimRef"] = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                            "namespace": claim[0], "name": claim[1]}
    kube(cluster).create("/api/v1/persistentvolumes", {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": name, "labels": SUITE_LABEL}, "spec": spec})
    return name


def delete_pvs(cluster: Cluster, names: Iterable[str]) -> None:
    for name in names:
        kube(cluster).delete(f"/api/v1/persistentvolumes/{name}")


def claim_phase(cluster: Cluster, namespace: str, name: str) -> str | None:
    claim = kube(cluster).get_or_none(
        f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{name}")
    return None if claim is None else claim.get("status", {}).get("phase")


# ---- inventories --------------------------------------------------------------------------


def api_resources(cluster: Cluster, *, namespaced: bool) -> list[tuple[str, str, str]]:
    """Every listable kind the API server serves (discovery, each group's preferred version),
    as (list path prefix, plural, kind); for namespaced kinds the prefix ends in
    `/namespaces/`, to be followed by the namespace."""
    client = kube(cluster)
    bases = ["/api/v1"] + [f"/apis/{g['preferredVersion']['groupVersion']}"
                           for g in client.get("/apis")["groups"]]
    out = []
    for base in bases:
        try:
            listing = client.get(base)
        except ApiException:
            continue  # an aggregated API that is not available
        for resource in listing["resources"]:
            if ("/" in resource["name"] or resource["namespaced"] != namespaced
                    or "list" not in resource.get("verbs", [])):
                continue
            prefix = f"{base}/namespaces/" if namespaced else f"{base}/"
            out.append((prefix, resource["name"], resource["kind"]))
    return out


def inventory(cluster: Cluster, namespace: str | None, selector: str | None = None
              ) -> set[tuple[str, str, str]]:
    """(kind, name, uid) of every object in `namespace` (None: every cluster-scoped object)
    of every kind, optionally filtered by a label selector. Events are left out: they are
    records about objects, written by controllers at any time, not objects of a release."""
    found = set()
    for prefix, plural, kind in api_resources(cluster, namespaced=namespace is not None):
        if kind == "Event":
            continue
        path = f"{prefix}{namespace}/{plural}" if namespace is not None else f"{prefix}{plural}"
        try:
            listed = items(cluster, path, selector)
        except ApiException as e:
            if e.status in (403, 404, 405):
                continue
            raise
        found |= {(kind, o["metadata"]["name"], o["metadata"].get("uid", "")) for o in listed}
    return found


def kinds_and_names(objects: Iterable[tuple[str, str, str]]) -> set[tuple[str, str]]:
    return {(kind, name) for kind, name, _ in objects}


def release_objects(cluster: Cluster, namespace: str, release: str) -> set[tuple[str, str]]:
    """(kind, name) of every object in `namespace` labelled as belonging to `release`."""
    return kinds_and_names(inventory(cluster, namespace, f"{INSTANCE}={release}"))
