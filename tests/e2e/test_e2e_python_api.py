"""vineyard_helm for real: the Python API, upstream's start_vineyardd/delete_kubernetes_objects
and the CLI against the local cluster's API server, with Helm 3 and Helm 4.

The records the API returns are checked field by field against what the API server holds.
Situations that need an API server to provoke (a missing release, a name in use, a wait that
runs out) run here rather than against a stand-in server.
"""
from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import yaml

import vineyard_helm
from localcluster import Cluster
from tests.e2e.e2e_kube import flag, in_parallel, vineyardd_args
from tests.support.helm import HELM_BINARIES
from tests.support.kube import (
    INSTANCE,
    daemonset,
    inventory,
    items,
    kinds_and_names,
    kube,
    pods,
    release_objects,
    statefulset,
)
from tests.support.paths import CHART
from tests.support.wait import wait_for
from tests.unit.helm_stderr.record import environments, scenarios
from vineyard_helm import Resource
from vineyard_helm.deploy.kubernetes import delete_kubernetes_objects, start_vineyardd

CHART_YAML = yaml.safe_load((CHART / "Chart.yaml").read_text())
MAJORS = (3, 4)

# The module's flows (install, upgrade, status, uninstall with helm 3 and 4) run in the first
# test's setup, each wait up to 5 minutes; the CLI test waits 600 s plus 5 minutes.
pytestmark = pytest.mark.timeout(1800)


def helm_of(major: int) -> str:
    return str(HELM_BINARIES[major])


# ---- install / upgrade / status / uninstall ------------------------------------------------


