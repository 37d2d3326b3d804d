"""Time to ready: from the install call to every pod Ready, on N fake nodes, against the floor.

    python bench/ready.py [--nodes 3 100] [--runs 3]

Each round, interleaved: vineyard_helm.install(wait=True) of the chart into a fresh namespace,
then the floor: the same pods (the DaemonSet's and the StatefulSet's pod templates, one
vineyardd pod pinned to each node the way the DaemonSet controller pins them, one etcd pod)
created directly through the API, 8 requests at a time. Watches on pods, DaemonSets and
StatefulSets give the breakdown: workload objects created (helm's API calls done), DaemonSet
pods created, bound, etcd Ready, all Ready, install returned. Each run also records the CPU
time each cluster component spent, the apiserver requests it took, and the seconds controller
manager and scheduler waited in their client-side rate limiters: where the time goes.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from common import (
    CHART,
    HELM,
    RELEASE,
    VALUES,
    ComponentCpu,
    KeepAliveApi,
    ObjectTimes,
    PodTracker,
    apiserver_requests,
    bench_cluster,
    client_throttling,
    cpu_seconds,
    create_namespace,
    diff_counts,
    load,
    log,
    pod_ready,
    record,
    rendered,
    set_nodes,
    wipe_namespace,
)

from localcluster import Cluster

MILESTONES = ("api_calls_done", "ds_pods_created", "ds_pods_bound", "etcd_ready", "all_ready",
              "install_returned")


def _expected_pods(nodes: int) -> int:
    return nodes + 1  # a vineyardd per node, one etcd member


class Probe:
    """Component CPU, apiserver requests and client-side throttling over one run."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.requests = apiserver_requests(cluster)
        self.throttle = client_throttling(cluster)
        self.cpu = ComponentCpu(cluster)

    def stop(self) -> dict[str, Any]:
        cpu = self.cpu.stop()
        requests = diff_counts(self.requests, apiserver_requests(self.cluster))
        throttle = client_throttling(self.cluster)
        by_kind: dict[str, float] = {}
        for (verb, res, sub), n in requests.items():
            key = f"{verb} {res}{'/' + sub if sub else ''}"
            by_kind[key] = by_kind.get(key, 0) + n
        top = dict(sorted(by_kind.items(), key=lambda kv: -kv[1])[:12])
        return {"component_cpu_s": cpu,
                "apiserver_requests": int(sum(requests.values())), "top_requests": top,
                "throttled_s": {k: round(throttle[k] - self.throttle[k], 2) for k in throttle}}


def install_run(cluster: Cluster, nodes: int, namespace: str, *,
                timeout: float = 900) -> dict[str, Any]:
    import vineyard_helm

    t0 = time.monotonic()
    with PodTracker(cluster, namespace, t0=t0) as pods, ObjectTimes(
            cluster, namespace, ["/apis/apps/v1/namespaces/{ns}/daemonsets",
                                 "/apis/apps/v1/namespaces/{ns}/statefulsets"], t0) as objs:
        probe = Probe(cluster)
        pods.reset_clock()
        objs.t0 = pods.t0
        client_cpu = cpu_seconds()
        vineyard_helm.install(VALUES, release=RELEASE, namespace=namespace, chart=CHART,
                              wait=True, timeout=int(timeout), kubeconfig=str(cluster.kubeconfig),
                              helm=HELM)
        returned = time.monotonic() - pods.t0
        client_cpu = cpu_seconds() - client_cpu
        at_return = state_now(cluster, namespace)
        # Helm 4's --wait can return before every pod is Ready (seen from 100 nodes up).
        if not pods.wait(lambda p: p.all_ready(_expected_pods(nodes)), timeout):
            raise TimeoutError(f"install returned but pods not all Ready in {namespace}")
        profile = {**probe.stop(), "client_cpu_s": round(client_cpu, 2),
                   "watch_restarts": pods.watch_restarts}
        return {"api_calls_done": max(objs.seen.values()),
                "ds_pods_created": pods.milestone("added", "vineyardd"),
                "ds_pods_bound": pods.milestone("bound", "vineyardd"),
                "etcd_ready": pods.milestone("ready", "etcd"),
                "all_ready": pods.milestone("ready"),
                "install_returned": returned, "at_return": at_return, "profile": profile}


