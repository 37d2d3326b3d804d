"""What every benchmark script shares: timing (wall and CPU), interleaved runs, the bench
cluster (its own state dir, never the tests'), API watches, component CPU and metrics, and the
results file.

Timings on this machine are noisy (2 shared cores, other work running), so a candidate and its
baseline are always measured interleaved in one run (A B A B ...) and compared by medians.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

from localcluster import Cluster  # noqa: E402
from localcluster.cluster import COMPONENTS  # noqa: E402
from localcluster.components import KWOK_LEASE_SECONDS  # noqa: E402
from localcluster.kubeapi import ApiError  # noqa: E402

BIN = REPO / ".cache" / "bin"
HELM = str(BIN / "helm")
STATE_DIR = REPO / ".cache" / "bench-cluster"
RESULTS_JSON = BENCH / "results.json"
CHART = REPO / "charts" / "vineyard"
RELEASE = "vb"
# Every script installs these values: a vineyard.size within the default 512Mi memory limit.
VALUES: dict[str, Any] = {"vineyard": {"size": "128Mi"}}


# --- timing ------------------------------------------------------------------------------------

def cpu_seconds() -> float:
    """CPU time of this process plus its waited-for children (user + system)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed(action: Callable[[], Any]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process and its children) of one call."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    action()
    return time.perf_counter() - wall, cpu_seconds() - cpu


def interleaved(candidates: dict[str, Callable[[], Any]], runs: int, *,
                between: Callable[[], Any] | None = None) -> dict[str, list[tuple[float, float]]]:
    """Runs each candidate once per round, in the given order (A B A B ...), `runs` rounds;
    `between` (cleanup) runs after each call, outside the timing."""
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in candidates}
    for _ in range(runs):
        for name, action in candidates.items():
            samples[name].append(timed(action))
            if between:
                between()
    return samples


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def summarize_pairs(samples: list[tuple[float, float]]) -> dict[str, Any]:
    return {"wall": summary([w for w, _ in samples]), "cpu": summary([c for _, c in samples])}


def ratio(candidate: dict[str, Any], baseline: dict[str, Any], key: str = "wall") -> float:
    return candidate[key]["median"] / baseline[key]["median"]


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- facts about the run -----------------------------------------------------------------------

def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return "missing"
    return out.strip().splitlines()[0] if out.strip() else "?"


def versions() -> dict[str, str]:
    chart = (CHART / "Chart.yaml").read_text()
    return {
        "helm": _first_line([HELM, "version", "--template", "{{.Version}}"]),
        "helm3": _first_line([str(BIN / "helm3"), "version", "--template", "{{.Version}}"]),
        "kubernetes": _first_line([str(BIN / "kube-apiserver"), "--version"]),
        "kwok": _first_line([str(BIN / "kwok"), "--version"]),
        "etcd": _first_line(["/usr/bin/etcd", "--version"]),
        "chart": re.search(r"(?m)^version: *(\S+)", chart).group(1),
        "app": re.search(r'(?m)^appVersion: *"?([^"\s]+)', chart).group(1),
        "python": platform.python_version(),
        "git": _first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
        # The chart as measured (the work tree may differ from HEAD): a hash of its files.
        "chart_sha": _chart_sha(),
    }


