#!/usr/bin/env python3
"""Measures the local cluster: start time over several up/down cycles (median), time for N fake
nodes to become Ready, time from `helm install` of charts/vineyard to all its pods Ready (--wait)
on N nodes, and each component's RSS. Uses its own state dir, stops what it starts.

    python3 hack/measure-cluster.py [--cycles 5] [--nodes 3 100]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from localcluster import Cluster
from localcluster.cluster import COMPONENTS


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def helm_install_seconds(cluster: Cluster, nodes: int) -> float:
    """`helm install --wait` of charts/vineyard (DaemonSet on every node + etcd), then uninstall."""
    chart = Path(__file__).resolve().parent.parent / "charts" / "vineyard"
    ns = f"measure-{nodes}"
    t = time.monotonic()
    subprocess.run(["helm", "install", "vineyard", str(chart), "-n", ns, "--create-namespace",
                    "--wait", "--timeout", "5m"], env=cluster.env, check=True, capture_output=True)
    seconds = time.monotonic() - t
    ds = cluster.api.get(f"/apis/apps/v1/namespaces/{ns}/daemonsets/vineyard")["status"]
    assert ds["numberReady"] == ds["desiredNumberScheduled"] == nodes, ds
    subprocess.run(["helm", "uninstall", "vineyard", "-n", ns, "--wait"], env=cluster.env,
                   check=True, capture_output=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--nodes", type=int, nargs="+", default=[3, 100])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="localcluster-measure-") as state:
        cluster = Cluster(state)
        try:
            starts = []
            for i in range(args.cycles):
                starts.append(cluster.up(nodes=0))
                phases = ", ".join(f"{p} {t:.1f}s" for p, t in cluster.timings.items())
                print(f"cycle {i + 1}: {starts[-1]:.2f}s ({phases})", flush=True)
                if i < args.cycles - 1:
                    cluster.down()
            print(f"start time: median {statistics.median(starts):.2f}s, "
                  f"min {min(starts):.2f}s, max {max(starts):.2f}s (first includes certs)")
            for count in args.nodes:
                cluster.remove_nodes(cluster.node_names())
                t = time.monotonic()
                cluster.add_nodes(count, timeout=300)
                print(f"{count} nodes created and Ready in {time.monotonic() - t:.2f}s", flush=True)
                print(f"helm install on {count} nodes, all pods Ready in "
                      f"{helm_install_seconds(cluster, count):.2f}s", flush=True)
            time.sleep(5)  # let kwok settle after the last batch
            for name in COMPONENTS:
                pid = cluster.procs.pid(name)
                print(f"RSS {name}: {rss_mib(pid):.0f} MiB" if pid else f"{name}: not running")
        finally:
            cluster.down()


if __name__ == "__main__":
    main()