def api_flow(cluster: Cluster, ns: str, major: int) -> dict[str, Any]:
    """install -> upgrade -> status -> uninstall, with the cluster's view after each step."""
    common: dict[str, Any] = {"namespace": ns, "kubeconfig": cluster.kubeconfig,
                              "helm": helm_of(major)}
    out: dict[str, Any] = {}
    out["installed"] = vineyard_helm.install({"vineyard": {"size": "128Mi"}}, timeout="5m",
                                             **common)
    out["live_after_install"] = release_objects(cluster, ns, "vineyard")
    out["upgraded"] = vineyard_helm.upgrade({"vineyard": {"size": "192Mi"}}, timeout="5m",
                                            **common)
    out["args_after_upgrade"] = vineyardd_args(daemonset(cluster, ns, "vineyard")["spec"]
                                               ["template"])
    out["status"] = wait_for(lambda: _ready_status(common), "status() reports ready")
    out["ds"] = daemonset(cluster, ns, "vineyard")
    out["sts"] = statefulset(cluster, ns, "vineyard-etcd")
    out["pods"] = pods(cluster, ns, f"{INSTANCE}=vineyard")
    out["slices"] = items(cluster, f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices")
    out["services"] = items(cluster, f"/api/v1/namespaces/{ns}/services")
    vineyard_helm.uninstall(wait=True, **common)
    out["live_after_uninstall"] = release_objects(cluster, ns, "vineyard")
    try:
        vineyard_helm.status(**common)
    except vineyard_helm.ReleaseNotFoundError as e:
        out["status_after_uninstall"] = e
    return out


def _ready_status(common: dict[str, Any]) -> vineyard_helm.ReleaseStatus | None:
    status = vineyard_helm.status(**common)
    return status if status.ready else None


@pytest.fixture(scope="module")
def flows(cluster: Cluster, make_namespace) -> dict[int, dict[str, Any]]:
    namespaces = {major: make_namespace(f"api-helm{major}") for major in MAJORS}
    return in_parallel({major: (lambda m=major: api_flow(cluster, namespaces[m], m))
                        for major in MAJORS})


@pytest.mark.parametrize("major", MAJORS)
def test_install_returns_the_release_as_the_cluster_has_it(
    flows: dict[int, dict[str, Any]], major: int
) -> None:
    flow = flows[major]
    release: vineyard_helm.Release = flow["installed"]
    ns = flow["status"].release.namespace
    assert (release.name, release.namespace, release.revision, release.status) == (
        "vineyard", ns, 1, "deployed")
    assert release.chart_version == CHART_YAML["version"]
    assert release.app_version == str(CHART_YAML["appVersion"])
    assert {(r.kind, r.name) for r in release.resources} <= flow["live_after_install"]
    assert {("DaemonSet", "vineyard"), ("StatefulSet", "vineyard-etcd")} <= {
        (r.kind, r.name) for r in release.resources}
    assert all(r.namespace == ns and r.release == "vineyard" for r in release.resources)


@pytest.mark.parametrize("major", MAJORS)
def test_upgrade_is_revision_2_and_reaches_the_daemonset(
    flows: dict[int, dict[str, Any]], major: int
) -> None:
    flow = flows[major]
    assert (flow["upgraded"].revision, flow["upgraded"].status) == (2, "deployed")
    assert flag(flow["args_after_upgrade"], "size") == "192Mi"


@pytest.mark.parametrize("major", MAJORS)
def test_status_matches_the_daemonset_etcd_services_and_socket(
    flows: dict[int, dict[str, Any]], major: int
) -> None:
    flow = flows[major]
    status: vineyard_helm.ReleaseStatus = flow["status"]
    ds, sts = flow["ds"]["status"], flow["sts"]["status"]
    assert status.release.revision == 2
    assert status.vineyardd is not None
    assert (status.vineyardd.desired, status.vineyardd.ready, status.vineyardd.updated) == (
        ds["desiredNumberScheduled"], ds["numberReady"], ds["updatedNumberScheduled"])
    live_vineyardd = {(p["metadata"]["name"], p["spec"]["nodeName"]) for p in flow["pods"]
                      if p["metadata"]["labels"]["app.kubernetes.io/component"] == "vineyardd"}
    assert {(p.name, p.node) for p in status.vineyardd.pods} == live_vineyardd
    assert status.etcd is not None
    assert (status.etcd.desired, status.etcd.ready) == (1, sts["readyReplicas"])
    # Service endpoints: what the EndpointSlices hold.
    for service in status.services:
        slices = [s for s in flow["slices"]
                  if s["metadata"]["labels"].get("kubernetes.io/service-name") == service.name]
        ips = {a for s in slices for e in s.get("endpoints") or [] for a in e["addresses"]}
        assert set(service.endpoints) == ips, service.name
    assert {s.name for s in status.services} == {
        s["metadata"]["name"] for s in flow["services"]}
    assert status.socket is not None
    assert status.socket.host_path == f"/var/run/vineyard/{status.release.namespace}/vineyard"


@pytest.mark.parametrize("major", MAJORS)
def test_uninstall_waits_until_nothing_is_left(
    flows: dict[int, dict[str, Any]], major: int
) -> None:
    flow = flows[major]
    # Only etcd's claim stays, on purpose (metadata outlives the release; chart README, etcd).
    assert flow["live_after_uninstall"] == {("PersistentVolumeClaim", "data-vineyard-etcd-0")}
    assert isinstance(flow["status_after_uninstall"], vineyard_helm.ReleaseNotFoundError)


# ---- errors that need an API server ---------------------------------------------------------


@pytest.mark.parametrize("major", MAJORS)
def test_missing_releases_raise_release_not_found(
    cluster: Cluster, namespace: str, major: int
) -> None:
    common: dict[str, Any] = {"namespace": namespace, "kubeconfig": cluster.kubeconfig,
                              "helm": helm_of(major)}
    with pytest.raises(vineyard_helm.ReleaseNotFoundError) as caught:
        vineyard_helm.status("nothere", **common)
    assert caught.value.returncode == 1
    assert "release: not found" in caught.value.stderr
    with pytest.raises(vineyard_helm.ReleaseNotFoundError):
        vineyard_helm.upgrade(release="nothere", **common)
    with pytest.raises(vineyard_helm.ReleaseNotFoundError):
        vineyard_helm.uninstall("nothere", **common)
    vineyard_helm.uninstall("nothere", ignore_not_found=True, **common)


@pytest.mark.parametrize("major", MAJORS)
def test_recorded_cluster_failures_map_to_the_named_error_live(
    cluster: Cluster, major: int
) -> None:
    """The cluster-only situations of tests/unit/helm_stderr/record.py, replayed now: each
    helm failure maps to the exception its recording is named after."""
    from vineyard_helm import errors
    from vineyard_helm.errors import from_helm_failure

    helm = helm_of(major)
    with environments(cluster.kubeconfig) as env:
        live = scenarios(env)
        unit_only = scenarios({**env, "cluster": None})
        cluster_only = {k: v for k, v in live.items() if k not in unit_only}
        cleanup = cluster_only.pop("cleanup")
        namespace = cleanup[cleanup.index("-n") + 1]
        try:
            for name, command in cluster_only.items():
                if name == "ReleaseExistsError__install":
                    subprocess.run([helm, *command], capture_output=True, check=True,
                                   timeout=300)
                result = subprocess.run([helm, *command], capture_output=True, text=True,
                                        timeout=300)
                assert result.returncode != 0, name
                expected = getattr(errors, name.split("__")[0])
                assert type(from_helm_failure(result.returncode, result.stderr)) is expected, (
                    name, result.stderr)
        finally:
            subprocess.run([helm, *cleanup], capture_output=True, timeout=300)
            kube(cluster).delete(f"/api/v1/namespaces/{namespace}")
    assert {n.split("__")[0] for n in cluster_only} == {
        "ReleaseNotFoundError", "ReleaseExistsError", "WaitTimeoutError"}


# ---- upstream's start_vineyardd / delete_kubernetes_objects ---------------------------------


def api_client(cluster: Cluster) -> Any:
    """A kubernetes.client.ApiClient configured from the cluster's kubeconfig, as upstream
    users build theirs."""
    import kubernetes

    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=str(cluster.kubeconfig),
                                       client_configuration=configuration)
    return kubernetes.client.ApiClient(configuration)


