"""Ten releases installed at once, from ten threads, through the Python API: all succeed, and
no two share an object name, a host socket directory or a host port."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import yaml

import vineyard_helm
from localcluster import Cluster

RELEASES = 10


def _install(cluster: Cluster, namespace: str, release: str) -> vineyard_helm.Release:
    return vineyard_helm.install(
        {"vineyard": {"size": "64Mi"}}, release=release, namespace=namespace,
        create_namespace=False, wait=True, timeout="180s", kubeconfig=cluster.kubeconfig,
        helm=cluster.bin_dir / "helm")


def _manifest(cluster: Cluster, namespace: str, release: str) -> list[dict[str, Any]]:
    out = cluster.kubectl("get", "daemonset,statefulset,service,serviceaccount,configmap,secret,"
                          "networkpolicy,poddisruptionbudget,pod", "-n", namespace,
                          "-l", f"app.kubernetes.io/instance={release}", "-o", "yaml").stdout
    return yaml.safe_load(out)["items"]


def _host_paths(obj: dict[str, Any]) -> list[str]:
    spec = obj.get("spec", {}).get("template", {}).get("spec", {})
    return [v["hostPath"]["path"] for v in spec.get("volumes", []) if "hostPath" in v]


def _host_ports(obj: dict[str, Any]) -> list[int]:
    spec = obj.get("spec", {}).get("template", {}).get("spec", {})
    return [p["hostPort"] for c in spec.get("containers", []) for p in c.get("ports", [])
            if p.get("hostPort")]


def test_ten_parallel_releases_all_succeed_and_share_nothing(cluster: Cluster, namespace_factory,
                                                            record) -> None:
    targets = [(namespace_factory("conc"), f"vineyard-{i}") for i in range(RELEASES)]
    with ThreadPoolExecutor(max_workers=RELEASES) as pool:
        futures = [pool.submit(_install, cluster, ns, rel) for ns, rel in targets]
        outcomes = []
        for future in futures:
            try:
                outcomes.append(future.result())
            except vineyard_helm.VineyardHelmError as error:
                outcomes.append(error)
    failures = [str(o) for o in outcomes if isinstance(o, Exception)]
    assert failures == []
    assert all(o.status == "deployed" for o in outcomes if not isinstance(o, Exception))

    names: dict[tuple[str, str, str], str] = {}
    host_paths: dict[str, str] = {}
    host_ports: dict[int, str] = {}
    for ns, rel in targets:
        objects = _manifest(cluster, ns, rel)
        assert any(o["kind"] == "DaemonSet" for o in objects), f"{rel} in {ns} has no DaemonSet"
        for obj in objects:
            key = (ns, obj["kind"], obj["metadata"]["name"])
            assert key not in names, f"{key} made by two releases"
            names[key] = rel
            for path in _host_paths(obj):
                owner = host_paths.setdefault(path, f"{ns}/{rel}")
                assert owner == f"{ns}/{rel}", f"host path {path} shared by {owner} and {ns}/{rel}"
            for port in _host_ports(obj):
                owner = host_ports.setdefault(port, f"{ns}/{rel}")
                assert owner == f"{ns}/{rel}", f"host port {port} shared"
    assert len(host_paths) == RELEASES, host_paths  # one socket directory per release
    record("Parallel installs", area="Concurrency",
           figure=f"{RELEASES} releases, {RELEASES} namespaces, {RELEASES} threads",
           result=(f"all {RELEASES} deployed; {len(names)} objects, {len(host_paths)} distinct "
                   f"socket host paths, {len(host_ports)} host ports, none shared"))
