"""Releases side by side: `vineyard` in two namespaces, and a second release (`analytics`) in
one of them. They share no object name within a namespace, no cluster-scoped object, no
hostPath socket directory and no etcd; each Service selects only its own release's pods."""
from __future__ import annotations

import pytest

from localcluster import Cluster
from tests.e2e.e2e_kube import flag, in_parallel, install_args, vineyardd_args
from tests.support.helm import run_helm
from tests.support.kube import (
    INSTANCE,
    daemonset,
    inventory,
    kube,
    pods,
    release_objects,
    selector_of,
    wait_daemonset_settled,
)

FULLNAME = {"vineyard": "vineyard", "analytics": "analytics-vineyard"}


@pytest.fixture(scope="module")
def releases(cluster: Cluster, e2e_env: dict[str, str], make_namespace) -> list[tuple[str, str]]:
    """(namespace, release) of the three releases, installed in parallel."""
    first, second = make_namespace("side-a"), make_namespace("side-b")
    wanted = [(first, "vineyard"), (second, "vineyard"), (second, "analytics")]
    in_parallel({f"{ns}/{rel}": (lambda ns=ns, rel=rel: run_helm(e2e_env, *install_args(rel, ns)))
                 for ns, rel in wanted})
    for ns, rel in wanted:
        wait_daemonset_settled(cluster, ns, FULLNAME[rel])
    return wanted


def test_names_in_a_shared_namespace_do_not_collide(cluster: Cluster, releases: list) -> None:
    (_, _), (ns, first), (_, second) = releases
    mine, theirs = release_objects(cluster, ns, first), release_objects(cluster, ns, second)
    assert mine
    assert theirs
    assert not {name for _, name in mine} & {name for _, name in theirs}


def test_no_cluster_scoped_object_belongs_to_any_release(cluster: Cluster, releases: list) -> None:
    for _, release in releases:
        assert not inventory(cluster, None, f"{INSTANCE}={release}")


def test_each_release_has_its_own_socket_directory(cluster: Cluster, releases: list) -> None:
    directories = []
    for ns, release in releases:
        spec = daemonset(cluster, ns, FULLNAME[release])["spec"]["template"]["spec"]
        [path] = [v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v]
        assert path == f"/var/run/vineyard/{ns}/{release}"
        directories.append(path)
    assert len(set(directories)) == len(directories)


def test_each_release_talks_to_its_own_etcd(cluster: Cluster, releases: list) -> None:
    endpoints = []
    for ns, release in releases:
        args = vineyardd_args(daemonset(cluster, ns, FULLNAME[release])["spec"]["template"])
        endpoint = flag(args, "etcd_endpoint")
        assert endpoint == f"http://etcd-for-{FULLNAME[release]}.{ns}.svc.cluster.local:2379"
        endpoints.append(endpoint)
    assert len(set(endpoints)) == len(endpoints)


def test_services_select_only_their_own_releases_pods(cluster: Cluster, releases: list) -> None:
    for ns, release in releases:
        for service in (f"{FULLNAME[release]}-rpc", f"etcd-for-{FULLNAME[release]}"):
            svc = kube(cluster).get(f"/api/v1/namespaces/{ns}/services/{service}")
            selected = pods(cluster, ns, selector_of(svc["spec"]["selector"]))
            assert selected
            assert {p["metadata"]["labels"][INSTANCE] for p in selected} == {release}


def test_helm_lists_each_release_in_its_namespace(e2e_env: dict[str, str], releases: list) -> None:
    for ns in {ns for ns, _ in releases}:
        names = run_helm(e2e_env, "list", "-n", ns, "-q").stdout.split()
        assert sorted(names) == sorted(rel for n, rel in releases if n == ns)