@pytest.mark.parametrize("major", MAJORS)
def test_start_vineyardd_then_delete_with_wait_leaves_nothing(
    cluster: Cluster, namespace: str, major: int
) -> None:
    before = kinds_and_names(inventory(cluster, namespace))
    resources = start_vineyardd(namespace=namespace, size="256Mi", rpc_socket_port=9700,
                                k8s_client=api_client(cluster), helm=helm_of(major))
    live = release_objects(cluster, namespace, "vineyard")
    assert {(r.kind, r.name) for r in resources} <= live
    ds = daemonset(cluster, namespace, "vineyard")
    assert ds["status"]["numberReady"] == ds["status"]["desiredNumberScheduled"] > 0
    svc = kube(cluster).get(f"/api/v1/namespaces/{namespace}/services/vineyard-rpc")
    assert [p["port"] for p in svc["spec"]["ports"]] == [9700]

    delete_kubernetes_objects(resources, k8s_client=api_client(cluster), wait=True,
                              timeout_seconds=300, helm=helm_of(major))
    # wait=True returned: every object of the release is gone already, pods included; etcd's
    # claim follows its StatefulSet through the garbage collector (whenDeleted: Delete).
    wait_for(lambda: kinds_and_names(inventory(cluster, namespace)) == before,
             "etcd's claim deleted with its StatefulSet", timeout=60)
    assert not pods(cluster, namespace)


def test_delete_of_an_already_deleted_release_returns(cluster: Cluster, namespace: str) -> None:
    targets = [Resource("DaemonSet", "gone", namespace, "gone")]
    delete_kubernetes_objects(targets, wait=True, timeout_seconds=20,
                              kubeconfig=str(cluster.kubeconfig), helm=helm_of(4))


