"""Rollout cost: a `helm upgrade` that changes a vineyardd flag (vineyard.size), per update
strategy, on N fake nodes.

    python bench/rollout.py [--nodes 100] [--runs 2] [--strategies 1 10% 25% OnDelete]
                            [--cap 600]

One install per node count; then, per round and strategy (interleaved): an upgrade that only
sets the strategy (no pod changes), then the measured upgrade that flips vineyard.size between
128Mi and 192Mi (wait=False; we watch ourselves). Measured: helm's return, time until every
vineyardd pod runs the new spec and is Ready (DaemonSet status: updatedNumberScheduled and
numberReady == desired, observedGeneration current), and the most nodes without a Ready
vineyardd at any moment (from a pod watch, cross-checked with DaemonSet numberUnavailable
polled every 0.5 s).

OnDelete: the upgrade changes no pod (updatedNumberScheduled stays 0, recorded after 5 s);
then the pods are replaced by hand, 10% of the nodes per batch: delete the batch, wait until
the DaemonSet has put Ready new pods there, next batch.
A rollout still going at --cap seconds is stopped and its progress rate recorded.

The fair floor, in the same run and interleaved: a bare DaemonSet (bench/ready.py's: a pause
container, no init containers, no probes) in its own namespace, rolled under the same strategy
by a PATCH of its pod template (an annotation), timed the same way. It goes through the same
DaemonSet controller and its client limits, so the ratio is what the chart's pods and helm add.
OnDelete has no floor (its time is our by-hand batches).
"""
from __future__ import annotations

import argparse
import math
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from common import (
    CHART,
    HELM,
    RELEASE,
    PodTracker,
    bench_cluster,
    control_plane_settings,
    create_namespace,
    load,
    log,
    record,
    set_nodes,
    wipe_namespace,
)
from ready import bare_workloads

from localcluster import Cluster

SIZES = ("128Mi", "192Mi")
HASH_LABEL = "controller-revision-hash"


