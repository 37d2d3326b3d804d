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
        ["kubectl", "-n", namespace, "get", "pods", "-o", "wide"],
        ["kubectl", "-n", namespace, "get", "daemonsets"],
        ["kubectl", "-n", namespace, "get", "services"],
    ):
        print("\n$ " + " ".join(argv), flush=True)
        subprocess.run(argv, env=cluster.env, check=True)
    print(f"""
The pods above run on {len(cluster.node_names())} simulated nodes (kwok): the API server, scheduler,
controllers, RBAC and admission are real, but no container is started, since this cluster has no
kubelet yet. To look around: export KUBECONFIG={cluster.kubeconfig}
To stop the cluster: make cluster-down  (python -m localcluster down)""")
