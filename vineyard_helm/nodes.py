"""The nodes without vineyardd, for ``status``: the nodes each vineyardd DaemonSet of the release
selects that run none of the release's vineyardd pods, with the facts that explain it.

Why: helm's --wait and ``ReleaseStatus.ready`` compare the pods with the DaemonSet's
``status.desiredNumberScheduled``, which counts only the nodes the DaemonSet controller places
a pod on now. A node that is not Ready yet carries the node lifecycle controller's
``node.kubernetes.io/not-ready:NoSchedule`` taint (``unreachable`` once its kubelet stops
reporting), so it is not counted and an install reports Ready while nodes are still joining.

How, without copying the DaemonSet controller's scheduling logic: for each DaemonSet (the
release's own and each node pool's) the nodes are listed from the API server with the
DaemonSet's own ``spec.template.spec.nodeSelector`` as the label selector; the nodes running
one of the release's vineyardd pods (any DaemonSet's, as helm returned them) are taken away;
for each remaining node its facts are reported: the Ready condition, the cordon
(``spec.unschedulable``), deletion, and its NoSchedule/NoExecute taints that the DaemonSets'
pods do not tolerate (tolerations as the pods carry them: the DaemonSet controller adds its own
to the template's, e.g. for a cordon and for ``not-ready:NoExecute``). Whether a node should
run a pod is not decided here. Required node affinity is not evaluated: such a DaemonSet's gaps
say "affinity not checked" (the chart gives the release's own DaemonSet one when there are
pools, excluding the pools' nodes; those run the pools' pods).

The API server is reached with the same client as the /metrics pages (metrics.core_api, the
``status`` extra); without it, or when RBAC refuses listing nodes, status says so in one line.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .helm_json import _owned_by
from .metrics import ProxyUnavailable, core_api, describe_error
from .records import NodeGap

#: Nodes per list request (the list is paged: a large cluster's nodes are big objects).
PAGE = 500
#: Seconds for one list request.
REQUEST_TIMEOUT = 20.0
#: Taint effects that keep a pod off a node (PreferNoSchedule only discourages).
BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")
#: The taint mirroring a cordon, reported as ``cordoned`` rather than as a taint.
CORDON_TAINT = "node.kubernetes.io/unschedulable"

_Object = Mapping[str, Any]


def _spec(daemonset: _Object) -> _Object:
    return ((daemonset.get("spec") or {}).get("template") or {}).get("spec") or {}


def _name(obj: _Object) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def label_selector(daemonset: _Object) -> str:
    """The DaemonSet's pod template nodeSelector as a label selector (``k=v,k2=v2``; "" selects
    every node)."""
    selector = _spec(daemonset).get("nodeSelector") or {}
    return ",".join(f"{key}={value}" for key, value in sorted(selector.items()))


def has_node_affinity(daemonset: _Object) -> bool:
    """Whether the pod template requires a node affinity (not evaluated by status)."""
    affinity = (_spec(daemonset).get("affinity") or {}).get("nodeAffinity") or {}
    required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    return bool(required.get("nodeSelectorTerms"))


def tolerations(daemonset: _Object, pods: Sequence[_Object]) -> list[_Object]:
    """The tolerations the DaemonSet's pods carry: the template's and those the DaemonSet
    controller adds. Read from a pod of the current template where there is one, else any of
    its pods; the template's alone when it has none (then taints only the controller's own
    tolerations cover, such as ``not-ready:NoExecute``, are listed too)."""
    generation = str((daemonset.get("metadata") or {}).get("generation", ""))
    current = [
        pod
        for pod in pods
        if ((pod.get("metadata") or {}).get("labels") or {}).get("pod-template-generation")
        == generation
    ]
    source = (current or list(pods))[:1]
    if source:
        return list((source[0].get("spec") or {}).get("tolerations") or [])
    return list(_spec(daemonset).get("tolerations") or [])


def tolerates(toleration: _Object, taint: _Object) -> bool:
    """The API's rule (core/v1 Toleration.ToleratesTaint): an empty effect matches every
    effect, an empty key with Exists every taint; Exists ignores the value, Equal (the
    default) compares it."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    return operator == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")


def taint_text(taint: _Object) -> str:
    value = f"={taint['value']}" if taint.get("value") else ""
    return f"{taint.get('key', '')}{value}:{taint.get('effect', '')}"