def _chart_sha() -> str:
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(p for p in CHART.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(CHART)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def machine() -> dict[str, Any]:
    mem = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal:"))
    return {"cores": os.cpu_count(), "memory_gib": round(mem / 2**20, 1),
            "kernel": platform.release()}


def record(family: str, data: dict[str, Any], *, started_load: list[float],
           merge_sizes: bool = False) -> None:
    """Stores one family's results in bench/results.json (other families kept), with the date,
    versions, machine and the load average at start and end. With `merge_sizes`, the family's
    earlier `sizes` entries for other node counts are kept (each entry carries its own date
    and load), so a big size can be added by a separate run."""
    results = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    for size in data.get("sizes", []):
        size.setdefault("date", date)
        size.setdefault("load", {"start": started_load, "end": load()})
    if merge_sizes and family in results and "sizes" in data:
        new = {s["nodes"] for s in data["sizes"]}
        kept = [s for s in results[family].get("sizes", []) if s["nodes"] not in new]
        data = {**data, "sizes": sorted(kept + data["sizes"], key=lambda s: s["nodes"])}
    results[family] = {
        "date": date, "versions": versions(), "machine": machine(),
        "load": {"start": started_load, "end": load()},
        "argv": sys.argv[1:], **data,
    }
    RESULTS_JSON.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    log(f"results: {RESULTS_JSON.relative_to(REPO)} [{family}]")


# --- the bench cluster -------------------------------------------------------------------------

@contextlib.contextmanager
def bench_cluster(nodes: int, *, keep: bool = False) -> Iterator[Cluster]:
    """The bench's own local cluster (.cache/bench-cluster) with exactly `nodes` fake nodes;
    stopped on exit unless `keep` (or it was already running when we came)."""
    cluster = Cluster(STATE_DIR)
    was_running = cluster.is_healthy()
    cluster.up(nodes=0, timeout=180)
    try:
        set_nodes(cluster, nodes)
        yield cluster
    finally:
        if not (keep or was_running):
            cluster.down()


# Taints the node lifecycle controller keeps on a node it does not yet consider Ready: a
# DaemonSet does not tolerate not-ready/unreachable NoSchedule, so such a node gets no pod and is
# not counted in the DaemonSet's desiredNumberScheduled.
UNREADY_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")


def node_schedulable(node: dict) -> bool:
    """Ready, and without the taints the lifecycle controller removes once it has seen it so."""
    conditions = node.get("status", {}).get("conditions") or []
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
    taints = {t["key"] for t in node.get("spec", {}).get("taints") or []}
    return ready and not taints & set(UNREADY_TAINTS)


def fake_nodes_settled(cluster: Cluster, count: int, *, hold: float,
                       timeout: float) -> tuple[float, int]:
    """Waits until all `count` fake nodes are schedulable (Ready, untainted) and stay so for
    `hold` seconds (a dip restarts the hold). Returns (seconds until they first all were, how
    many times one dipped during holds)."""
    start, settled_at, dips = time.monotonic(), None, 0
    first = None
    while time.monotonic() - start < timeout:
        items = [n for n in cluster.api.get("/api/v1/nodes", timeout=60)["items"]
                 if n["metadata"]["name"].startswith("kwok-node-")]
        ok = len(items) == count and all(node_schedulable(n) for n in items)
        now = time.monotonic()
        if ok:
            first = first if first is not None else now - start
            settled_at = settled_at if settled_at is not None else now
            if now - settled_at >= hold:
                return first, dips
        elif settled_at is not None:
            dips, settled_at = dips + 1, None
        time.sleep(1)
    raise TimeoutError(f"{count} fake nodes not Ready and untainted for {hold:.0f}s in a row "
                       f"within {timeout:.0f}s ({dips} dips)")


def set_nodes(cluster: Cluster, count: int) -> dict[str, float]:
    """Adds or removes fake nodes until there are `count`, then waits until every node is Ready
    and untainted and stays so for a hold (one lease renewal interval and a margin): only then
    does the clock of a run start. Returns how long the change took, how long until all nodes
    were schedulable, and how often one dipped during the hold."""
    start = time.monotonic()
    names = cluster.node_names()
    if len(names) > count:
        by_index = sorted(names, key=lambda n: int(n.rsplit("-", 1)[1]))
        cluster.remove_nodes(by_index[count:])
    elif len(names) < count:
        log(f"adding {count - len(names)} nodes")
        cluster.add_nodes(count - len(names), timeout=60 + count * 0.5)
    added = time.monotonic() - start
    hold = KWOK_LEASE_SECONDS / 4 + 10 if len(names) != count else 5
    schedulable, dips = fake_nodes_settled(cluster, count, hold=hold,
                                           timeout=300 + count * 0.5)
    log(f"{count} nodes Ready and untainted after {schedulable:.1f}s, held {hold:.0f}s "
        f"({dips} dips)")
    return {"nodes_created_s": round(added, 1), "nodes_schedulable_s": round(schedulable, 1),
            "hold_s": hold, "dips": dips}


def control_plane_settings() -> dict[str, Any]:
    """The settings every scale figure depends on (localcluster/components.py)."""
    from localcluster import components as c
    return {"controller_manager_qps_burst": [c.CONTROLLER_MANAGER_QPS, c.CONTROLLER_MANAGER_BURST],
            "scheduler_qps_burst": [c.SCHEDULER_QPS, c.SCHEDULER_BURST],
            "kwok_lease_s": c.KWOK_LEASE_SECONDS, "kwok_lease_workers": c.KWOK_LEASE_WORKERS,
            "node_monitor_grace": c.NODE_MONITOR_GRACE}


class KeepAliveApi:
    """POSTs over one kept-alive HTTPS connection per thread: a fresh TLS handshake per request
    (what urllib does) would make the client, not the cluster, the floor."""

    def __init__(self, cluster: Cluster):
        api = cluster.api
        self._url, self._ssl = urlparse(api.server), api._ssl
        self._local = threading.local()

    def _conn(self) -> http.client.HTTPSConnection:
        if getattr(self._local, "conn", None) is None:
            self._local.conn = http.client.HTTPSConnection(
                self._url.hostname, self._url.port, context=self._ssl, timeout=60)
        return self._local.conn

    def create(self, path: str, body: dict) -> None:
        conn = self._conn()
        conn.request("POST", path, json.dumps(body),
                     {"Content-Type": "application/json", "Accept": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        if resp.status >= 300:
            raise ApiError(resp.status, "POST", path, data.decode(errors="replace"))


def component_pids(cluster: Cluster) -> dict[str, int]:
    return {name: pid for name in COMPONENTS if (pid := cluster.procs.pid(name))}


def process_cpu(pid: int) -> float:
    """utime + stime of a process (seconds); 0 when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = raw[raw.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ComponentCpu:
    """CPU seconds each cluster component used between construction and `stop()`."""

    def __init__(self, cluster: Cluster):
        self.pids = component_pids(cluster)
        self.start = {n: process_cpu(p) for n, p in self.pids.items()}

    def stop(self) -> dict[str, float]:
        return {n: round(process_cpu(p) - self.start[n], 2) for n, p in self.pids.items()}


# --- metrics -----------------------------------------------------------------------------------

_SAMPLE = re.compile(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str, names: tuple[str, ...]) -> list[tuple[str, dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        if not line or line[0] == "#" or not line.startswith(names):
            continue
        match = _SAMPLE.match(line)
        if match and match.group(1) in names:
            labels = dict(_LABEL.findall(match.group(2) or ""))
            out.append((match.group(1), labels, float(match.group(3))))
    return out


def component_metrics(cluster: Cluster, component: str) -> str:
    """/metrics of a component over loopback (the admin cert is authorised everywhere)."""
    import ssl
    import urllib.request

    if component == "kube-apiserver":
        return cluster.api.get("/metrics", timeout=30)
    ports = cluster.ports
    port = {"kube-controller-manager": ports.controller_manager,
            "kube-scheduler": ports.scheduler}[component]
    ctx = ssl._create_unverified_context()  # the components' serving certs are self-signed
    pki = cluster.state_dir / "pki"
    ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    with urllib.request.urlopen(f"https://127.0.0.1:{port}/metrics", context=ctx,
                                timeout=30) as resp:
        return resp.read().decode()


def apiserver_requests(cluster: Cluster) -> dict[tuple[str, str, str], float]:
    """apiserver_request_total summed per (verb, resource, subresource); /metrics itself and
    health checks left out."""
    counts: dict[tuple[str, str, str], float] = {}
    text = component_metrics(cluster, "kube-apiserver")
    for _, labels, value in parse_metrics(text, ("apiserver_request_total",)):
        if not labels.get("resource") and labels.get("subresource", "").startswith(
                ("/metrics", "/healthz", "/readyz", "/livez")):
            continue
        key = (labels.get("verb", ""), labels.get("resource", ""), labels.get("subresource", ""))
        counts[key] = counts.get(key, 0.0) + value
    return counts


def diff_counts(before: dict, after: dict) -> dict:
    return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in set(before) | set(after)
            if after.get(k, 0.0) - before.get(k, 0.0)}


def client_throttling(cluster: Cluster) -> dict[str, float]:
    """Seconds that controller-manager's and scheduler's clients waited in their own
    client-side rate limiter (--kube-api-qps), summed over requests."""
    out = {}
    for component in ("kube-controller-manager", "kube-scheduler"):
        text = component_metrics(cluster, component)
        out[component] = sum(v for _, _, v in parse_metrics(
            text, ("rest_client_rate_limiter_duration_seconds_sum",)))
    return out


# --- watching the API --------------------------------------------------------------------------

class Watch(threading.Thread):
    """Streams watch events of one collection to `sink(monotonic_time, event)` until stop().

    Starts with a LIST, passed on as a synthetic {"type": "SYNC", "items": [...]} event, then
    watches from its resourceVersion. If the apiserver ends the stream (it closes watchers that
    fall behind), the thread lists and watches again, so no deletion goes unseen; `restarts`
    counts how often."""

    def __init__(self, cluster: Cluster, path: str, sink: Callable[[float, dict], None]):
        super().__init__(daemon=True)
        api = cluster.api
        self._url, self._ssl = urlparse(api.server), api._ssl
        self._path, self._sink = path, sink
        self._conn: http.client.HTTPSConnection | None = None
        self._stopping = False
        self.restarts = -1
        self.ready = threading.Event()

    def _get(self, path: str) -> http.client.HTTPResponse:
        self._conn = http.client.HTTPSConnection(self._url.hostname, self._url.port,
                                                 context=self._ssl, timeout=3600)
        self._conn.request("GET", path, headers={"Accept": "application/json"})
        return self._conn.getresponse()

    def run(self) -> None:
        sep = "&" if "?" in self._path else "?"
        try:
            while not self._stopping:
                self.restarts += 1
                listed = json.loads(self._get(self._path).read())
                self._conn.close()
                self._sink(time.monotonic(), {"type": "SYNC", "items": listed.get("items", [])})
                version = listed["metadata"]["resourceVersion"]
                resp = self._get(f"{self._path}{sep}watch=1&resourceVersion={version}"
                                 "&timeoutSeconds=3600")
                self.ready.set()
                while not self._stopping:
                    line = resp.readline()
                    if not line:
                        break
                    self._sink(time.monotonic(), json.loads(line))
                self._conn.close()
        except (OSError, ValueError, AttributeError, http.client.HTTPException):
            # AttributeError: http.client tripping over the socket that stop() closed.
            if not self._stopping:
                raise
        finally:
            self.ready.set()

    def stop(self) -> None:
        self._stopping = True
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(OSError):
                if conn.sock:
                    conn.sock.shutdown(2)
            conn.close()


def pod_ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in pod.get("status", {}).get("conditions") or [])


class PodTracker:
    """Follows the pods of one namespace through a watch: when each was added, bound and became
    Ready, and how many nodes had no Ready pod of a component at the worst moment."""

    def __init__(self, cluster: Cluster, namespace: str, *, t0: float | None = None):
        self.t0 = t0 if t0 is not None else time.monotonic()
        self.pods: dict[str, dict[str, Any]] = {}
        self.cond = threading.Condition()
        self.ready_nodes: dict[str, set[str]] = {}  # component -> nodes with a Ready pod
        self._ready_count: dict[tuple[str, str], int] = {}  # (component, node) -> Ready pods
        self.track_nodes: set[str] | None = None
        self.worst_unavailable = 0
        self.timeline: list[tuple[float, int]] = []  # (t, nodes without a Ready vineyardd)
        self._watch = Watch(cluster, f"/api/v1/namespaces/{namespace}/pods", self._on_event)

    def __enter__(self) -> PodTracker:
        self._watch.start()
        self._watch.ready.wait(10)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._watch.stop()

    @property
    def watch_restarts(self) -> int:
        return self._watch.restarts

    def reset_clock(self) -> None:
        with self.cond:
            self.t0 = time.monotonic()

    def follow_unavailability(self, nodes: set[str]) -> None:
        """From now on, count nodes in `nodes` without a Ready vineyardd pod."""
        with self.cond:
            self.track_nodes = set(nodes)
            self.worst_unavailable = self._unavailable()
            self.timeline = [(time.monotonic() - self.t0, self.worst_unavailable)]

    def _unavailable(self) -> int:
        ready = self.ready_nodes.get("vineyardd", set())
        return len(self.track_nodes - ready) if self.track_nodes is not None else 0

    def _on_event(self, now: float, event: dict) -> None:
        if event.get("type") == "SYNC":  # a (re-)list: what is not in it is gone
            names = {p["metadata"]["name"] for p in event["items"]}
            for name, rec in list(self.pods.items()):
                if name not in names and "deleted" not in rec:
                    self._on_event(now, {"type": "DELETED", "object": {
                        "metadata": {"name": name}, "spec": {"nodeName": rec.get("node")}}})
            for pod in event["items"]:
                self._on_event(now, {"type": "MODIFIED", "object": pod})
            return
        pod = event.get("object", {})
        meta = pod.get("metadata", {})
        name = meta.get("name")
        if not name or event.get("type") == "ERROR":
            return
        t = now - self.t0
        with self.cond:
            rec = self.pods.setdefault(name, {
                "added": t, "component": meta.get("labels", {}).get(
                    "app.kubernetes.io/component", "bare"),
                "hash": meta.get("labels", {}).get("controller-revision-hash")})
            node = pod.get("spec", {}).get("nodeName")
            if node and "bound" not in rec:
                rec["bound"], rec["node"] = t, node
            ready = pod_ready(pod) and event["type"] != "DELETED" and \
                not meta.get("deletionTimestamp")
            if ready and "ready" not in rec:
                rec["ready"] = t
            if event["type"] == "DELETED" or meta.get("deletionTimestamp"):
                rec.setdefault("deleting", t)
                if event["type"] == "DELETED":
                    rec["deleted"] = t
            if node:
                was, rec["ready_now"] = rec.get("ready_now", False), ready
                key = (rec["component"], node)
                if ready != was:
                    self._ready_count[key] = self._ready_count.get(key, 0) + (1 if ready else -1)
                nodes = self.ready_nodes.setdefault(rec["component"], set())
                if self._ready_count.get(key, 0) > 0:
                    nodes.add(node)
                else:
                    nodes.discard(node)
                if rec["component"] == "vineyardd" and self.track_nodes is not None:
                    unavailable = self._unavailable()
                    if not self.timeline or self.timeline[-1][1] != unavailable:
                        self.timeline.append((t, unavailable))
                    self.worst_unavailable = max(self.worst_unavailable, unavailable)
            self.cond.notify_all()

    def wait(self, predicate: Callable[[PodTracker], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 1.0))
            return True

    def live(self, component: str | None = None) -> list[dict[str, Any]]:
        return [p for p in self.pods.values() if "deleted" not in p
                and (component is None or p["component"] == component)]

    def all_ready(self, count: int, component: str | None = None) -> bool:
        live = self.live(component)
        return len(live) >= count and all(p.get("ready_now") for p in live)

    def milestone(self, key: str, component: str | None = None) -> float | None:
        """Latest `key` time ("added", "bound", "ready") over the live pods of a component."""
        times = [p.get(key) for p in self.live(component)]
        return max(times) if times and None not in times else None


class ObjectTimes:
    """When objects of some kinds were first seen (ADDED) in a namespace, from watches."""

    def __init__(self, cluster: Cluster, namespace: str, paths: list[str], t0: float):
        self.t0, self.seen = t0, {}
        self._watches = [Watch(cluster, p.format(ns=namespace), self._on_event) for p in paths]

    def _on_event(self, now: float, event: dict) -> None:
        if event.get("type") == "SYNC":
            for obj in event["items"]:
                self._on_event(now, {"type": "ADDED", "object": obj})
            return
        obj = event.get("object", {})
        self.seen.setdefault(obj.get("metadata", {}).get("name"), now - self.t0)

    def __enter__(self) -> ObjectTimes:
        for w in self._watches:
            w.start()
        for w in self._watches:
            w.ready.wait(10)
        return self

    def __exit__(self, *exc: Any) -> None:
        for w in self._watches:
            w.stop()


# --- namespaces and releases -------------------------------------------------------------------

def wipe_namespace(cluster: Cluster, namespace: str, *, release: str | None = None,
                   timeout: float = 600) -> None:
    """Removes a release and its namespace and waits until both are gone. Pods are deleted as one
    collection first: waiting for the garbage collector (rate-limited like every controller)
    would make cleanup longer than the measurement."""
    api = cluster.api
    if release:
        subprocess.run([HELM, "uninstall", release, "-n", namespace, "--ignore-not-found"],
                       env=cluster.env, capture_output=True, check=False)
    with contextlib.suppress(ApiError):
        api.request("DELETE", f"/apis/apps/v1/namespaces/{namespace}/daemonsets", timeout=60)
        api.request("DELETE", f"/apis/apps/v1/namespaces/{namespace}/statefulsets", timeout=60)
        api.request("DELETE", f"/api/v1/namespaces/{namespace}/pods", timeout=120)
    api.delete(f"/api/v1/namespaces/{namespace}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            api.get(f"/api/v1/namespaces/{namespace}")
        except ApiError as e:
            if e.status == 404:
                return
            raise
        time.sleep(0.5)
    raise TimeoutError(f"namespace {namespace} still there after {timeout:.0f}s")


def create_namespace(cluster: Cluster, namespace: str) -> None:
    cluster.api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                              "metadata": {"name": namespace}})


def rendered(values: dict[str, Any], *, release: str, namespace: str) -> list[dict]:
    import vineyard_helm
    return vineyard_helm.render(values, release=release, namespace=namespace, helm=HELM,
                                skip_tests=True)


def write_values(path: Path, values: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values))  # JSON is YAML
    return path


def require_tools() -> None:
    missing = [p for p in (HELM, str(BIN / "kube-apiserver"), str(BIN / "kwok"))
               if not Path(p).exists()]
    if missing or not shutil.which("etcdctl"):
        sys.exit(f"missing {missing or 'etcdctl'}: run `make setup` first")
