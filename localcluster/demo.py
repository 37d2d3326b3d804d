"""`python -m localcluster demo` (`make demo`): the local cluster, the chart repository on
127.0.0.1, `helm install` of the chart from it, and what got deployed. Leaves it all running
(`make cluster-down` stops it); a second run finds the release installed and only shows it.
helm's repository list lives in the cluster's state dir, so the user's own helm setup is untouched."""
from __future__ import annotations

import subprocess

from .cluster import Cluster


def run_demo(cluster: Cluster, *, nodes: int = 3, namespace: str = "vineyard") -> None:
    seconds = cluster.up(nodes=nodes)
    print(f"local cluster ready in {seconds:.1f}s: {len(cluster.node_names())} kwok nodes, "
          f"KUBECONFIG={cluster.kubeconfig}")
    url = cluster.serve_repo()
    print(f"chart repository served at {url}")
    env = {**cluster.env,
           "HELM_REPOSITORY_CONFIG": str(cluster.state_dir / "helm" / "repositories.yaml"),
           "HELM_REPOSITORY_CACHE": str(cluster.state_dir / "helm" / "cache")}
    installed = subprocess.run(["helm", "status", "vineyard", "--namespace", namespace],
                               env=env, capture_output=True).returncode == 0
    install = [["helm", "install", "vineyard", "vineyard/vineyard", "--namespace", namespace,
                "--create-namespace", "--wait", "--timeout", "5m"]] if not installed else []
    for argv in (
        ["helm", "repo", "add", "vineyard", url, "--force-update"],
        *install,
        ["kubectl", "-n", namespace, "get", "pods", "-o", "wide"],
        ["kubectl", "-n", namespace, "get", "daemonsets"],
        ["kubectl", "-n", namespace, "get", "services"],
    ):
        print("\n$ " + " ".join(argv), flush=True)
        subprocess.run(argv, env=env, check=True)
    print(f"""
The pods above run on {len(cluster.node_names())} simulated nodes (kwok): the API server, scheduler,
controllers, RBAC and admission are real, but no container is started, since this cluster has no
kubelet yet. To look around: export KUBECONFIG={cluster.kubeconfig}
To stop the cluster: make cluster-down  (python -m localcluster down)""")