def strategy_values(strategy: str) -> dict[str, Any]:
    if strategy == "OnDelete":
        return {"type": "OnDelete"}
    max_unavailable: int | str = strategy if strategy.endswith("%") else int(strategy)
    return {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": max_unavailable}}


def values(strategy: str, size: str) -> dict[str, Any]:
    return {"vineyard": {"size": size}, "updateStrategy": strategy_values(strategy)}


class Release:
    def __init__(self, cluster: Cluster, namespace: str):
        self.cluster, self.namespace = cluster, namespace
        self.ds_path = f"/apis/apps/v1/namespaces/{namespace}/daemonsets/{RELEASE}-vineyard"

    def apply(self, vals: dict[str, Any], *, install: bool = False, wait: bool) -> None:
        import vineyard_helm

        verb = vineyard_helm.install if install else vineyard_helm.upgrade
        verb(vals, release=RELEASE, namespace=self.namespace, chart=CHART, wait=wait,
             timeout=1800, kubeconfig=str(self.cluster.kubeconfig), helm=HELM)

    def ds(self) -> dict[str, Any]:
        return self.cluster.api.get(self.ds_path)

    def rolled_out(self, ds: dict[str, Any]) -> bool:
        st, want = ds.get("status", {}), ds["status"].get("desiredNumberScheduled", -1)
        return (st.get("observedGeneration") == ds["metadata"]["generation"]
                and st.get("updatedNumberScheduled") == want == st.get("numberReady")
                and not st.get("numberUnavailable"))


class BareDaemonSet(Release):
    """The fair floor: a bare DaemonSet, changed by PATCH instead of helm."""

    def __init__(self, cluster: Cluster, namespace: str):
        super().__init__(cluster, namespace)
        create_namespace(cluster, namespace)
        path, ds = bare_workloads(namespace)[0]
        cluster.api.create(path, ds)
        self.ds_path = f"{path}/{ds['metadata']['name']}"
        self.round = 0

    def patch(self, body: dict[str, Any]) -> None:
        self.cluster.api.request("PATCH", self.ds_path, body,
                                 content_type="application/merge-patch+json")

    def apply(self, vals: dict[str, Any], *, install: bool = False, wait: bool) -> None:
        """The strategy from the chart's values; a pod change when the size changes (the
        chart's upgrade changes vineyardd's --size, this changes an annotation)."""
        self.round += 1
        self.patch({"spec": {"updateStrategy": vals["updateStrategy"], "template": {
            "metadata": {"annotations": {"bench/size": vals["vineyard"]["size"]}}}}})
        if wait:
            wait_ds(self, self.rolled_out, 600)


def wait_ds(rel: Release, until, timeout: float, poll: float = 0.5) -> tuple[bool, int]:
    """Polls the DaemonSet until `until(ds)`; returns (done, worst numberUnavailable)."""
    deadline, worst = time.monotonic() + timeout, 0
    while True:
        ds = rel.ds()
        worst = max(worst, ds.get("status", {}).get("numberUnavailable", 0))
        if until(ds):
            return True, worst
        if time.monotonic() > deadline:
            return False, worst
        time.sleep(poll)


def rolling(rel: Release, strategy: str, size: str, nodes: int, cap: float) -> dict[str, Any]:
    with PodTracker(rel.cluster, rel.namespace) as pods:
        pods.wait(lambda p: p.all_ready(nodes, "vineyardd"), 60)
        pods.follow_unavailability(set(rel.cluster.node_names()[:nodes]))
        pods.reset_clock()
        rel.apply(values(strategy, size), wait=False)
        returned = time.monotonic() - pods.t0
        done, worst_status = wait_ds(rel, rel.rolled_out, cap)
        elapsed = time.monotonic() - pods.t0
        updated = rel.ds()["status"].get("updatedNumberScheduled", 0)
        return {"strategy": strategy, "nodes": nodes, "helm_returned": returned,
                "all_updated_ready": elapsed if done else None, "finished": done,
                "updated_at_end": updated, "pods_per_s": updated / elapsed,
                "worst_unavailable": pods.worst_unavailable,
                "worst_unavailable_ds_status": worst_status,
                "timeline": [(round(t, 2), n) for t, n in pods.timeline]}


def on_delete(rel: Release, size: str, nodes: int, cap: float,
              batch_fraction: float = 0.10) -> dict[str, Any]:
    api = rel.cluster.api
    with PodTracker(rel.cluster, rel.namespace) as pods:
        pods.wait(lambda p: p.all_ready(nodes, "vineyardd"), 60)
        pods.follow_unavailability(set(rel.cluster.node_names()[:nodes]))
        pods.reset_clock()
        rel.apply(values("OnDelete", size), wait=False)
        returned = time.monotonic() - pods.t0
        time.sleep(5)
        ds = rel.ds()
        updated_after_5s = ds["status"].get("updatedNumberScheduled", 0)
        # The pods still running the old spec: those whose revision hash is not the newest.
        new_gen = ds["metadata"]["generation"]
        wait_ds(rel, lambda d: d["status"].get("observedGeneration") == new_gen, 30)
        batch = max(1, math.ceil(nodes * batch_fraction))
        start = time.monotonic()
        path = f"/api/v1/namespaces/{rel.namespace}/pods"
        replaced, done = 0, True
        with pods.cond:
            old_hashes = {p["hash"] for p in pods.live("vineyardd")}
        while True:
            with pods.cond:
                old = [name for name, p in pods.pods.items() if "deleted" not in p
                       and p["component"] == "vineyardd" and p["hash"] in old_hashes
                       and "deleting" not in p]
            if not old:
                break
            if time.monotonic() - start > cap:
                done = False
                break
            chunk = old[:batch]
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(lambda n: api.delete(f"{path}/{n}"), chunk))
            replaced += len(chunk)
            pods.wait(lambda p, want=replaced: sum(
                1 for q in p.live("vineyardd") if q["hash"] not in old_hashes
                and q.get("ready_now")) >= want and p.all_ready(nodes, "vineyardd"), cap)
        elapsed = time.monotonic() - start
        return {"strategy": "OnDelete", "nodes": nodes, "helm_returned": returned,
                "updated_after_5s": updated_after_5s, "batch": batch,
                "all_updated_ready": elapsed if done else None, "finished": done,
                "updated_at_end": replaced, "pods_per_s": replaced / elapsed,
                "worst_unavailable": pods.worst_unavailable,
                "timeline": [(round(t, 2), n) for t, n in pods.timeline]}


