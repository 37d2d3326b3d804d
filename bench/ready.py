"""Time to ready: from the install call to every pod Ready, on N fake nodes, against the floor.

    python bench/ready.py [--nodes 3 100] [--runs 3]

Each round, interleaved, each into a fresh namespace:
- install: vineyard_helm.install(wait=True) of the chart;
- floor (the fair one): a bare DaemonSet (one pause container, no init containers, no probes)
  and a bare one-replica StatefulSet with a claim (as the chart's etcd has by default), created
  directly. Their pods come from the same DaemonSet
  and StatefulSet controllers as the chart's, held to the same client rate limits, so the ratio
  is what the chart adds;
- direct pods (a lower reference): the chart's own pod templates created directly through the
  API, one vineyardd pod pinned to each node the way the DaemonSet controller pins them and one
  etcd pod, 8 requests at a time. No controller is involved, so no DaemonSet can reach it.
Every size starts only when all its nodes are Ready and untainted and have stayed so for a
lease renewal interval (common.set_nodes). Watches on pods, DaemonSets and
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
    control_plane_settings,
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
        return {"api_calls_done": max(objs.seen.values()), **pod_milestones(pods),
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
    sts = objs["StatefulSet"]["spec"]
    etcd = copy.deepcopy(sts["template"])
    # The StatefulSet controller would add a claim per volumeClaimTemplate; kwok mounts nothing,
    # so an emptyDir of the same name stands in.
    claims = sts.get("volumeClaimTemplates", [])
    etcd["spec"].setdefault("volumes", []).extend(
        {"name": t["metadata"]["name"], "emptyDir": {}} for t in claims)
    return objs["DaemonSet"]["spec"]["template"], etcd, objs["ServiceAccount"]


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


PAUSE = "registry.k8s.io/pause:3.10"  # never pulled: kwok's nodes run no containers


def bare_workloads(namespace: str) -> list[tuple[str, dict]]:
    """(collection path, object): the smallest DaemonSet and StatefulSet that do the chart's
    job shape, labelled like the chart's pods so the same watches time them."""
    def labels(component: str) -> dict[str, str]:
        return {"app.kubernetes.io/name": "bare", "app.kubernetes.io/component": component}

    def template(component: str) -> dict:
        return {"metadata": {"labels": labels(component)},
                "spec": {"containers": [{"name": component, "image": PAUSE}],
                         "automountServiceAccountToken": False}}

    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet",
          "metadata": {"name": "bare-vineyardd", "namespace": namespace},
          "spec": {"selector": {"matchLabels": labels("vineyardd")},
                   "template": template("vineyardd")}}
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet",
           "metadata": {"name": "bare-etcd", "namespace": namespace},
           "spec": {"replicas": 1, "serviceName": "bare-etcd",
                    "selector": {"matchLabels": labels("etcd")}, "template": template("etcd"),
                    # Like the chart's etcd by default: its data on a claim from the default
                    # StorageClass (provisioned when the pod is scheduled).
                    "volumeClaimTemplates": [{
                        "metadata": {"name": "data"},
                        "spec": {"accessModes": ["ReadWriteOnce"],
                                 "resources": {"requests": {"storage": "1Gi"}}}}]}}
    sts["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "data", "mountPath": "/data"}]
    return [(f"/apis/apps/v1/namespaces/{namespace}/daemonsets", ds),
            (f"/apis/apps/v1/namespaces/{namespace}/statefulsets", sts)]


def pod_milestones(pods: PodTracker) -> dict[str, float | None]:
    """The pod milestones every kind of run reports, from its watch."""
    return {"ds_pods_created": pods.milestone("added", "vineyardd"),
            "ds_pods_bound": pods.milestone("bound", "vineyardd"),
            "etcd_ready": pods.milestone("ready", "etcd"),
            "all_ready": pods.milestone("ready")}


def floor_run(cluster: Cluster, nodes: int, namespace: str, *,
              timeout: float = 900) -> dict[str, Any]:
    """The fair floor: a bare DaemonSet and StatefulSet through the same controllers."""
    create_namespace(cluster, namespace)
    client = KeepAliveApi(cluster)
    with PodTracker(cluster, namespace) as pods:
        probe = Probe(cluster)
        pods.reset_clock()
        for path, body in bare_workloads(namespace):
            client.create(path, body)
        created = time.monotonic() - pods.t0
        if not pods.wait(lambda p: p.all_ready(_expected_pods(nodes)), timeout):
            raise TimeoutError(f"bare DaemonSet's pods not all Ready in {namespace}")
        return {"api_calls_done": created, **pod_milestones(pods),
                "profile": {**probe.stop(), "watch_restarts": pods.watch_restarts}}


def direct_run(cluster: Cluster, nodes: int, namespace: str, *,
               timeout: float = 900) -> dict[str, Any]:
    """The chart's pods created directly through the API: a lower reference, below what any
    DaemonSet can reach (no controller, no controller rate limit)."""
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
        return {"api_calls_done": created, **pod_milestones(pods),
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


KINDS = ("install", "floor", "direct")


def measure(cluster: Cluster, nodes: int, runs: int, tag: str, *,
            timeout: float = 900) -> dict[str, Any]:
    """`runs` interleaved rounds (install, fair floor, direct pods) on `nodes` fake nodes. A run
    that does not finish within `timeout` ends the size: its result is the failure and the
    evidence."""
    setup = set_nodes(cluster, nodes)
    results: dict[str, list[dict[str, Any]]] = {k: [] for k in KINDS}
    fns = {"install": install_run, "floor": floor_run, "direct": direct_run}
    for i in range(runs):
        for kind in KINDS:
            sink = results[kind]
            namespace = f"bench-{tag}-{nodes}-{kind}-{i}"
            log(f"{nodes} nodes: {kind} {i + 1}/{runs}")
            try:
                sink.append(fns[kind](cluster, nodes, namespace, timeout=timeout))
            except Exception as error:
                log(f"  {kind} did not finish: {str(error).splitlines()[0][:200]}")
                evidence = failure_evidence(cluster, namespace)
                wipe_namespace(cluster, namespace, release=RELEASE if kind == "install" else None)
                return {"nodes": nodes, "failed": f"{kind}: {str(error)[:500]}",
                        "timeout_s": timeout, "evidence": evidence, "node_setup": setup}
            log(f"  all Ready {sink[-1]['all_ready']:.2f}s; cleaning up")
            wipe_namespace(cluster, namespace, release=RELEASE if kind == "install" else None)
    mi, mf, md = (medians(results[k]) for k in KINDS)
    early = sum(1 for r in results["install"] if r["install_returned"] < r["all_ready"])
    return {"nodes": nodes, "node_setup": setup, "install": results["install"],
            "helm_returned_before_all_ready": early,
            "floor": results["floor"], "direct": results["direct"],
            "median_install": mi, "median_floor": mf, "median_direct": md,
            "ratio_all_ready": mi["all_ready"] / mf["all_ready"],
            "ratio_all_ready_direct": mi["all_ready"] / md["all_ready"],
            "ratio_install_returned": mi["install_returned"] / mf["all_ready"],
            "control_plane": control_plane_settings()}


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
                  f"returned {r['median_install']['install_returned']:.2f}s; bare DaemonSet "
                  f"{r['median_floor']['all_ready']:.2f}s (ratio {r['ratio_all_ready']:.2f}); "
                  f"direct pods {r['median_direct']['all_ready']:.2f}s (ratio "
                  f"{r['ratio_all_ready_direct']:.2f})", flush=True)
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
