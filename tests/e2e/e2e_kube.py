"""Helpers of the end-to-end suite: helm runs, waits with deadlines, object inventories.

Every wait polls a condition until a deadline (the machine is shared and loaded: no test
asserts how long anything takes). Deadlines are generous; a passing wait returns as soon as
its condition holds.
"""
from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from localcluster import ApiError, Cluster

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "vineyard"
CI_DIR = CHART / "ci"
SCENARIOS = sorted(p.name.removesuffix("-values.yaml") for p in CI_DIR.glob("*-values.yaml"))
BIN = REPO / ".cache" / "bin"
HELM_BINARIES = {3: BIN / "helm3", 4: BIN / "helm"}
INSTANCE = "app.kubernetes.io/instance"
#: Deadline of waits for pods, workloads and deletions (seconds).
DEADLINE = 180.0
#: helm's --timeout for installs and upgrades that must succeed.
HELM_TIMEOUT = "5m"

T = TypeVar("T")


# ---- waiting ------------------------------------------------------------------------------


def wait_for(condition: Callable[[], T], what: str, *, timeout: float = DEADLINE,
             interval: float = 0.2, describe: Callable[[], Any] | None = None) -> T:
    """Polls `condition` until it returns something truthy (returned) or `timeout` passes
    (AssertionError naming `what`, with `describe()` or the last value seen)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            seen = describe() if describe is not None else value
            raise AssertionError(f"not true after {timeout:.0f}s: {what}; last seen: {seen}")
        time.sleep(interval)


# ---- helm ---------------------------------------------------------------------------------


def helm_env(cluster: Cluster, home: Path) -> dict[str, str]:
    """cluster.env with helm's config, cache and data under `home`: repositories added here
    change nothing outside it."""
    home.mkdir(parents=True, exist_ok=True)
    return {**cluster.env,
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_DATA_HOME": str(home / "data"),
            "HELM_REPOSITORY_CONFIG": str(home / "config" / "repositories.yaml"),
            "HELM_REPOSITORY_CACHE": str(home / "cache" / "repository"),
            "HELM_REGISTRY_CONFIG": str(home / "config" / "registry.json")}


def run_helm(env: dict[str, str], *args: str, major: int = 4, check: bool = True,
             timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """`helm <args>` with the pinned binary of that major version; output captured."""
    result = subprocess.run([str(HELM_BINARIES[major]), *args], env=env, text=True,
                            capture_output=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


def install_args(release: str, namespace: str, *, scenario: str | None = None,
                 wait: bool = True, sets: Iterable[str] = (), chart: str | Path = CHART,
                 extra: Iterable[str] = ()) -> list[str]:
    """Arguments of `helm install` for the chart (a ci scenario's values, --set overrides)."""
    args = ["install", release, str(chart), "--namespace", namespace, "--create-namespace"]
    if scenario is not None:
        args += ["--values", str(CI_DIR / f"{scenario}-values.yaml")]
    for expression in sets:
        args += ["--set", expression]
    if wait:
        args += ["--wait", "--timeout", HELM_TIMEOUT]
    return [*args, *extra]


def in_parallel(jobs: dict[str, Callable[[], T]]) -> dict[str, T]:
    """Runs the jobs on threads (helm runs are mostly waiting); results by name. The first
    exception is raised once every job has finished."""
    with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


# ---- reading the cluster ------------------------------------------------------------------


def get_or_none(cluster: Cluster, path: str) -> Any:
    return cluster.api.get_or_none(path)


def items(cluster: Cluster, path: str, selector: str | None = None) -> list[dict]:
    query = f"?labelSelector={selector}" if selector else ""
    return cluster.api.get(path + query)["items"]


def pods(cluster: Cluster, namespace: str, selector: str | None = None) -> list[dict]:
    return items(cluster, f"/api/v1/namespaces/{namespace}/pods", selector)


def selector_of(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def daemonset(cluster: Cluster, namespace: str, name: str) -> dict:
    return cluster.api.get(f"/apis/apps/v1/namespaces/{namespace}/daemonsets/{name}")


def statefulset(cluster: Cluster, namespace: str, name: str) -> dict:
    return cluster.api.get(f"/apis/apps/v1/namespaces/{namespace}/statefulsets/{name}")


def is_ready(obj: dict) -> bool:
    """A Node's or a Pod's Ready condition."""
    conditions = obj.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


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
            and len(running_ready_pods(cluster, namespace, ds["spec"]["selector"]["matchLabels"]))
            == nodes)


def running_ready_pods(cluster: Cluster, namespace: str, labels: dict[str, str]) -> list[dict]:
    return [p for p in pods(cluster, namespace, selector_of(labels))
            if p["status"].get("phase") == "Running" and is_ready(p)
            and not p["metadata"].get("deletionTimestamp")]


def wait_daemonset_settled(cluster: Cluster, namespace: str, name: str,
                           timeout: float = DEADLINE) -> dict[str, int]:
    wait_for(lambda: daemonset_settled(cluster, namespace, name),
             f"DaemonSet {namespace}/{name} ready on every Ready node", timeout=timeout,
             describe=lambda: (daemonset_counts(cluster, namespace, name),
                               len(ready_nodes(cluster))))
    return daemonset_counts(cluster, namespace, name)


def statefulset_ready(cluster: Cluster, namespace: str, name: str, replicas: int) -> bool:
    sts = statefulset(cluster, namespace, name)
    status = sts.get("status", {})
    return (status.get("observedGeneration") == sts["metadata"]["generation"]
            and sts["spec"]["replicas"] == replicas
            and status.get("readyReplicas") == replicas
            and status.get("updatedReplicas") == replicas)


def container(pod_spec: dict, name: str = "vineyardd") -> dict:
    return next(c for c in pod_spec["containers"] if c["name"] == name)


def vineyardd_args(pod_or_template: dict) -> list[str]:
    return container(pod_or_template["spec"])["args"]


def flag(args: list[str], name: str) -> str | None:
    """The value of `--name=value` among vineyardd's args."""
    prefix = f"--{name}="
    return next((a[len(prefix):] for a in args if a.startswith(prefix)), None)


# ---- inventories --------------------------------------------------------------------------


def api_resources(cluster: Cluster, *, namespaced: bool) -> list[tuple[str, str, str]]:
    """Every listable kind the API server serves (discovery, each group's preferred version),
    as (list path prefix, plural, kind); for namespaced kinds the prefix ends in
    `/namespaces/`, to be followed by the namespace."""
    groups = [("/api/v1", "v1")] + [
        (f"/apis/{g['preferredVersion']['groupVersion']}", g["preferredVersion"]["groupVersion"])
        for g in cluster.api.get("/apis")["groups"]]
    out = []
    for base, _ in groups:
        try:
            listing = cluster.api.get(base)
        except ApiError:
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
        except ApiError as e:
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


def manifest_objects(env: dict[str, str], release: str, namespace: str, *, major: int = 4
                     ) -> set[tuple[str, str]]:
    """(kind, name) of what helm deployed for the release (`helm get manifest`)."""
    import yaml

    text = run_helm(env, "get", "manifest", release, "-n", namespace, major=major).stdout
    return {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(text) if d}


# ---- objects the tests create -------------------------------------------------------------


def create_namespace(cluster: Cluster, prefix: str, labels: dict[str, str] | None = None) -> str:
    name = f"e2e-{prefix}-{uuid.uuid4().hex[:5]}"
    labels = {"e2e.vineyard-helm/suite": "true", **(labels or {})}
    cluster.api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                             "metadata": {"name": name, "labels": labels}})
    # Pods are refused until the token controller has made the namespace's default SA.
    wait_for(lambda: get_or_none(cluster, f"/api/v1/namespaces/{name}/serviceaccounts/default"),
             f"default ServiceAccount in {name}", timeout=60)
    return name


