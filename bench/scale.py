"""Scale limits: time to ready at the largest node counts, and where the time goes.

    python bench/scale.py [--nodes 200] [--runs 1] [--timeout 600]
    (the committed figures: --nodes 1000 --runs 3 --timeout 400)

The same interleaved runs as bench/ready.py (vineyard_helm.install(wait=True); the fair floor, a
bare DaemonSet and StatefulSet through the same controllers; the chart's pods created directly
through the API as a lower reference), at bigger sizes, each started once all nodes are Ready
and untainted. Each install is cut into phases from the
watches (helm until its workload objects exist; controller creating the DaemonSet's pods;
scheduler binding them; kwok marking them Ready; helm noticing), and each phase is set against
what the components did meanwhile: their CPU seconds, the apiserver requests, and the seconds
the controller manager and scheduler spent waiting in their own client-side rate limiters. The
largest phase is named the bottleneck, with that evidence.
"""
from __future__ import annotations

import argparse
from typing import Any

from common import load, record
from ready import run_family


def phases(run: dict[str, Any]) -> dict[str, float]:
    """Consecutive phases of one install run (seconds), from its milestones."""
    marks = [("helm: render, validate, create objects", run["api_calls_done"]),
             ("controller: create DaemonSet pods", run["ds_pods_created"]),
             ("scheduler: bind the last pod", run["ds_pods_bound"]),
             ("kwok: last pod Ready", run["all_ready"]),
             ("helm --wait: notice and return", run["install_returned"])]
    out, previous = {}, 0.0
    for name, t in marks:
        out[name] = max(0.0, t - previous)
        previous = max(previous, t)
    return out


def explain(size: dict[str, Any]) -> dict[str, Any]:
    run = max(size["install"], key=lambda r: r["all_ready"])
    split = phases(run)
    slowest = max(split, key=split.get)
    prof = run["profile"]
    pods = size["nodes"] + 1
    created = run["ds_pods_created"] - run["api_calls_done"]
    return {"nodes": size["nodes"], "phases_s": split, "slowest_phase": slowest,
            "component_cpu_s": prof["component_cpu_s"], "throttled_s": prof["throttled_s"],
            "apiserver_requests": prof["apiserver_requests"], "top_requests": prof["top_requests"],
            "client_cpu_s": prof.get("client_cpu_s"),
            "controller_pods_per_s": pods / created if created > 0 else None,
            "floor_all_ready_s": size["median_floor"]["all_ready"],
            "direct_all_ready_s": size["median_direct"]["all_ready"],
            "install_all_ready_s": run["all_ready"], "at_return": run.get("at_return")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[200])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=600,
                        help="seconds before a size's install (helm --wait) or floor gives up")
    args = parser.parse_args()
    started = load()
    data = run_family("scale", args.nodes, args.runs, timeout=args.timeout)
    data["largest_nodes"] = max(args.nodes)
    done = [size for size in data["sizes"] if "failed" not in size]
    data["largest_nodes_finished"] = max((s["nodes"] for s in done), default=None)
    data["where_time_goes"] = [explain(size) for size in done]
    for e in data["where_time_goes"]:
        print(f"{e['nodes']} nodes: slowest phase: {e['slowest_phase']} "
              f"({e['phases_s'][e['slowest_phase']]:.1f}s); throttled {e['throttled_s']}; "
              f"component CPU {e['component_cpu_s']}")
    record("scale", data, started_load=started)


if __name__ == "__main__":
    main()