def state_now(cluster: Cluster, namespace: str) -> dict[str, Any]:
    """What the API says right now (a fresh LIST, no watch lag): DaemonSet status and how many
    of the namespace's pods are Ready. Taken when helm --wait returns, it shows whether helm
    returned with pods still unready."""
    api = cluster.api
    ds = api.get(f"/apis/apps/v1/namespaces/{namespace}/daemonsets")["items"]
    items = api.get(f"/api/v1/namespaces/{namespace}/pods", timeout=60)["items"]
    status = ds[0].get("status", {}) if ds else {}
    return {"pods": len(items), "pods_ready": sum(1 for p in items if pod_ready(p)),
            "ds_status": {k: status.get(k) for k in (
                "desiredNumberScheduled", "currentNumberScheduled", "updatedNumberScheduled",
                "numberReady", "numberAvailable", "observedGeneration")},
            "ds_generation": ds[0]["metadata"]["generation"] if ds else None}


def pod_templates(namespace: str) -> tuple[dict, dict, dict]:
    """(vineyardd pod template, etcd pod template, ServiceAccount) from the rendered chart."""
    objs = {o["kind"]: o for o in rendered(VALUES, release=RELEASE, namespace=namespace)}
    return (objs["DaemonSet"]["spec"]["template"], objs["StatefulSet"]["spec"]["template"],
            objs["ServiceAccount"])


def bare_pod(template: dict, name: str, namespace: str, node: str | None) -> dict:
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {**copy.deepcopy(template["metadata"]), "name": name,
                        "namespace": namespace},
           "spec": copy.deepcopy(template["spec"])}
    pod["metadata"]["labels"]["app.kubernetes.io/component"] = (
        "vineyardd" if node else "etcd")
    if node:  # what the DaemonSet controller adds: pinned to its node, bound by the scheduler
        pod["spec"]["affinity"] = {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{
                "matchFields": [{"key": "metadata.name", "operator": "In",
                                 "values": [node]}]}]}}}
    return pod


def floor_run(cluster: Cluster, nodes: int, namespace: str, *,
              timeout: float = 900) -> dict[str, Any]:
    """The same pods created directly through the API: the floor for any deployment tool."""
    ds_template, etcd_template, account = pod_templates(namespace)
    create_namespace(cluster, namespace)
    api = cluster.api
    api.create(f"/api/v1/namespaces/{namespace}/serviceaccounts",
               {**account, "metadata": {**account["metadata"], "namespace": namespace}})
    node_names = cluster.node_names()[:nodes]
    bodies = [bare_pod(ds_template, f"floor-{i}", namespace, n)
              for i, n in enumerate(node_names)]
    bodies.insert(0, bare_pod(etcd_template, "floor-etcd", namespace, None))
    client = KeepAliveApi(cluster)
    with PodTracker(cluster, namespace) as pods:
        probe = Probe(cluster)
        pods.reset_clock()
        path = f"/api/v1/namespaces/{namespace}/pods"
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda body: client.create(path, body), bodies))
        created = time.monotonic() - pods.t0
        if not pods.wait(lambda p: p.all_ready(len(bodies)), timeout):
            raise TimeoutError(f"floor pods not all Ready in {namespace}")
        return {"api_calls_done": created,
                "ds_pods_created": pods.milestone("added", "vineyardd"),
                "ds_pods_bound": pods.milestone("bound", "vineyardd"),
                "etcd_ready": pods.milestone("ready", "etcd"),
                "all_ready": pods.milestone("ready"),
                "profile": {**probe.stop(), "watch_restarts": pods.watch_restarts}}