def test_delete_accepts_upstreams_delete_options(cluster: Cluster, namespace: str) -> None:
    targets = [Resource("DaemonSet", "gone", namespace, "gone")]
    delete_kubernetes_objects(targets, k8s_client=api_client(cluster), helm=helm_of(4),
                              grace_period_seconds=0, propagation_policy="Foreground")


def test_bad_start_vineyardd_arguments_create_nothing(cluster: Cluster, namespace: str) -> None:
    before = inventory(cluster, namespace)
    with pytest.raises(vineyard_helm.InvalidValuesError, match=r"vineyard\.size"):
        start_vineyardd(size=512, namespace=namespace, helm=helm_of(4),  # type: ignore[arg-type]
                        kubeconfig=str(cluster.kubeconfig))
    with pytest.raises(vineyard_helm.InvalidValuesError, match=r"vineyard\.rpc\.port"):
        start_vineyardd(rpc_socket_port="rpc", namespace=namespace,  # type: ignore[arg-type]
                        helm=helm_of(4), kubeconfig=str(cluster.kubeconfig))
    assert inventory(cluster, namespace) == before


# ---- the CLI ----------------------------------------------------------------------------------


def cli(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vineyard_helm", *args, "--kubeconfig",
                           str(cluster.kubeconfig), "--helm", helm_of(4)],
                          capture_output=True, text=True, env=cluster.env, timeout=600)


def test_cli_install_status_uninstall_and_their_exit_codes(
    cluster: Cluster, namespace: str
) -> None:
    from vineyard_helm import cli as vh_cli

    ns = ["-n", namespace]
    installed = cli(cluster, "install", *ns, "--set", "vineyard.size=128Mi", "-o", "json",
                    "--timeout", "5m")
    assert installed.returncode == vh_cli.EXIT_OK, installed.stderr
    assert yaml.safe_load(installed.stdout)["revision"] == 1

    again = cli(cluster, "install", *ns)
    assert again.returncode == vh_cli.EXIT_RELEASE_EXISTS
    assert again.stderr.startswith("vineyard-helm: error: ")

    status = cli(cluster, "status", *ns, "-o", "json")
    assert status.returncode == vh_cli.EXIT_OK, status.stderr
    report = yaml.safe_load(status.stdout)
    assert report["ready"] is True
    assert report["vineyardd"]["ready"] == daemonset(cluster, namespace, "vineyard")["status"][
        "numberReady"]

    table = cli(cluster, "status", *ns)
    assert table.returncode == vh_cli.EXIT_OK
    assert "vineyard" in table.stdout

    gone = cli(cluster, "uninstall", *ns)
    assert gone.returncode == vh_cli.EXIT_OK, gone.stderr
    # Only etcd's claim stays, on purpose (metadata outlives the release; chart README, etcd).
    assert release_objects(cluster, namespace, "vineyard") == {
        ("PersistentVolumeClaim", "data-vineyard-etcd-0")}
    for argv in (("status",), ("uninstall",), ("upgrade",)):
        missing = cli(cluster, *argv, *ns)
        assert missing.returncode == vh_cli.EXIT_RELEASE_NOT_FOUND, (argv, missing.stderr)
        assert missing.stderr.startswith("vineyard-helm: error: ")
        assert "Traceback" not in missing.stderr
    ignored = cli(cluster, "uninstall", *ns, "--ignore-not-found")
    assert ignored.returncode == vh_cli.EXIT_OK


def test_cli_other_helm_failures_exit_1(cluster: Cluster) -> None:
    from vineyard_helm import cli as vh_cli

    # A namespace that does not exist, and --no-create-namespace: helm fails its own way.
    missing = cli(cluster, "install", "-n", "e2e-no-such-namespace", "--no-create-namespace",
                  "--no-wait")
    assert missing.returncode == vh_cli.EXIT_HELM_FAILED, missing.stderr
    assert missing.stderr.startswith("vineyard-helm: error: ")
    assert len(missing.stderr.strip().splitlines()) == 1
    assert kube(cluster).get_or_none("/api/v1/namespaces/e2e-no-such-namespace") is None