def _natural(name: str) -> list[Any]:
    """kwok-node-2 before kwok-node-10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _node_gap(node: _Object, selecting: Sequence[tuple[str, list[_Object], bool]]) -> NodeGap:
    """The facts about one node without vineyardd; ``selecting`` are the DaemonSets whose
    nodeSelector selects it: (name, its pods' tolerations, has a required node affinity)."""
    spec = node.get("spec") or {}
    conditions = (node.get("status") or {}).get("conditions") or []
    ready: _Object = next((c for c in conditions if c.get("type") == "Ready"), {})
    taints = [
        taint
        for taint in spec.get("taints") or []
        if taint.get("effect") in BLOCKING_EFFECTS
        and taint.get("key") != CORDON_TAINT
        and not any(any(tolerates(t, taint) for t in kept) for _, kept, _ in selecting)
    ]
    return NodeGap(
        node=_name(node),
        ready=str(ready.get("status") or ""),
        ready_reason=str(ready.get("reason") or ""),
        cordoned=bool(spec.get("unschedulable")),
        taints=tuple(taint_text(t) for t in taints),
        deleting=bool((node.get("metadata") or {}).get("deletionTimestamp")),
        daemonsets=tuple(name for name, _, _ in selecting),
        affinity_not_checked=tuple(name for name, _, affinity in selecting if affinity),
    )


def node_gaps(
    daemonsets: Sequence[_Object],
    pods: Iterable[_Object],
    selected: Mapping[str, Sequence[_Object]],
) -> tuple[int, tuple[NodeGap, ...]]:
    """How many nodes the DaemonSets select, and those running no vineyardd pod of the release.

    ``daemonsets``: the release's vineyardd DaemonSets (its own and the pools'), as helm
    returned them; ``pods``: the pods helm returned; ``selected``: per DaemonSet name, the
    nodes listed with its nodeSelector (``label_selector``)."""
    pods = list(pods)
    owned = {_name(ds): [p for p in pods if _owned_by(p, ds)] for ds in daemonsets}
    covered = {
        str((pod.get("spec") or {}).get("nodeName") or "")
        for ds_pods in owned.values()
        for pod in ds_pods
    }
    nodes: dict[str, _Object] = {}
    selecting: dict[str, list[tuple[str, list[_Object], bool]]] = {}
    for ds in daemonsets:
        name = _name(ds)
        entry = (name, tolerations(ds, owned[name]), has_node_affinity(ds))
        for node in selected.get(name, ()):
            nodes.setdefault(_name(node), node)
            selecting.setdefault(_name(node), []).append(entry)
    gaps = [
        _node_gap(nodes[name], selecting[name])
        for name in sorted(nodes, key=_natural)
        if name not in covered
    ]
    return len(nodes), tuple(gaps)


class NodeLister:
    """Lists nodes by label selector through the API server, page by page, as plain JSON."""

    def __init__(self, *, kubeconfig: str | None, context: str | None) -> None:
        self._api = core_api(kubeconfig=kubeconfig, context=context)

    def list(self, selector: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        token = ""
        while True:
            response = self._api.list_node(
                label_selector=selector,
                limit=PAGE,
                _continue=token or None,
                _preload_content=False,  # plain JSON: the typed models are slow for many nodes
                _request_timeout=REQUEST_TIMEOUT,
            )
            page = json.loads(response.data)
            found += page.get("items") or []
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return found


def describe_list_error(error: BaseException) -> str:
    """``forbidden: ... (needs list on nodes)`` when RBAC refuses, else as for the pages."""
    if getattr(error, "status", None) == 403:
        reason = str(getattr(error, "reason", "") or "Forbidden").strip()
        return f"forbidden: {reason} (needs list on nodes, cluster-wide)"
    return describe_error(error)


async def collect(
    *,
    daemonsets: Sequence[_Object],
    pods: Iterable[_Object],
    kubeconfig: str | None,
    context: str | None,
    lister: NodeLister | None = None,
) -> tuple[int | None, tuple[NodeGap, ...], str]:
    """(nodes selected, nodes without vineyardd, note): one node list per DaemonSet, concurrent;
    on failure (None, (), why)."""
    if not daemonsets:
        return None, (), ""
    try:
        if lister is None:
            lister = await asyncio.to_thread(NodeLister, kubeconfig=kubeconfig, context=context)
        selectors = [label_selector(ds) for ds in daemonsets]
        lists = await asyncio.gather(
            *(asyncio.to_thread(lister.list, selector) for selector in selectors)
        )
    except ProxyUnavailable as error:
        return None, (), f"unavailable: {error}"
    except Exception as error:  # the client's ApiException, connection errors
        return None, (), describe_list_error(error)
    selected = {_name(ds): nodes for ds, nodes in zip(daemonsets, lists, strict=True)}
    count, gaps = node_gaps(daemonsets, pods, selected)
    return count, gaps, ""