def delete_namespace(cluster: Cluster, name: str) -> None:
    cluster.api.delete(f"/api/v1/namespaces/{name}")


def create_pv(cluster: Cluster, *, storage_class: str, access_modes: list[str], size: str,
              claim: tuple[str, str] | None = None) -> str:
    """A hostPath PersistentVolume (this cluster has no provisioner). With `claim`
    (namespace, name) it is reserved for that claim, so tests running side by side never take
    each other's volumes."""
    name = f"e2e-pv-{uuid.uuid4().hex[:8]}"
    spec: dict[str, Any] = {"capacity": {"storage": size}, "accessModes": access_modes,
                            "storageClassName": storage_class,
                            "persistentVolumeReclaimPolicy": "Retain",
                            "hostPath": {"path": f"/tmp/vineyard-helm-e2e/{name}"}}
    if claim is not None:
        spec["claimRef"] = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                            "namespace": claim[0], "name": claim[1]}
    cluster.api.create("/api/v1/persistentvolumes", {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": name, "labels": {"e2e.vineyard-helm/suite": "true"}}, "spec": spec})
    return name


def delete_pvs(cluster: Cluster, names: Iterable[str]) -> None:
    for name in names:
        cluster.api.delete(f"/api/v1/persistentvolumes/{name}")


def claim_phase(cluster: Cluster, namespace: str, name: str) -> str | None:
    claim = get_or_none(cluster, f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{name}")
    return None if claim is None else claim.get("status", {}).get("phase")


def events(cluster: Cluster, namespace: str) -> list[dict]:
    return items(cluster, f"/api/v1/namespaces/{namespace}/events")


# ---- kubelet stand-ins --------------------------------------------------------------------


@contextlib.contextmanager
def helm_test_pods_complete(cluster: Cluster, namespace: str) -> Iterator[list[str]]:
    """While the block runs, `helm test` pods in `namespace` that kwok has started are marked
    Succeeded, as a kubelet would once their command exits 0.

    kwok's pod stages move every pod to Running and complete only Job pods; `helm test` pods
    are bare pods (restartPolicy Never) that would stay Running forever, and their commands
    (nc to the RPC Service, etcdctl) cannot run without a kubelet anyway: the contract suite
    (tests/contract) runs them for real. Yields the names of the pods completed."""
    done: list[str] = []
    stop = threading.Event()

    def complete() -> None:
        while not stop.is_set():
            try:
                for pod in pods(cluster, namespace):
                    meta = pod["metadata"]
                    if (meta.get("annotations", {}).get("helm.sh/hook") == "test"
                            and pod["status"].get("phase") == "Running"
                            and meta["name"] not in done):
                        _mark_succeeded(cluster, pod)
                        done.append(meta["name"])
            except (ApiError, OSError):
                pass  # the next round tries again
            stop.wait(0.5)

    thread = threading.Thread(target=complete, daemon=True)
    thread.start()
    try:
        yield done
    finally:
        stop.set()
        thread.join(timeout=10)


def _mark_succeeded(cluster: Cluster, pod: dict) -> None:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    statuses = [{"name": c["name"], "image": c["image"], "imageID": "", "ready": False,
                 "restartCount": 0, "started": False,
                 "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                                          "startedAt": now, "finishedAt": now}}}
                for c in pod["spec"]["containers"]]
    meta = pod["metadata"]
    cluster.api.request(
        "PATCH", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
        {"status": {"phase": "Succeeded", "containerStatuses": statuses}},
        content_type="application/merge-patch+json")


# ---- timings ------------------------------------------------------------------------------


TIMINGS_FILE = REPO / ".cache" / "e2e-timings.json"
#: This session's measurements, printed in pytest's terminal summary (conftest.py).
SESSION_TIMINGS: dict[str, dict[str, Any]] = {}


def record_timing(name: str, seconds: float, **details: Any) -> None:
    """Keeps a measurement for the session summary and in .cache/e2e-timings.json. Nothing
    asserts on it: the machine is shared, so a duration says little about the code."""
    entry = {"seconds": round(seconds, 2), **details, "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    SESSION_TIMINGS[name] = entry
    data = json.loads(TIMINGS_FILE.read_text()) if TIMINGS_FILE.exists() else {}
    data[name] = entry
    TIMINGS_FILE.parent.mkdir(parents=True, exist_ok=True)
    TIMINGS_FILE.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
