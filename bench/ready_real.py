"""Time to Ready on the real node: `helm install --wait` against the floor, cut into phases.

    python bench/ready_real.py [--runs 5] [--helm3] [--before GIT_REF]

The real node (localcluster/realnode.py: a kubelet with containerd, its own state dir
.cache/bench-realnode) runs the chart's real containers, so this is the time a user waits:
API, scheduling (etcd's claim is provisioned on the way), sandbox, init containers, vineyardd
and etcd starting, their probes, and helm noticing. A warm-up install first pulls the images
from the node's loopback mirror; its figures are kept apart as the cold run.

Each round, interleaved: the chart with Helm 4 (`helm install --wait`), the chart with Helm 3
(with --helm3), and the floor: the chart's own etcd and vineyardd containers created directly
as bare pods by one `kubectl create` (the rendered Services, ServiceAccount and etcd claim
with them), no init containers (vineyardd's container waits for etcd inline, polling every
0.1 s), every probe at the kubelet's smallest period (1 s). A pod watch timestamps each
milestone as its event arrives (the API's own timestamps have 1 s resolution).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import yaml
from common import BIN, CHART, HELM, REPO, load, log, record

from localcluster import Cluster
from localcluster.realnode import NODE_NAME

STATE_DIR = REPO / ".cache" / "bench-realnode"
RELEASE = "vy"
KUBECTL = str(BIN / "kubectl")
HELM3 = str(BIN / "helm3")
# vineyardd's milestones in pod order, then etcd's, then the end.
POD_MARKS = ("added", "scheduled", "sandbox", "initialized", "started", "ready")


class PodTimeline:
    """Watches the pods of one namespace (kubectl get -w: one JSON event per line) and records,
    per pod component, the first arrival of each milestone, in seconds after t0."""

    def __init__(self, kubeconfig: Path, namespace: str):
        self.t0 = time.monotonic()
        self.marks: dict[str, dict[str, float]] = {}
        self._proc = subprocess.Popen(
            [KUBECTL, "--kubeconfig", str(kubeconfig), "get", "pods", "-n", namespace,
             "--watch", "--output-watch-events", "-o", "json", "--request-timeout=0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def start_clock(self) -> None:
        self.t0 = time.monotonic()

    def _read(self) -> None:
        assert self._proc.stdout
        for line in self._proc.stdout:  # one event per line
            self._seen(json.loads(line)["object"], time.monotonic() - self.t0)

    def _seen(self, pod: dict, at: float) -> None:
        labels = pod["metadata"].get("labels", {})
        component = labels.get("app.kubernetes.io/component", "?")
        marks = self.marks.setdefault(component, {})
        status = pod.get("status", {})
        conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
        main = [c for c in status.get("containerStatuses") or []
                if c["name"] in ("vineyardd", "etcd")]
        seen = {"added": True,
                "scheduled": conditions.get("PodScheduled") == "True",
                "sandbox": conditions.get("PodReadyToStartContainers") == "True",
                "initialized": conditions.get("Initialized") == "True",
                "started": any("running" in c.get("state", {}) for c in main),
                "ready": conditions.get("Ready") == "True"}
        for mark, yes in seen.items():
            if yes:
                marks.setdefault(mark, round(at, 3))

    def wait_ready(self, components: tuple[str, ...], timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all("ready" in self.marks.get(c, {}) for c in components):
                return max(self.marks[c]["ready"] for c in components)
            time.sleep(0.02)
        raise TimeoutError(f"not Ready in {timeout}s: {self.marks}")

    def close(self) -> None:
        self._proc.terminate()
        self._proc.wait()


def kubectl(cluster: Cluster, *args: str, stdin: str | None = None) -> str:
    return subprocess.run([KUBECTL, "--kubeconfig", str(cluster.kubeconfig), *args],
                          input=stdin, capture_output=True, text=True, check=True).stdout


def rendered(namespace: str) -> list[dict]:
    text = subprocess.run([HELM, "template", RELEASE, str(CHART), "-n", namespace],
                          capture_output=True, text=True, check=True).stdout
    return [d for d in yaml.safe_load_all(text) if d]


def floor_objects(namespace: str, node: str) -> list[dict]:
    """The chart's containers as bare pods: see the module docstring."""
    docs = rendered(namespace)
    kinds = {d["kind"]: d for d in docs}
    sts, ds = kinds["StatefulSet"], kinds["DaemonSet"]
    out = [d for d in docs if d["kind"] in ("Service", "ServiceAccount")]
    pin = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In",
                                                "values": [node]}]}]}}}
    tight = {"periodSeconds": 1, "failureThreshold": 120}

    # etcd: the StatefulSet's pod 0 with its claim.
    claim = copy.deepcopy(sts["spec"]["volumeClaimTemplates"][0])
    pod_name = f"{sts['metadata']['name']}-0"
    claim["metadata"] = {"name": f"{claim['metadata']['name']}-{pod_name}",
                         "namespace": namespace}
    claim.update(apiVersion="v1", kind="PersistentVolumeClaim")
    etcd = copy.deepcopy(sts["spec"]["template"])
    etcd["metadata"].update(name=pod_name, namespace=namespace)
    spec = etcd["spec"]
    spec.update(hostname=pod_name, subdomain=sts["spec"]["serviceName"])
    spec.setdefault("volumes", []).append({"name": sts["spec"]["volumeClaimTemplates"][0][
        "metadata"]["name"], "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]}})
    for c in spec["containers"]:
        for probe in ("startupProbe", "readinessProbe"):
            if probe in c:
                c[probe].update(tight)
        c.pop("livenessProbe", None)
    out += [claim, {"apiVersion": "v1", "kind": "Pod", **etcd}]

    # vineyardd: no init chain; its container waits for etcd inline.
    vy = copy.deepcopy(ds["spec"]["template"])
    vy["metadata"].update(name="floor-vineyardd", namespace=namespace)
    spec = vy["spec"]
    init = {c["name"]: c for c in spec.pop("initContainers", [])}
    spec["affinity"] = pin
    socket_volume = next(m["name"] for c in spec["containers"] if c["name"] == "vineyardd"
                         for m in c["volumeMounts"] if "vineyard" in m["mountPath"])
    spec["volumes"] = [v for v in spec["volumes"] if v["name"] != socket_volume] + [
        {"name": socket_volume, "emptyDir": {}}]  # no prepare-socket-dir to own a hostPath
    wait_env = init["wait-for-etcd"]["env"]
    for c in spec["containers"]:
        if c["name"] != "vineyardd":
            continue
        c["env"] = c.get("env", []) + wait_env
        c["args"] = [*c.get("command", []), *c.get("args", [])]
        c["command"] = ["sh", "-c", 'until wget -q -O - "$ETCD_ENDPOINTS/health" 2>/dev/null'
                        ' | grep -q true; do sleep 0.1; done; exec "$@"', "sh"]
        for probe in ("startupProbe", "readinessProbe"):
            c[probe].update(tight)
        c.pop("livenessProbe", None)
    out.append({"apiVersion": "v1", "kind": "Pod", **vy})
    return out


def wipe(cluster: Cluster, namespace: str) -> None:
    kubectl(cluster, "delete", "namespace", namespace, "--wait=true", "--timeout=180s")


def chart_at(ref: str) -> Path:
    """The chart as committed at `ref` (git archive), for a before/after pair."""
    out = REPO / ".cache" / "chart-before" / ref
    if not out.exists():
        out.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "charts/vineyard"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out / "charts" / "vineyard"


BEFORE: dict[str, Path] = {}


def one_run(cluster: Cluster, kind: str, namespace: str, node: str,
            timeout: float) -> dict[str, Any]:
    kubectl(cluster, "create", "namespace", namespace)
    objects = floor_objects(namespace, node) if kind == "floor" else None
    timeline = PodTimeline(cluster.kubeconfig, namespace)
    time.sleep(0.5)  # the watch is established before the clock starts
    try:
        timeline.start_clock()
        env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
        if objects is None:
            helm = HELM3 if kind == "helm3" else HELM
            chart = BEFORE.get(kind, CHART)
            subprocess.run([helm, "install", RELEASE, str(chart), "-n", namespace, "--wait",
                            f"--timeout={int(timeout)}s"], env=env, check=True,
                           capture_output=True)
        else:
            kubectl(cluster, "create", "-f", "-", stdin=json.dumps(
                {"apiVersion": "v1", "kind": "List", "items": objects}))
        returned = time.monotonic() - timeline.t0
        all_ready = timeline.wait_ready(("etcd", "vineyardd"), timeout)
        time.sleep(0.2)
        return {"returned": round(max(returned, all_ready) if objects else all_ready, 3),
                "helm_returned": round(returned, 3) if objects is None else None,
                "all_ready": all_ready, "marks": timeline.marks}
    finally:
        timeline.close()
        wipe(cluster, namespace)


def phases(run: dict[str, Any]) -> dict[str, float]:
    """The critical path: vineyardd's pod from creation to Ready, with the etcd it waits on."""
    vy = run["marks"]["vineyardd"]
    marks = [("API and controller: pod created", vy["added"]),
             ("scheduling", vy["scheduled"]),
             ("sandbox (network, volumes)", vy.get("sandbox", vy["scheduled"])),
             ("init containers (waiting for etcd)", vy.get("initialized", vy["scheduled"])),
             ("vineyardd container started", vy["started"]),
             ("probes: vineyardd Ready", vy["ready"]),
             ("helm's wait returns", run["returned"])]
    out, previous = {}, 0.0
    for name, t in marks:
        out[name] = round(max(0.0, t - previous), 3)
        previous = max(previous, t)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--helm3", action="store_true", help="also the chart under Helm 3")
    parser.add_argument("--timeout", type=float, default=180)
    parser.add_argument("--keep", action="store_true", help="leave the cluster running")
    parser.add_argument("--before", metavar="GIT_REF",
                        help="also the chart as committed at GIT_REF (Helm 4), interleaved")
    args = parser.parse_args()
    started = load()
    cluster = Cluster(STATE_DIR)
    was_up = cluster.is_healthy()
    cluster.up(nodes=0, real_nodes=1, timeout=300)
    node = NODE_NAME
    kinds = ["helm4", "helm3", "floor"] if args.helm3 else ["helm4", "floor"]
    if args.before:
        BEFORE[f"before {args.before}"] = chart_at(args.before)
        kinds.insert(1, f"before {args.before}")
    try:
        log("warm-up (cold images)")
        cold = one_run(cluster, "helm4", "ready-real-cold", node, args.timeout)
        runs: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
        for i in range(args.runs):
            for kind in kinds:
                slug = "".join(ch if ch.isalnum() else "-" for ch in kind)
                runs[kind].append(one_run(cluster, kind, f"ready-real-{slug}-{i}", node,
                                          args.timeout))
                log(f"round {i + 1}/{args.runs} {kind}: returned {runs[kind][-1]['returned']}s "
                    f"{phases(runs[kind][-1])}")
    finally:
        if not (args.keep or was_up):
            cluster.down()
    med = {k: statistics.median(r["returned"] for r in v) for k, v in runs.items()}
    phase_medians = {k: {p: statistics.median(phases(r)[p] for r in v)
                         for p in phases(v[0])} for k, v in runs.items()}
    for k, v in runs.items():
        phase_medians[k]["(etcd Ready at)"] = statistics.median(
            r["marks"]["etcd"]["ready"] for r in v)
    data = {"cold": {"returned": cold["returned"], "phases": phases(cold)},
            "before": args.before, "git": subprocess.run(
                ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                capture_output=True, text=True).stdout.strip(),
            "runs": runs, "median_returned_s": med, "median_phases_s": phase_medians,
            "ratio_helm4_to_floor": med["helm4"] / med["floor"],
            **({"ratio_helm3_to_floor": med["helm3"] / med["floor"]} if args.helm3 else {})}
    print(json.dumps({k: data[k] for k in data if k != "runs"}, indent=1))
    record("ready_real", data, started_load=started)


if __name__ == "__main__":
    main()
