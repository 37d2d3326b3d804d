"""Small typed records returned by the public API (never helm's raw JSON)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Resource:
    """One Kubernetes object deployed by a release."""

    kind: str
    name: str
    namespace: str
    release: str
    api_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Release:
    """A helm release of the vineyard chart at one revision."""

    name: str
    namespace: str
    revision: int
    status: str
    chart: str = ""
    chart_version: str = ""
    app_version: str = ""
    updated: str = ""
    description: str = ""
    resources: tuple[Resource, ...] = ()
    notes: str = field(default="", repr=False)

    @property
    def resources_by_kind(self) -> dict[str, list[str]]:
        """``{"DaemonSet": ["vineyard"], "Service": ["etcd-for-vineyard", ...], ...}``"""
        grouped: dict[str, list[str]] = {}
        for resource in self.resources:
            grouped.setdefault(resource.kind, []).append(resource.name)
        return {kind: sorted(names) for kind, names in sorted(grouped.items())}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["resources"] = [r.to_dict() for r in self.resources]
        return data


@dataclass(frozen=True)
class PodStatus:
    """One pod of a workload: where it runs and whether it is ready."""

    name: str
    node: str
    phase: str
    ready: bool
    updated: bool
    restarts: int = 0
    reason: str = ""
    ip: str = ""


@dataclass(frozen=True)
class WorkloadStatus:
    """A DaemonSet or StatefulSet: counts from its status and its pods."""

    kind: str
    name: str
    desired: int
    ready: int
    updated: int
    available: int
    pods: tuple[PodStatus, ...] = ()
    pool: str = ""  # a vineyardd DaemonSet's node pool, as the chart publishes it ("": none)

    @property
    def is_ready(self) -> bool:
        return self.desired > 0 and self.settled

    @property
    def settled(self) -> bool:
        """Every pod it wants is ready and up to date (true of a pool without nodes, too)."""
        return self.ready == self.desired and self.updated == self.desired


@dataclass(frozen=True)
class ServiceStatus:
    """A Service and the ready pod addresses behind it (what its endpoints hold)."""

    name: str
    type: str
    cluster_ip: str
    ports: tuple[str, ...]
    endpoints: tuple[str, ...]


@dataclass(frozen=True)
class SocketLocation:
    """Where workload pods find the vineyardd UNIX socket, as the chart publishes it (the
    DaemonSet's ``vineyard.v6d.io/socket-*`` annotations). In persistentVolumeClaim mode each
    node has its own socket: the paths contain the placeholder ``<node>``."""

    volume_type: str  # hostPath | persistentVolumeClaim | emptyDir
    path_in_container: str  # the socket file inside vineyardd and the bundled sidecars
    host_path: str = ""  # directory on each node, for hostPath
    claim: str = ""  # PersistentVolumeClaim name, for persistentVolumeClaim
    path_in_volume: str = ""  # the socket file relative to the volume's root
    mount_path: str = ""  # where the socket volume is mounted in vineyardd and the sidecars

    def describe(self) -> str:
        if self.volume_type == "hostPath":
            return f"{self.host_path.rstrip('/')}/{self.path_in_volume} on every node (hostPath)"
        if self.volume_type == "persistentVolumeClaim":
            return (
                f"{self.path_in_volume} in PersistentVolumeClaim {self.claim} "
                "(mount the claim in your pods)"
            )
        if self.volume_type == "emptyDir":
            return f"{self.path_in_container} in an emptyDir, for sidecars of the vineyardd pods"
        return f"{self.path_in_container} ({self.volume_type})"


@dataclass(frozen=True)
class VineyarddMetrics:
    """One vineyardd pod's memory, from its exporter's /metrics (``metrics.enabled``).

    ``state`` is ``ok``, ``vineyardd down`` (the exporter answers, vineyardd does not),
    ``metrics.enabled is off``, ``unreachable: ...``, ``forbidden: ...`` or ``unavailable: ...``;
    the numbers are None unless the page was read."""

    pod: str
    node: str
    state: str
    memory_used: int | None = None  # vineyard_memory_usage_bytes
    memory_size: int | None = None  # vineyard_memory_limit_bytes (vineyardd's --size)
    instance_node: str = ""  # vineyard_instance_info's node label, as vineyardd reports it


@dataclass(frozen=True)
class EtcdMetrics:
    """One etcd member's database against its quota, from etcd's own /metrics."""

    pod: str
    node: str
    state: str  # as VineyarddMetrics.state
    db_size: int | None = None  # etcd_mvcc_db_total_size_in_bytes
    db_in_use: int | None = None  # etcd_mvcc_db_total_size_in_use_in_bytes
    quota: int | None = None  # etcd_server_quota_backend_bytes
    alarms: tuple[str, ...] = ()  # etcd_debugging_server_alarms at 1, e.g. ("NOSPACE",)
    has_leader: bool | None = None  # etcd_server_has_leader


@dataclass(frozen=True)
class MetricsReport:
    """What ``status`` read from the /metrics pages, per pod; ``note`` says why nothing was
    read for all of them (no kubernetes client, ``metrics.enabled`` off)."""

    vineyardd: tuple[VineyarddMetrics, ...] = ()
    etcd: tuple[EtcdMetrics, ...] = ()
    metrics_enabled: bool = False
    note: str = ""

    def for_pod(self, name: str) -> VineyarddMetrics | EtcdMetrics | None:
        records: tuple[VineyarddMetrics | EtcdMetrics, ...] = (*self.vineyardd, *self.etcd)
        return next((m for m in records if m.pod == name), None)


@dataclass(frozen=True)
class NodeGap:
    """A node one of the release's vineyardd DaemonSets selects (by its nodeSelector, listed
    from the API server) that runs none of the release's vineyardd pods (of any pool), with the
    facts about it that explain why. Facts, not a verdict: which nodes should run a pod is the
    DaemonSet controller's call, and a node that joins or becomes Ready gets its pod later."""

    node: str
    #: The node's Ready condition as it reports it: "True", "False", "Unknown"; "" when none.
    ready: str
    ready_reason: str = ""  # that condition's reason, e.g. KubeletNotReady, NodeStatusUnknown
    cordoned: bool = False  # spec.unschedulable (DaemonSet pods tolerate a cordon)
    #: Its NoSchedule and NoExecute taints (``key=value:Effect``) that the pods of none of the
    #: DaemonSets selecting it tolerate; the cordon's own taint is left to ``cordoned``.
    taints: tuple[str, ...] = ()
    deleting: bool = False  # metadata.deletionTimestamp is set
    daemonsets: tuple[str, ...] = ()  # the vineyardd DaemonSets whose nodeSelector selects it
    #: Those of them with a required node affinity, which status does not evaluate.
    affinity_not_checked: tuple[str, ...] = ()

    def describe(self) -> str:
        """``NotReady; taint node.kubernetes.io/not-ready:NoSchedule``"""
        ready = {"True": "Ready", "False": "NotReady", "Unknown": "Ready Unknown"}
        facts = [ready.get(self.ready, "no Ready condition")]
        facts += ["cordoned"] * self.cordoned + ["being deleted"] * self.deleting
        facts += [f"taint {taint}" for taint in self.taints]
        return "; ".join(facts)


