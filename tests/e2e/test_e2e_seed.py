"""The seed flow, as a user types it: `helm repo add` of the chart repository served on
127.0.0.1, then `helm install vineyard vineyard/vineyard -n <ns> --create-namespace --wait`.
One release for the module; the read-only tests share it, the scaling test runs last."""
from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
import yaml

from localcluster import Cluster
from tests.e2e.e2e_kube import HELM_TIMEOUT, manifest_objects
from tests.support.figures import record_timing
from tests.support.helm import isolated_helm_env, run_helm
from tests.support.kube import (
    INSTANCE,
    daemonset,
    daemonset_counts,
    delete_namespace,
    is_ready,
    items,
    kube,
    pods,
    ready_nodes,
    release_objects,
    selector_of,
    wait_daemonset_settled,
)
from tests.support.paths import CHART
from tests.support.wait import wait_for

CHART_VERSION = yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]
SEED_OBJECTS = {
    ("DaemonSet", "vineyard"),
    ("Service", "vineyard-rpc"),
    ("Service", "etcd-for-vineyard"),
    ("Service", "vineyard-etcd-headless"),
    ("StatefulSet", "vineyard-etcd"),
    ("ServiceAccount", "vineyard"),
}


class Seed:
    namespace: str
    env: dict[str, str]
    repo_url: str
    repo_list: str
    install_output: str


@pytest.fixture(scope="module")
def seed(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory):
    """`helm repo add` + `helm install --create-namespace --wait` with a helm home of its own
    (HELM_REPOSITORY_CONFIG, HELM_CACHE_HOME, ...), so nothing global changes."""

    s = Seed()
    s.env = isolated_helm_env(cluster.env, tmp_path_factory.mktemp("seed-helm-home"))
    s.repo_url = cluster.serve_repo()
    s.namespace = f"e2e-seed-{uuid.uuid4().hex[:5]}"  # made by helm's --create-namespace
    run_helm(s.env, "repo", "add", "vineyard", s.repo_url)
    s.repo_list = run_helm(s.env, "repo", "list", "-o", "yaml").stdout
    start = time.monotonic()
    s.install_output = run_helm(
        s.env, "install", "vineyard", "vineyard/vineyard", "-n", s.namespace,
        "--create-namespace", "--wait", "--timeout", HELM_TIMEOUT).stdout
    record_timing("seed: helm install --wait from the repo (3-node session cluster)",
                  time.monotonic() - start, nodes=len(ready_nodes(cluster)))
    yield s
    delete_namespace(cluster, s.namespace)


def test_the_repository_is_added_only_to_the_tests_own_helm_home(seed: Seed) -> None:
    assert yaml.safe_load(seed.repo_list) == [{"name": "vineyard", "url": seed.repo_url}]
    repositories = Path(seed.env["HELM_REPOSITORY_CONFIG"])
    assert repositories.is_file()
    assert seed.repo_url in repositories.read_text()


def test_the_release_is_deployed_from_the_repository_chart(seed: Seed) -> None:
    listed = run_helm(seed.env, "list", "-n", seed.namespace, "-o", "yaml").stdout
    [release] = yaml.safe_load(listed)
    assert (release["name"], release["status"], release["revision"]) == (
        "vineyard", "deployed", "1")
    assert release["chart"] == f"vineyard-{CHART_VERSION}"
    assert "STATUS: deployed" in seed.install_output


def test_the_seed_objects_exist_with_their_names(cluster: Cluster, seed: Seed) -> None:
    live = release_objects(cluster, seed.namespace, "vineyard")
    assert live >= SEED_OBJECTS
    # Everything helm deployed is there, labelled with the release.
    assert manifest_objects(seed.env, "vineyard", seed.namespace) <= live


def test_daemonset_desired_equals_ready_equals_ready_nodes(cluster: Cluster, seed: Seed) -> None:
    counts = wait_daemonset_settled(cluster, seed.namespace, "vineyard")
    nodes = len(ready_nodes(cluster))
    assert counts["desiredNumberScheduled"] == counts["numberReady"] == nodes >= 3
    selector = f"{INSTANCE}=vineyard,app.kubernetes.io/component=vineyardd"
    # One pod on each Ready node (read again until both lists agree: another test session may
    # share the cluster and add a node meanwhile).
    wait_for(lambda: sorted(p["spec"]["nodeName"] for p in pods(cluster, seed.namespace, selector))
             == ready_nodes(cluster), "one vineyard pod on each Ready node")