def medians(runs: list[dict[str, Any]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in MILESTONES
            if all(r.get(k) is not None for r in runs)}


def failure_evidence(cluster: Cluster, namespace: str) -> dict[str, Any]:
    """Why a run did not finish, from the API (server timestamps, 1 s resolution): when the
    pods were created, bound and had their containers Ready (seconds after the first workload
    object; min/median/max), how many are not Ready, and the events the node lifecycle
    controller raised (NodeNotReady) meanwhile."""
    from datetime import datetime

    def ts(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    api = cluster.api
    pods = api.get(f"/api/v1/namespaces/{namespace}/pods", timeout=120)["items"]
    workloads = (api.get(f"/apis/apps/v1/namespaces/{namespace}/daemonsets")["items"]
                 + api.get(f"/apis/apps/v1/namespaces/{namespace}/statefulsets")["items"])
    if not workloads:
        return {"pods": len(pods)}
    t0 = min(ts(w["metadata"]["creationTimestamp"]) for w in workloads)

    def spread(times: list[datetime]) -> list[float] | None:
        times = sorted(times)
        return ([round((t - t0).total_seconds()) for t in (times[0], times[len(times) // 2],
                                                              times[-1])] if times else None)

    def cond(pod: dict, kind: str) -> dict:
        return next((c for c in pod["status"].get("conditions") or [] if c["type"] == kind), {})

    events = api.get("/api/v1/events?fieldSelector=reason%3DNodeNotReady", timeout=120)["items"]
    recent = [e for e in events if ts(e.get("lastTimestamp") or e["metadata"][
        "creationTimestamp"]) >= t0]
    return {"pods": len(pods),
            "created_s": spread([ts(p["metadata"]["creationTimestamp"]) for p in pods]),
            "bound_s": spread([ts(cond(p, "PodScheduled")["lastTransitionTime"]) for p in pods
                               if cond(p, "PodScheduled").get("status") == "True"]),
            "containers_ready_s": spread([ts(cond(p, "ContainersReady")["lastTransitionTime"])
                                          for p in pods
                                          if cond(p, "ContainersReady").get("status") == "True"]),
            "not_ready": sum(1 for p in pods if cond(p, "Ready").get("status") != "True"),
            "node_not_ready_events": {
                "Node": sum(1 for e in recent if e["involvedObject"]["kind"] == "Node"),
                "Pod": sum(1 for e in recent if e["involvedObject"]["kind"] == "Pod")},
            "daemonset_status": workloads[0].get("status")}


def measure(cluster: Cluster, nodes: int, runs: int, tag: str, *,
            timeout: float = 900) -> dict[str, Any]:
    """`runs` interleaved rounds (install, floor) on `nodes` fake nodes. A run that does not
    finish within `timeout` ends the size: its result is the failure and the evidence."""
    setup = set_nodes(cluster, nodes)
    installs, floors = [], []
    for i in range(runs):
        for kind, fn, sink in (("install", install_run, installs), ("floor", floor_run, floors)):
            namespace = f"bench-{tag}-{nodes}-{kind}-{i}"
            log(f"{nodes} nodes: {kind} {i + 1}/{runs}")
            try:
                sink.append(fn(cluster, nodes, namespace, timeout=timeout))
            except Exception as error:
                log(f"  {kind} did not finish: {str(error).splitlines()[0][:200]}")
                evidence = failure_evidence(cluster, namespace)
                wipe_namespace(cluster, namespace, release=RELEASE if kind == "install" else None)
                return {"nodes": nodes, "failed": f"{kind}: {str(error)[:500]}",
                        "timeout_s": timeout, "evidence": evidence}
            log(f"  all Ready {sink[-1]['all_ready']:.2f}s; cleaning up")
            wipe_namespace(cluster, namespace, release=RELEASE if kind == "install" else None)
    mi, mf = medians(installs), medians(floors)
    early = sum(1 for r in installs if r["install_returned"] < r["all_ready"])
    return {"nodes": nodes, "node_setup_s": round(setup, 1), "install": installs,
            "helm_returned_before_all_ready": early,
            "floor": floors, "median_install": mi, "median_floor": mf,
            "ratio_all_ready": mi["all_ready"] / mf["all_ready"],
            "ratio_install_returned": mi["install_returned"] / mf["all_ready"]}


def run_family(family: str, node_counts: list[int], runs: int, *,
               timeout: float = 900) -> dict[str, Any]:
    started = load()
    results = []
    with bench_cluster(min(node_counts)) as cluster:
        for nodes in node_counts:
            results.append(measure(cluster, nodes, runs, family, timeout=timeout))
            r = results[-1]
            if "failed" in r:
                print(f"{nodes} nodes: did not finish ({r['failed'][:120]}); evidence: "
                      f"{r['evidence']}", flush=True)
                continue
            print(f"{nodes} nodes: install->all Ready {r['median_install']['all_ready']:.2f}s, "
                  f"returned {r['median_install']['install_returned']:.2f}s; floor "
                  f"{r['median_floor']['all_ready']:.2f}s; ratio {r['ratio_all_ready']:.2f}",
                  flush=True)
    data = {"sizes": results}
    record(family, data, started_load=started)
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[3, 100])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    run_family("ready", args.nodes, args.runs)


if __name__ == "__main__":
    main()
