"""`python -m localcluster demo` (`make demo`): the local cluster, the chart repository on
127.0.0.1, `helm install` of the chart from it, and what got deployed. Leaves it all running
(`make cluster-down` stops it); a second run upgrades the release in place.

Where a real node can run (root, containerd, `make tools`), the cluster gets one real kubelet
node and no fake ones: the pods are real vineyardd and etcd containers, Ready by their real
probes, from the chart's default images, which the node pulls from its loopback mirror of the
upstream registries (built locally: images.py). Elsewhere, kwok's fake nodes stand in."""
from __future__ import annotations

import subprocess

from .cluster import Cluster


def run_demo(cluster: Cluster, *, nodes: int | None = None, real_nodes: int | None = None,
             namespace: str = "vineyard") -> None:
    from .realnode import NODE_NAME, unavailable_reason
    if real_nodes is None:
        reason = unavailable_reason(cluster.bin_dir)
        real_nodes = 0 if reason else 1
        if reason:
            print(f"no real node here ({reason}): using simulated nodes")
    if nodes is None:
        nodes = 0 if real_nodes else 3
    seconds = cluster.up(nodes=nodes, real_nodes=real_nodes, timeout=300 if real_nodes else 120)
    real = f" + real node {NODE_NAME}" if real_nodes else ""
    print(f"local cluster ready in {seconds:.1f}s: {len(cluster.node_names())} kwok nodes{real}, "
          f"KUBECONFIG={cluster.kubeconfig}")
    url = cluster.serve_repo()
    print(f"chart repository served at {url}")
    installed = subprocess.run(["helm", "status", "vineyard", "--namespace", namespace],
                               env=cluster.env, capture_output=True).returncode == 0
    # The seed's command exactly (a second demo upgrades the release in place).
    install = (["helm", "upgrade", "vineyard", "vineyard/vineyard", "--namespace", namespace]
               if installed else
               ["helm", "install", "vineyard", "vineyard/vineyard", "--namespace", namespace,
                "--create-namespace"]) + ["--wait", "--timeout", "5m"]
    for argv in (
        ["helm", "repo", "add", "vineyard", url, "--force-update"],
        install,
        ["kubectl", "-n", namespace, "get", "pods", "-o", "wide"],
        ["kubectl", "-n", namespace, "get", "daemonsets"],
        ["kubectl", "-n", namespace, "get", "services"],
    ):
        print("\n$ " + " ".join(argv), flush=True)
        subprocess.run(argv, env=cluster.env, check=True)
    if real_nodes:
        print(f"""
The pods above are real containers on {NODE_NAME} (kubelet + containerd + runc), Ready by
their real probes, from the chart's default images: the node pulls every registry from a mirror
on 127.0.0.1 holding images built here (`python -m localcluster images`). Try:
  helm test vineyard -n {namespace}
  kubectl -n {namespace} logs daemonset/vineyard
To look around: export KUBECONFIG={cluster.kubeconfig}
To stop the cluster (containers, mounts, bridge, iptables rules all removed): make cluster-down""")
        return
    print(f"""
The pods above run on {len(cluster.node_names())} simulated nodes (kwok): the API server, scheduler,
controllers, RBAC and admission are real, but no container is started, since this cluster has no
kubelet. To look around: export KUBECONFIG={cluster.kubeconfig}
To stop the cluster: make cluster-down  (python -m localcluster down)""")
