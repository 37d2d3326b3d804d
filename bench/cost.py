"""Control-plane cost of a release: API objects and bytes stored in etcd (per node), the
steady-state API request rate it causes, and the rendered manifest size.

    python bench/cost.py [--nodes 3 100] [--runs 2] [--window 10]

Per node count and round: a request-rate window with no release (apiserver_request_total before
and after), then install (wait=True), a settle pause, an etcd snapshot (etcdctl get --prefix
/registry against the bench cluster's own etcd, plain HTTP on loopback) compared with the one
taken before the install, a window with the release, and uninstall. Objects and bytes are the
keys that appeared in the release's namespace (values are what the apiserver stores:
protobuf). Bytes per node come from the slope between the two node counts. kwok runs no
probes and no kubelet, so a fake node's pods cause no status traffic once Ready: the rate
measured here is what the release's own objects cost (controllers, leases not included).
"""
from __future__ import annotations

import argparse
import base64
import json
import statistics
import subprocess
import time
from typing import Any

from common import (
    CHART,
    HELM,
    RELEASE,
    VALUES,
    apiserver_requests,
    bench_cluster,
    diff_counts,
    load,
    log,
    record,
    set_nodes,
    wipe_namespace,
)

from localcluster import Cluster


def etcd_sizes(cluster: Cluster) -> dict[str, int]:
    """Every key under /registry and the size of its stored value (bytes)."""
    out = subprocess.run(
        ["etcdctl", f"--endpoints=http://127.0.0.1:{cluster.ports.etcd}", "get", "--prefix",
         "/registry", "-w", "json"], capture_output=True, check=True,
        env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"}).stdout
    kvs = json.loads(out).get("kvs", [])
    return {base64.b64decode(kv["key"]).decode(): len(base64.b64decode(kv.get("value", "")))
            for kv in kvs}


def resource_of(key: str) -> str:
    parts = key.split("/")  # /registry/<resource>[/<sub>]/<ns>/<name>
    return "services/" + parts[3] if parts[2] == "services" else parts[2]


def release_footprint(before: dict[str, int], after: dict[str, int],
                      namespace: str) -> dict[str, Any]:
    keys = [k for k in after if k not in before and (
        f"/{namespace}/" in k or k.endswith(f"/namespaces/{namespace}"))]
    by_resource: dict[str, dict[str, int]] = {}
    for k in keys:
        slot = by_resource.setdefault(resource_of(k), {"objects": 0, "bytes": 0})
        slot["objects"] += 1
        slot["bytes"] += after[k]
    non_events = [k for k in keys if resource_of(k) != "events"]
    return {"objects": len(non_events), "bytes": sum(after[k] for k in non_events),
            "events": by_resource.get("events", {"objects": 0, "bytes": 0}),
            "by_resource": dict(sorted(by_resource.items()))}


def request_window(cluster: Cluster, seconds: float) -> tuple[float, dict[str, float]]:
    """(requests per second, per verb+resource) over a window of `seconds`."""
    before = apiserver_requests(cluster)
    time.sleep(seconds)
    delta = diff_counts(before, apiserver_requests(cluster))
    per = {}
    for (verb, res, sub), n in delta.items():
        key = f"{verb} {res}{'/' + sub if sub else ''}"
        per[key] = per.get(key, 0.0) + n / seconds
    return sum(delta.values()) / seconds, dict(sorted(per.items(), key=lambda kv: -kv[1]))


def measure(cluster: Cluster, nodes: int, runs: int, window: float) -> dict[str, Any]:
    import vineyard_helm

    set_nodes(cluster, nodes)
    time.sleep(5)  # let the new nodes' first heartbeats pass
    rounds = []
    for i in range(runs):
        namespace = f"bench-cost-{nodes}-{i}"
        log(f"{nodes} nodes: round {i + 1}/{runs}: window without the release")
        rate_without, per_without = request_window(cluster, window)
        before = etcd_sizes(cluster)
        vineyard_helm.install(VALUES, release=RELEASE, namespace=namespace, chart=CHART,
                              wait=True, timeout=900, kubeconfig=str(cluster.kubeconfig),
                              helm=HELM)
        time.sleep(5)  # controllers' follow-up writes (status, endpoints) land
        footprint = release_footprint(before, etcd_sizes(cluster), namespace)
        log(f"{nodes} nodes: window with the release")
        rate_with, per_with = request_window(cluster, window)
        rounds.append({"footprint": footprint, "rate_without": rate_without,
                       "rate_with": rate_with, "rate_caused": rate_with - rate_without,
                       "top_without": dict(list(per_without.items())[:8]),
                       "top_with": dict(list(per_with.items())[:8])})
        wipe_namespace(cluster, namespace, release=RELEASE)
    return {"nodes": nodes, "rounds": rounds,
            "median_objects": statistics.median(r["footprint"]["objects"] for r in rounds),
            "median_bytes": statistics.median(r["footprint"]["bytes"] for r in rounds),
            "median_rate_caused": statistics.median(r["rate_caused"] for r in rounds),
            "median_rate_without": statistics.median(r["rate_without"] for r in rounds)}


def manifest_sizes() -> dict[str, Any]:
    import vineyard_helm

    text = subprocess.run([HELM, "template", RELEASE, str(CHART), "--namespace", "x"],
                          capture_output=True, check=True).stdout
    objs = vineyard_helm.render(VALUES, release=RELEASE, namespace="x", chart=CHART, helm=HELM)
    return {"helm_template_bytes": len(text), "objects": len(objs),
            "json_bytes_by_object": {f"{o['kind']}/{o['metadata']['name']}":
                                     len(json.dumps(o, separators=(",", ":"))) for o in objs}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[3, 100])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--window", type=float, default=10, help="seconds per rate window")
    args = parser.parse_args()
    started = load()
    sizes = []
    with bench_cluster(min(args.nodes)) as cluster:
        for nodes in sorted(args.nodes):
            sizes.append(measure(cluster, nodes, args.runs, args.window))
            s = sizes[-1]
            print(f"{nodes} nodes: {s['median_objects']:.0f} objects, "
                  f"{s['median_bytes'] / 1024:.1f} KiB in etcd; requests/s caused "
                  f"{s['median_rate_caused']:+.2f} (cluster without it: "
                  f"{s['median_rate_without']:.2f})", flush=True)
    data: dict[str, Any] = {"sizes": sizes, "manifest": manifest_sizes()}
    if len(sizes) >= 2:
        lo, hi = sizes[0], sizes[-1]
        span = hi["nodes"] - lo["nodes"]
        data["per_node"] = {"objects": (hi["median_objects"] - lo["median_objects"]) / span,
                            "bytes": (hi["median_bytes"] - lo["median_bytes"]) / span}
        data["fixed"] = {"objects": lo["median_objects"] - data["per_node"]["objects"] * lo[
            "nodes"], "bytes": lo["median_bytes"] - data["per_node"]["bytes"] * lo["nodes"]}
        print(f"per node: {data['per_node']['objects']:.2f} objects, "
              f"{data['per_node']['bytes']:.0f} bytes; fixed: {data['fixed']['objects']:.0f} "
              f"objects, {data['fixed']['bytes'] / 1024:.1f} KiB")
    record("cost", data, started_load=started)


if __name__ == "__main__":
    main()
