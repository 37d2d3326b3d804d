"""Turn helm's release JSON (``helm status -o json`` with live resources) into ReleaseStatus.

Helm 4 always includes the live objects under ``info.resources``; Helm 3 does with
``--show-resources``. Keys look like ``v1/DaemonSet`` and ``v1/Pod(related)`` (the pods
selected by the release's workloads and Services).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .helm import load_manifest
from .records import (
    PodStatus,
    Release,
    ReleaseStatus,
    ServiceStatus,
    SocketLocation,
    WorkloadStatus,
    resources_from_manifest,
)

_Object = Mapping[str, Any]


def release_from_json(
    data: Mapping[str, Any],
    *,
    metadata: Mapping[str, Any] | None = None,
    manifest: list[dict[str, Any]] | None = None,
) -> Release:
    """Release record from helm's release JSON (install/upgrade/status ``-o json``).

    ``metadata`` is ``helm get metadata -o json`` (status output strips the chart)."""
    info = data.get("info") or {}
    name = str(data.get("name", ""))
    namespace = str(data.get("namespace", ""))
    chart_meta = ((data.get("chart") or {}).get("metadata")) or {}
    meta = metadata or {}
    documents = manifest if manifest is not None else load_manifest(str(data.get("manifest", "")))
    return Release(
        name=name,
        namespace=namespace,
        revision=int(data.get("version") or meta.get("revision") or 0),
        status=str(info.get("status") or meta.get("status") or "unknown"),
        chart=str(chart_meta.get("name") or meta.get("chart") or ""),
        chart_version=str(chart_meta.get("version") or meta.get("version") or ""),
        app_version=str(chart_meta.get("appVersion") or meta.get("appVersion") or ""),
        updated=str(info.get("last_deployed") or meta.get("deployedAt") or ""),
        description=str(info.get("description") or ""),
        resources=resources_from_manifest(documents, release=name, namespace=namespace),
        notes=str(info.get("notes") or ""),
    )


def _objects(resources: Mapping[str, Any], kind: str) -> list[_Object]:
    """The objects under keys ending in ``/<kind>``; helm puts related pods there as PodLists
    (one per selector), which are flattened."""
    out: list[_Object] = []
    for key, items in resources.items():
        if key.split("/")[-1] != kind or not isinstance(items, list):
            continue
        for item in items:
            if not isinstance(item, Mapping):
                continue
            if str(item.get("kind", "")).endswith("List") and isinstance(item.get("items"), list):
                out.extend(i for i in item["items"] if isinstance(i, Mapping))
            else:
                out.append(item)
    return out


def _labels(obj: _Object) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _pod_status(pod: _Object, *, updated: bool) -> PodStatus:
    status = pod.get("status") or {}
    conditions = status.get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    containers = status.get("containerStatuses") or []
    restarts = sum(int(c.get("restartCount") or 0) for c in containers)
    reason = ""
    if not ready:
        for container in containers:
            state = container.get("state") or {}
            detail = state.get("waiting") or state.get("terminated") or {}
            if detail.get("reason"):
                reason = str(detail["reason"])
                break
        for condition in conditions:  # e.g. PodScheduled False: Unschedulable
            if not reason and condition.get("status") == "False" and condition.get("reason"):
                reason = str(condition["reason"])
        reason = reason or str(status.get("reason") or status.get("phase") or "")
    return PodStatus(
        name=str((pod.get("metadata") or {}).get("name", "")),
        node=str((pod.get("spec") or {}).get("nodeName") or ""),
        phase=str(status.get("phase") or ""),
        ready=ready,
        updated=updated,
        restarts=restarts,
        reason=reason,
        ip=str(status.get("podIP") or ""),
    )


def _component(obj: _Object) -> str:
    return str(_labels(obj).get("app.kubernetes.io/component", ""))


def _pick(objects: list[_Object], component: str, name_hint: str) -> _Object | None:
    for obj in objects:
        if _component(obj) == component:
            return obj
    for obj in objects:
        if name_hint in str((obj.get("metadata") or {}).get("name", "")):
            return obj
    return None


def _owned_by(pod: _Object, workload: _Object) -> bool:
    """Whether the pod is the workload's: its controller, where the pod names one (the
    release's own DaemonSet's selector also matches node pools' pods), else its selector."""
    kind = workload.get("kind")  # absent from some of helm 3's typed objects
    name = (workload.get("metadata") or {}).get("name")
    owners = [
        o for o in (pod.get("metadata") or {}).get("ownerReferences") or [] if o.get("controller")
    ]
    if owners:
        return any(o.get("name") == name and (not kind or o.get("kind") == kind) for o in owners)
    selector = ((workload.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return _matches(selector, _labels(pod))


def _pods_of(
    workload: _Object, pods: Iterable[_Object], *, label: str, current: object
) -> tuple[PodStatus, ...]:
    """The workload's pods, each marked updated when its ``label`` equals the workload's
    ``current`` template revision."""
    records = (
        _pod_status(pod, updated=_labels(pod).get(label) == current)
        for pod in pods
        if _owned_by(pod, workload)
    )
    return tuple(sorted(records, key=lambda p: (p.node, p.name)))


#: The annotation the chart puts on a node pool's DaemonSet (templates/_published.tpl).
POOL_ANNOTATION = "vineyard.v6d.io/pool"


def _pool(daemonset: _Object) -> str:
    return str(
        ((daemonset.get("metadata") or {}).get("annotations") or {}).get(POOL_ANNOTATION, "")
    )


def daemonset_status(ds: _Object, pods: Iterable[_Object]) -> WorkloadStatus:
    status = ds.get("status") or {}
    generation = str((ds.get("metadata") or {}).get("generation", ""))
    return WorkloadStatus(
        kind="DaemonSet",
        name=str((ds.get("metadata") or {}).get("name", "")),
        desired=int(status.get("desiredNumberScheduled") or 0),
        ready=int(status.get("numberReady") or 0),
        updated=int(status.get("updatedNumberScheduled") or 0),
        available=int(status.get("numberAvailable") or 0),
        pods=_pods_of(ds, pods, label="pod-template-generation", current=generation),
        pool=_pool(ds),
    )


def statefulset_status(sts: _Object, pods: Iterable[_Object]) -> WorkloadStatus:
    status = sts.get("status") or {}
    replicas = (sts.get("spec") or {}).get("replicas")
    revision = status.get("updateRevision")
    return WorkloadStatus(
        kind="StatefulSet",
        name=str((sts.get("metadata") or {}).get("name", "")),
        desired=int(replicas) if replicas is not None else 1,
        ready=int(status.get("readyReplicas") or 0),
        updated=int(status.get("updatedReplicas") or 0),
        available=int(status.get("availableReplicas") or 0),
        pods=_pods_of(sts, pods, label="controller-revision-hash", current=revision),
    )


def service_status(service: _Object, pods: Iterable[_Object]) -> ServiceStatus:
    spec = service.get("spec") or {}
    selector = spec.get("selector") or {}
    publish_not_ready = bool(spec.get("publishNotReadyAddresses"))
    ports = tuple(
        f"{p.get('name') + ':' if p.get('name') else ''}{p.get('port')}/{p.get('protocol', 'TCP')}"
        for p in spec.get("ports") or []
    )
    endpoints = []
    for pod in pods:
        if not _matches(selector, _labels(pod)):
            continue
        record = _pod_status(pod, updated=True)
        if record.ip and (record.ready or publish_not_ready):
            endpoints.append(record.ip)
    return ServiceStatus(
        name=str((service.get("metadata") or {}).get("name", "")),
        type=str(spec.get("type") or "ClusterIP"),
        cluster_ip=str(spec.get("clusterIP") or ""),
        ports=ports,
        endpoints=tuple(sorted(set(endpoints))),
    )


#: The annotations the chart publishes on its DaemonSet (templates/_published.tpl).
SOCKET_ANNOTATION = "vineyard.v6d.io/socket-"


def socket_location(daemonset: _Object) -> SocketLocation | None:
    """Where the socket is, as the chart publishes it in the DaemonSet's
    ``vineyard.v6d.io/socket-*`` annotations; None for a release of a chart version that
    publishes nothing (0.1.0)."""
    annotations = (daemonset.get("metadata") or {}).get("annotations") or {}
    published = {
        key.removeprefix(SOCKET_ANNOTATION): str(value)
        for key, value in annotations.items()
        if key.startswith(SOCKET_ANNOTATION)
    }
    if "volume-type" not in published:
        return None
    return SocketLocation(
        volume_type=published["volume-type"],
        path_in_container=published.get("path", ""),
        host_path=published.get("host-path", ""),
        claim=published.get("claim", ""),
        path_in_volume=published.get("path-in-volume", ""),
        mount_path=published.get("mount-path", ""),
    )


def status_from_json(
    data: Mapping[str, Any], *, metadata: Mapping[str, Any] | None = None
) -> ReleaseStatus:
    """ReleaseStatus from ``helm status -o json`` (with live resources) and ``get metadata``."""
    manifest = load_manifest(str(data.get("manifest", "")))
    release = release_from_json(data, metadata=metadata, manifest=manifest)
    live = (data.get("info") or {}).get("resources") or {}
    # helm lists a pod once per workload or Service that selects it: keep one of each.
    pods = list(
        {_key(pod): pod for pod in _objects(live, "Pod(related)") + _objects(live, "Pod")}.values()
    )
    daemonsets = _objects(live, "DaemonSet")
    statefulsets = _objects(live, "StatefulSet")
    vineyardd_obj = _pick([d for d in daemonsets if not _pool(d)], "vineyardd", "vineyard")
    pools = sorted(
        (daemonset_status(d, pods) for d in daemonsets if _pool(d)), key=lambda w: w.pool
    )
    etcd_obj = _pick(statefulsets, "etcd", "etcd")
    manifest_ds = _pick(
        [d for d in manifest if d.get("kind") == "DaemonSet" and not _pool(d)],
        "vineyardd",
        "vineyard",
    )
    return ReleaseStatus(
        release=release,
        vineyardd=daemonset_status(vineyardd_obj, pods) if vineyardd_obj else None,
        etcd=statefulset_status(etcd_obj, pods) if etcd_obj else None,
        services=tuple(
            sorted(
                (service_status(s, pods) for s in _objects(live, "Service")),
                key=lambda s: s.name,
            )
        ),
        socket=socket_location(manifest_ds or vineyardd_obj or {}),
        pools=tuple(pools),
    )


def _key(obj: _Object) -> tuple[str, str]:
    metadata = obj.get("metadata") or {}
    return str(metadata.get("namespace", "")), str(metadata.get("name", ""))
