"""Human-readable text for releases, statuses and manifests (the CLI's ``table`` output)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .records import EtcdMetrics, Release, ReleaseStatus, VineyarddMetrics, WorkloadStatus


def table(rows: Sequence[Sequence[str]], *, indent: str = "") -> list[str]:
    """Left-aligned columns, two spaces apart."""
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(len(rows[0]))]
    return [
        indent + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
        for row in rows
    ]


def format_release(release: Release) -> str:
    lines = [
        f"NAME:        {release.name}",
        f"NAMESPACE:   {release.namespace}",
        f"REVISION:    {release.revision}",
        f"STATUS:      {release.status}",
    ]
    if release.chart or release.chart_version:
        lines.append(f"CHART:       {release.chart or 'vineyard'}-{release.chart_version}")
    if release.app_version:
        lines.append(f"APP VERSION: {release.app_version}")
    if release.updated:
        lines.append(f"UPDATED:     {release.updated}")
    if release.resources:
        lines.append("RESOURCES:")
        rows = [["KIND", "NAME"]] + [
            [kind, name] for kind, names in release.resources_by_kind.items() for name in names
        ]
        lines += table(rows, indent="  ")
    if release.notes.strip():
        lines += ["NOTES:", release.notes.rstrip()]
    return "\n".join(lines)


def _workload_line(label: str, workload: WorkloadStatus, noun: str) -> str:
    return (
        f"{label}: {workload.ready}/{workload.desired} {noun} ready, "
        f"{workload.updated}/{workload.desired} updated ({workload.kind} {workload.name})"
    )


def _pod_state(ready: bool, reason: str) -> str:
    return "ready" if ready else f"not ready{': ' + reason if reason else ''}"


def size(count: int | None) -> str:
    """Bytes in binary units: ``512.0 MiB``."""
    if count is None:
        return "?"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover


def _of(used: int | None, whole: int | None, what: str) -> str:
    percent = f" ({100 * used / whole:.0f}%)" if used is not None and whole else ""
    return f"{size(used)} of {size(whole)}{' ' + what if what else ''}{percent}"


def _state_cell(state: str, width: int = 72) -> str:
    return state if len(state) <= width else state[: width - 3] + "..."


def memory_cell(record: VineyarddMetrics | None) -> str:
    if record is None:
        return "-"
    if record.state != "ok":
        return _state_cell(record.state)
    return _of(record.memory_used, record.memory_size, "")


def etcd_db_cell(record: EtcdMetrics | None) -> str:
    if record is None:
        return "-"
    if record.state != "ok":
        return _state_cell(record.state)
    text = _of(record.db_size, record.quota, "quota")
    if record.db_in_use is not None:
        text += f", {size(record.db_in_use)} in use"
    return text


#: Nodes named in the line on nodes without vineyardd; the rest are counted.
GAP_NAMES = 10


def node_gap_lines(status: ReleaseStatus) -> list[str]:
    """One line on the nodes the vineyardd DaemonSets select that run no vineyardd pod, each
    with its facts (up to GAP_NAMES of them), or why they could not be listed; none when the
    nodes were not asked for."""
    if status.nodes_note:
        return [f"nodes without vineyardd: {status.nodes_note}"]
    if status.nodes_selected is None:
        return []
    gaps = status.nodes_without_vineyardd
    affinity = sorted({name for gap in gaps for name in gap.affinity_not_checked})
    if not gaps:
        return [f"vineyardd on all {status.nodes_selected} nodes its DaemonSets select"]
    named = ", ".join(f"{gap.node} ({gap.describe()})" for gap in gaps[:GAP_NAMES])
    more = f", and {len(gaps) - GAP_NAMES} more" if len(gaps) > GAP_NAMES else ""
    noun = "node has" if len(gaps) == 1 else "nodes have"
    line = f"{len(gaps)} {noun} no vineyardd (of {status.nodes_selected} selected): {named}{more}"
    if affinity:
        verb = "has" if len(affinity) == 1 else "have"
        line += f"; affinity not checked ({', '.join(affinity)} {verb} node affinity terms)"
    return [line]


def status_lines(status: ReleaseStatus) -> list[str]:
    """The status as lines: release, vineyardd per node, etcd members, Services, socket."""
    release = status.release
    chart = (
        f", chart {release.chart or 'vineyard'}-{release.chart_version}"
        if release.chart_version
        else ""
    )
    lines = [
        f"release {release.name} in namespace {release.namespace}: {release.status}, "
        f"revision {release.revision}{chart}"
    ]
    if status.vineyardd is None:
        lines.append("vineyardd: no DaemonSet found")
    daemonsets = [("vineyardd", status.vineyardd)] if status.vineyardd else []
    daemonsets += [(f"vineyardd pool {pool.pool}", pool) for pool in status.pools]
    report = status.metrics
    if report is not None and report.note:
        what = "memory and database sizes" if report.metrics_enabled else "vineyardd memory"
        lines.append(f"{what}: {report.note}")
    for label, daemonset in daemonsets:
        lines.append(_workload_line(label, daemonset, "pods"))
        memory = report is not None and report.metrics_enabled
        rows = [["NODE", "POD", "STATE", "UPDATED", "RESTARTS", *(["MEMORY"] if memory else [])]]
        for pod in daemonset.pods:
            row = [
                pod.node or "(unscheduled)",
                pod.name,
                _pod_state(pod.ready, pod.reason),
                "yes" if pod.updated else "no",
                str(pod.restarts),
            ]
            if report is not None and memory:
                record = report.for_pod(pod.name)
                row.append(memory_cell(record if isinstance(record, VineyarddMetrics) else None))
            rows.append(row)
        if len(rows) > 1:
            lines += table(rows, indent="  ")
    lines += node_gap_lines(status)
    if status.etcd is not None:
        lines.append(_workload_line("etcd", status.etcd, "members"))
        db = report is not None and bool(report.etcd)
        rows = [["MEMBER", "NODE", "STATE", *(["DATABASE", "ALARMS", "LEADER"] if db else [])]]
        for pod in status.etcd.pods:
            row = [pod.name, pod.node or "(unscheduled)", _pod_state(pod.ready, pod.reason)]
            if report is not None and db:
                record = report.for_pod(pod.name)
                etcd = record if isinstance(record, EtcdMetrics) else None
                row.append(etcd_db_cell(etcd))
                ok = etcd is not None and etcd.state == "ok"
                row.append((",".join(etcd.alarms) or "none") if etcd and ok else "-")
                leader = etcd.has_leader if etcd is not None else None
                row.append("-" if leader is None else "yes" if leader else "NO")
            rows.append(row)
        if len(rows) > 1:
            lines += table(rows, indent="  ")
    if status.services:
        lines.append("services:")
        rows = [["NAME", "TYPE", "CLUSTER-IP", "PORTS", "ENDPOINTS"]] + [
            [
                s.name,
                s.type,
                s.cluster_ip or "-",
                ",".join(s.ports) or "-",
                ",".join(s.endpoints) or "(none ready)",
            ]
            for s in status.services
        ]
        lines += table(rows, indent="  ")
    if status.socket is not None:
        lines.append(f"socket: {status.socket.describe()}")
    lines.append(f"ready: {'yes' if status.ready else 'no'}")
    return lines


def format_status(status: ReleaseStatus) -> str:
    return "\n".join(status_lines(status))


def summary_line(status: ReleaseStatus) -> str:
    """One line for non-interactive progress output."""
    parts = [f"{status.release.name}: {status.release.status}"]
    if status.vineyardd is not None:
        v = status.vineyardd
        parts.append(f"vineyardd {v.ready}/{v.desired} ready, {v.updated}/{v.desired} updated")
    for pool in status.pools:
        parts.append(f"pool {pool.pool} {pool.ready}/{pool.desired} ready")
    if status.etcd is not None:
        parts.append(f"etcd {status.etcd.ready}/{status.etcd.desired} members ready")
    return "; ".join(parts)


def format_manifest_table(manifests: Iterable[Mapping[str, Any]]) -> str:
    rows = [["KIND", "NAME", "API VERSION"]] + [
        [
            str(m.get("kind", "")),
            str((m.get("metadata") or {}).get("name", "")),
            str(m.get("apiVersion", "")),
        ]
        for m in manifests
    ]
    return "\n".join(table(rows))