def measure(cluster: Cluster, nodes: int, strategies: list[str], runs: int,
            cap: float) -> dict[str, Any]:
    setup = set_nodes(cluster, nodes)
    rel = Release(cluster, f"bench-rollout-{nodes}")
    log(f"{nodes} nodes: install, and the bare DaemonSet")
    rel.apply(values(strategies[0], SIZES[0]), install=True, wait=True)
    bare = BareDaemonSet(cluster, f"bench-rollout-bare-{nodes}")
    bare.apply(values(strategies[0], SIZES[0]), wait=True)
    size_index = 0
    results: dict[str, list[dict[str, Any]]] = {s: [] for s in strategies}
    floors: dict[str, list[dict[str, Any]]] = {s: [] for s in strategies if s != "OnDelete"}
    try:
        for i in range(runs):
            for strategy in strategies:
                for target, sink in ((rel, results), (bare, floors)):
                    if strategy not in sink:
                        continue
                    # Switch strategy first: not part of the pod template, so no pod moves.
                    target.apply(values(strategy, SIZES[size_index]), wait=True)
                    what = "bare DaemonSet" if target is bare else "chart"
                    log(f"{nodes} nodes: {strategy} round {i + 1}/{runs} ({what})")
                    fn = on_delete if strategy == "OnDelete" else (
                        lambda r, sz, n, c, s=strategy: rolling(r, s, sz, n, c))
                    res = fn(target, SIZES[1 - size_index], nodes, cap)
                    sink[strategy].append(res)
                    t = res["all_updated_ready"]
                    log(f"  {f'{t:.1f}s' if t else 'capped'}; worst unavailable "
                        f"{res['worst_unavailable']}")
                size_index = 1 - size_index
    finally:
        wipe_namespace(cluster, rel.namespace, release=RELEASE)
        wipe_namespace(cluster, bare.namespace)
    summary = {}
    for strategy, rs in results.items():
        times = [r["all_updated_ready"] for r in rs if r["all_updated_ready"] is not None]
        floor = [r["all_updated_ready"] for r in floors.get(strategy, [])
                 if r["all_updated_ready"] is not None]
        summary[strategy] = {
            "median_s": statistics.median(times) if times else None,
            "floor_median_s": statistics.median(floor) if floor else None,
            "median_pods_per_s": statistics.median(r["pods_per_s"] for r in rs),
            "worst_unavailable": max(r["worst_unavailable"] for r in rs),
            "finished": all(r["finished"] for r in rs), "runs": len(rs)}
    return {"nodes": nodes, "runs": results, "floor_runs": floors, "summary": summary,
            "node_setup": setup, "control_plane": control_plane_settings()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[100])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--strategies", nargs="+", default=["1", "10%", "25%", "OnDelete"])
    parser.add_argument("--cap", type=float, default=600,
                        help="stop a rollout after this many seconds, recording its rate")
    parser.add_argument("--merge", action="store_true",
                        help="keep earlier results for other node counts in results.json")
    args = parser.parse_args()
    started = load()
    out = []
    with bench_cluster(min(args.nodes)) as cluster:
        for nodes in args.nodes:
            out.append(measure(cluster, nodes, args.strategies, args.runs, args.cap))
            for strategy, s in out[-1]["summary"].items():
                t = f"{s['median_s']:.1f}s" if s["median_s"] else "capped"
                print(f"{nodes} nodes, {strategy}: {t}, {s['median_pods_per_s']:.2f} pods/s, "
                      f"worst {s['worst_unavailable']} nodes without vineyardd", flush=True)
    record("rollout", {"sizes": out}, started_load=started, merge_sizes=args.merge)


if __name__ == "__main__":
    main()
