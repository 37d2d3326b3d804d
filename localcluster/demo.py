"""`python -m localcluster demo` (`make demo`): the local cluster, the chart repository on
127.0.0.1, `helm install` of the chart from it, and what got deployed. Leaves it all running
(`make cluster-down` stops it); a second run upgrades the release in place."""
from __future__ import annotations

import subprocess

from .cluster import Cluster


def run_demo(cluster: Cluster, *, nodes: int = 3, namespace: str = "vineyard") -> None:
    seconds = cluster.up(nodes=nodes)
    print(f"local cluster ready in {seconds:.1f}s: {len(cluster.node_names())} kwok nodes, "
          f"KUBECONFIG={cluster.kubeconfig}")
    url = cluster.serve_repo()
    print(f"chart repository served at {url}")
    for argv in (
        ["helm", "repo", "add", "vineyard", url, "--force-update"],
        ["helm", "upgrade", "--install", "vineyard", "vineyard/vineyard",
         "--namespace", namespace, "--create-namespace", "--wait", "--timeout", "5m"],
        ["kubectl", "get", "pods,daemonsets,statefulsets,services", "-n", namespace, "-o", "wide"],
    ):
        print("$ " + " ".join(argv), flush=True)
        subprocess.run(argv, env=cluster.env, check=True)
    print(f"\nexport KUBECONFIG={cluster.kubeconfig}   # to use kubectl and helm on it; "
          "`make cluster-down` stops it")