@dataclass(frozen=True)
class ReleaseStatus:
    """What `status` reports: the release, vineyardd per node (the release's own DaemonSet and
    one per node pool), etcd, Services, the socket."""

    release: Release
    vineyardd: WorkloadStatus | None = None
    etcd: WorkloadStatus | None = None
    services: tuple[ServiceStatus, ...] = ()
    socket: SocketLocation | None = None
    pools: tuple[WorkloadStatus, ...] = ()
    #: vineyardd's memory and etcd's database per pod (``status(metrics=True)``, the default);
    #: None when not asked for.
    metrics: MetricsReport | None = None
    #: The nodes the vineyardd DaemonSets' nodeSelectors select that run no vineyardd pod of
    #: the release, with the facts about each (``status(nodes=True)``, the default). `ready`
    #: does not count them: Kubernetes' desired number of pods leaves them out.
    nodes_without_vineyardd: tuple[NodeGap, ...] = ()
    #: How many nodes those nodeSelectors select; None when the nodes were not listed.
    nodes_selected: int | None = None
    #: Why the nodes were not listed (no kubernetes client, RBAC); "" when they were.
    nodes_note: str = ""

    @property
    def ready(self) -> bool:
        """Deployed, vineyardd ready and up to date on every node (in each pool too, and on at
        least one node in all), etcd (if any) ready."""
        if self.release.status != "deployed" or self.vineyardd is None:
            return False
        daemonsets = (self.vineyardd, *self.pools)
        if sum(d.desired for d in daemonsets) == 0 or not all(d.settled for d in daemonsets):
            return False
        return self.etcd is None or self.etcd.is_ready

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["release"] = self.release.to_dict()
        data["ready"] = self.ready
        return data


def resources_from_manifest(
    documents: Iterable[Mapping[str, Any] | None], *, release: str, namespace: str
) -> tuple[Resource, ...]:
    """Resource records for the objects of a rendered or deployed manifest."""
    out = []
    for document in documents:
        if not isinstance(document, Mapping) or "kind" not in document:
            continue
        metadata = document.get("metadata") or {}
        out.append(
            Resource(
                kind=str(document["kind"]),
                name=str(metadata.get("name", "")),
                namespace=str(metadata.get("namespace") or namespace),
                release=release,
                api_version=str(document.get("apiVersion", "")),
            )
        )
    return tuple(out)
