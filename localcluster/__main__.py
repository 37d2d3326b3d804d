"""python -m localcluster up|down|status|kubeconfig|add-node|remove-node|serve-repo|demo|images"""
from __future__ import annotations

import argparse
import subprocess
import sys

from . import chartrepo
from .cluster import DEFAULT_CHARTS, DEFAULT_STATE_DIR, Cluster, ClusterError
from .demo import run_demo
from .kubeapi import ApiError
from .procs import ComponentError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcluster", description=__doc__)
    parser.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR),
                        help="certs, etcd data, logs, pid files (default: %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the cluster, or reuse a healthy running one")
    up.add_argument("--nodes", type=int, default=3, help="fake nodes to have Ready")
    up.add_argument("--real-nodes", type=int, default=0, choices=(0, 1),
                    help="real kubelet nodes (containerd, CNI bridge, kube-proxy, CoreDNS)")
    up.add_argument("--timeout", type=float, default=120.0)
    sub.add_parser("down", help="stop every process this state dir started")
    sub.add_parser("status", help="components' pids and health, nodes")
    sub.add_parser("kubeconfig", help="print the admin kubeconfig's path")
    add = sub.add_parser("add-node", help="add fake nodes and wait until they are Ready")
    add.add_argument("--count", type=int, default=1)
    remove = sub.add_parser("remove-node", help="delete fake nodes")
    remove.add_argument("names", nargs="+")
    repo = sub.add_parser("serve-repo", help="package charts and serve them as a Helm repo")
    repo.add_argument("--chart", action="append", help=f"chart dir (default: {DEFAULT_CHARTS[0]})")
    demo = sub.add_parser("demo", help="up + serve-repo + helm install the chart + kubectl get")
    demo.add_argument("--nodes", type=int, default=None,
                      help="fake nodes (default: 0 beside a real node, 3 without one)")
    demo.add_argument("--real-nodes", type=int, default=None, choices=(0, 1),
                      help="default: 1 when a real node can run here")
    images = sub.add_parser("images", help="build the real node's images (cached in .cache/images)")
    images.add_argument("--if-possible", action="store_true",
                        help="say why and succeed when no real node can run here (make setup)")
    args = parser.parse_args(argv)

    cluster = Cluster(args.state_dir)
    try:
        return COMMANDS[args.command](cluster, args)
    except (ClusterError, ComponentError, ApiError, RuntimeError,
            subprocess.CalledProcessError) as e:
        print(f"localcluster {args.command}: {e}", file=sys.stderr)
        return 1


def _up(cluster: Cluster, args: argparse.Namespace) -> int:
    reused = cluster.is_healthy()
    seconds = cluster.up(nodes=args.nodes, real_nodes=args.real_nodes, timeout=args.timeout)
    verb = "reused" if reused else "started"
    real = f" and the real node {_real_node_name()}" if args.real_nodes else ""
    fake = len(cluster.node_names())
    print(f"cluster {verb} in {seconds:.1f}s with {fake} Ready fake nodes{real}")
    if cluster.timings:
        print("  " + ", ".join(f"{phase} {t:.1f}s" for phase, t in cluster.timings.items()))
    print(f"export KUBECONFIG={cluster.kubeconfig}")
    return 0


def _down(cluster: Cluster, args: argparse.Namespace) -> int:
    cluster.down()
    print(f"stopped the processes of {cluster.state_dir}")
    return 0


def _status(cluster: Cluster, args: argparse.Namespace) -> int:
    status = cluster.status()
    for name, s in status.items():
        state = "healthy" if s["healthy"] else ("running, unhealthy" if s["pid"] else "stopped")
        print(f"{name:24} {state:20} pid={s['pid'] or '-'}")
    healthy = all(s["healthy"] for s in status.values())
    if healthy:
        print(f"nodes: {' '.join(cluster.node_names()) or '(none)'}")
        print(f"kubeconfig: {cluster.kubeconfig}")
    if url := chartrepo.served_url(cluster.procs):
        print(f"chart repository: {url}")
    return 0 if healthy else 3


def _kubeconfig(cluster: Cluster, args: argparse.Namespace) -> int:
    print(cluster.kubeconfig)
    return 0


def _add_node(cluster: Cluster, args: argparse.Namespace) -> int:
    print(" ".join(cluster.add_nodes(args.count)))
    return 0


def _remove_node(cluster: Cluster, args: argparse.Namespace) -> int:
    cluster.remove_nodes(args.names)
    return 0


def _serve_repo(cluster: Cluster, args: argparse.Namespace) -> int:
    url = cluster.serve_repo(tuple(args.chart) if args.chart else DEFAULT_CHARTS)
    print(url)
    return 0


def _demo(cluster: Cluster, args: argparse.Namespace) -> int:
    run_demo(cluster, nodes=args.nodes, real_nodes=args.real_nodes)
    return 0


def _images(cluster: Cluster, args: argparse.Namespace) -> int:
    from .images import main as images_main
    from .realnode import unavailable_reason
    reason = unavailable_reason(cluster.bin_dir)
    if reason and args.if_possible:
        print(f"images: not built, no real node can run here ({reason})")
        return 0
    return images_main([])


def _real_node_name() -> str:
    from .realnode import NODE_NAME
    return NODE_NAME


COMMANDS = {"up": _up, "down": _down, "status": _status, "kubeconfig": _kubeconfig,
            "add-node": _add_node, "remove-node": _remove_node, "serve-repo": _serve_repo,
            "demo": _demo, "images": _images}

if __name__ == "__main__":
    sys.exit(main())