def test_etcd_pods_are_running_and_ready(cluster: Cluster, seed: Seed) -> None:
    etcd = pods(cluster, seed.namespace, f"{INSTANCE}=vineyard,app.kubernetes.io/component=etcd")
    assert [p["metadata"]["name"] for p in etcd] == ["vineyard-etcd-0"]
    assert all(p["status"]["phase"] == "Running" and is_ready(p) for p in etcd)


@pytest.mark.parametrize(("service", "ports", "component"), [
    ("vineyard-rpc", {"vineyard-rpc": (9600, "TCP")}, "vineyardd"),
    ("etcd-for-vineyard", {"client": (2379, "TCP")}, "etcd"),
    ("vineyard-etcd-headless", {"client": (2379, "TCP"), "peer": (2380, "TCP")}, "etcd"),
])
def test_services_have_their_ports_and_select_the_pods(
    cluster: Cluster, seed: Seed, service: str, ports: dict[str, tuple[int, str]], component: str
) -> None:
    """Ports by name; the selector picks exactly the component's pods of this release; the
    EndpointSlices list those pods' IPs and the named ports their containers expose."""
    ns = seed.namespace
    svc = kube(cluster).get(f"/api/v1/namespaces/{ns}/services/{service}")
    assert {p["name"]: (p["port"], p["protocol"]) for p in svc["spec"]["ports"]} == ports
    selected = pods(cluster, ns, selector_of(svc["spec"]["selector"]))
    expected = pods(cluster, ns, f"{INSTANCE}=vineyard,app.kubernetes.io/component={component}")
    assert {p["metadata"]["name"] for p in selected} == {p["metadata"]["name"] for p in expected}
    assert selected, f"{service} selects no pod"
    # Each named target port is a port the selected pods' containers declare.
    for port in svc["spec"]["ports"]:
        target = port["targetPort"]
        declared = {cp.get("name"): cp["containerPort"] for p in selected
                    for c in p["spec"]["containers"] for cp in c.get("ports", [])}
        assert target in declared or target in declared.values(), (port, declared)

    def endpoints() -> tuple[set[str], dict[str, int]] | None:
        slices = items(cluster, f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices",
                       f"kubernetes.io/service-name={service}")
        ips = {a for s in slices for e in s.get("endpoints") or [] for a in e["addresses"]
               if e.get("conditions", {}).get("ready")}
        named = {p["name"]: p["port"] for s in slices for p in s.get("ports") or []}
        wanted = {p["status"]["podIP"] for p in selected}
        return (ips, named) if ips == wanted else None

    _, named = wait_for(endpoints, f"EndpointSlices of {service} list its pods' IPs")
    assert named == {name: port for name, (port, _) in ports.items()}


def test_a_node_added_gets_a_vineyard_pod_and_loses_it_when_removed(
    cluster: Cluster, seed: Seed
) -> None:
    ns = seed.namespace
    selector = f"{INSTANCE}=vineyard,app.kubernetes.io/component=vineyardd"
    wait_daemonset_settled(cluster, ns, "vineyard")
    before = len(ready_nodes(cluster))
    [added] = cluster.add_nodes(1)
    try:
        def pod_on_added() -> dict | None:
            on = [p for p in pods(cluster, ns, selector) if p["spec"].get("nodeName") == added]
            return on[0] if len(on) == 1 and is_ready(on[0]) else None

        pod = wait_for(pod_on_added, f"a Ready vineyard pod on {added}")
        assert pod["status"]["phase"] == "Running"
        counts = wait_daemonset_settled(cluster, ns, "vineyard")
        assert counts["desiredNumberScheduled"] == counts["numberReady"] == before + 1
    finally:
        cluster.remove_nodes([added])
    wait_for(lambda: not [p for p in pods(cluster, ns, selector)
                          if p["spec"].get("nodeName") == added],
             f"no vineyard pod left on the removed node {added}")
    counts = wait_daemonset_settled(cluster, ns, "vineyard")
    assert counts["desiredNumberScheduled"] == counts["numberReady"] == before
    assert daemonset(cluster, ns, "vineyard")["status"]["numberMisscheduled"] == 0
    assert daemonset_counts(cluster, ns, "vineyard")["numberUnavailable"] == 0
