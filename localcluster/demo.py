"""`python -m localcluster demo` (`make demo`): the local cluster, the chart repository on
127.0.0.1, `helm install` of the chart from it, and what got deployed. Leaves it all running
(`make cluster-down` stops it); a second run upgrades the release in place.

Where a real node can run (root, containerd, `make tools`), the cluster gets one real kubelet
node and no fake ones, and the chart runs the locally built images: the pods are real vineyardd
and etcd containers, Ready by their real probes. Elsewhere, kwok's fake nodes stand in."""
from __future__ import annotations

import subprocess

from . import images
from .cluster import Cluster


def local_image_values() -> list[str]:
    """`--set` values pointing the chart at the locally built images (never pulled)."""
    vy, vy_tag = images.VINEYARDD.rsplit(":", 1)
    etcd, etcd_tag = images.ETCD.rsplit(":", 1)
    return [f"image.repository={vy}", f"image.tag={vy_tag}", "image.pullPolicy=Never",
            f"etcd.image.repository={etcd}", f"etcd.image.tag={etcd_tag}",
            "etcd.image.pullPolicy=Never"]


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
    install = ["helm", "upgrade", "--install", "vineyard", "vineyard/vineyard",
               "--namespace", namespace, "--create-namespace", "--wait", "--timeout", "5m"]
    if real_nodes:
        for value in local_image_values():
            install += ["--set", value]
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
The pods above are real containers on {NODE_NAME} (kubelet + containerd + runc, images built
locally by `python -m localcluster images`), Ready by their real probes. Try:
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
