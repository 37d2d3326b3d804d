"""Every ci scenario of the chart (charts/vineyard/ci/*-values.yaml) installs with
`helm install --wait` and becomes ready. All scenarios are installed at once, one namespace
each, and the module's tests read them.

- pvc: a PersistentVolume of class "standard" (hostPath; the cluster has no provisioner) is
  reserved for the release's claim, which must become Bound.
- etcd-ha: three PersistentVolumes for the members' volumeClaimTemplates.
- external-etcd: its endpoint is overridden to the etcd Service of the hostpath scenario's
  release, installed in another namespace alongside.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from localcluster import Cluster
from tests.e2e.e2e_kube import flag, in_parallel, install_args, vineyardd_args
from tests.support.figures import record_timing
from tests.support.helm import run_helm
from tests.support.kube import (
    INSTANCE,
    claim_phase,
    daemonset,
    kube,
    pods,
    ready_nodes,
    release_objects,
    statefulset,
    statefulset_ready,
    wait_daemonset_settled,
)
from tests.support.paths import SCENARIOS
from tests.support.wait import wait_for


@dataclass
class Installed:
    namespace: str
    returncode: int
    output: str
    seconds: float


def scenario_sets(namespaces: dict[str, str]) -> dict[str, list[str]]:
    """--set overrides per scenario: external-etcd uses the hostpath release's etcd."""
    other = f"http://etcd-for-vineyard.{namespaces['hostpath']}.svc.cluster.local:2379"
    return {"external-etcd": [f"etcd.external.endpoints[0]={other}"]}


@pytest.fixture(scope="module")
def installed(cluster: Cluster, e2e_env: dict[str, str], make_namespace, make_pv
              ) -> dict[str, Installed]:
    assert set(SCENARIOS) >= {"hostpath", "pvc", "emptydir-sidecar", "external-etcd",
                              "local-meta", "etcd-ha", "hardened"}, SCENARIOS
    namespaces = {s: make_namespace(f"scn-{s}") for s in SCENARIOS}
    make_pv(storage_class="standard", access_modes=["ReadWriteMany"], size="16Mi",
            claim=(namespaces["pvc"], "vineyard-socket"))
    for member in range(3):
        make_pv(storage_class="", access_modes=["ReadWriteOnce"], size="1Gi",
                claim=(namespaces["etcd-ha"], f"data-vineyard-etcd-{member}"))
    sets = scenario_sets(namespaces)

    def install(scenario: str) -> Installed:
        start = time.monotonic()
        result = run_helm(e2e_env, *install_args("vineyard", namespaces[scenario],
                                                 scenario=scenario, sets=sets.get(scenario, ())),
                          check=False)
        return Installed(namespaces[scenario], result.returncode,
                         result.stdout + result.stderr, time.monotonic() - start)

    start = time.monotonic()
    done = in_parallel({s: (lambda s=s: install(s)) for s in SCENARIOS})
    record_timing(f"all {len(SCENARIOS)} ci scenarios installed in parallel (--wait)",
                  time.monotonic() - start, nodes=len(ready_nodes(cluster)))
    return done


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_scenario_installs_and_becomes_ready(
    cluster: Cluster, installed: dict[str, Installed], scenario: str
) -> None:
    result = installed[scenario]
    assert result.returncode == 0, result.output
    ns = result.namespace
    counts = wait_daemonset_settled(cluster, ns, "vineyard")
    assert counts["numberReady"] == len(ready_nodes(cluster))
    sts = kube(cluster).get_or_none(f"/apis/apps/v1/namespaces/{ns}/statefulsets/vineyard-etcd")
    if sts is not None:
        replicas = sts["spec"]["replicas"]
        wait_for(lambda: statefulset_ready(cluster, ns, "vineyard-etcd", replicas),
                 f"etcd of {scenario} ready")
    for pod in pods(cluster, ns, f"{INSTANCE}=vineyard"):
        assert pod["status"]["phase"] == "Running", (pod["metadata"]["name"], pod["status"])


def _args(cluster: Cluster, ns: str) -> list[str]:
    return vineyardd_args(daemonset(cluster, ns, "vineyard")["spec"]["template"])


def test_hostpath_socket_is_a_per_release_host_directory(
    cluster: Cluster, installed: dict[str, Installed]
) -> None:
    ns = installed["hostpath"].namespace
    volumes = daemonset(cluster, ns, "vineyard")["spec"]["template"]["spec"]["volumes"]
    host_paths = [v["hostPath"]["path"] for v in volumes if "hostPath" in v]
    assert host_paths == [f"/var/run/vineyard/{ns}/vineyard"]


def test_pvc_claim_is_bound_and_mounted_by_every_vineyard_pod(
    cluster: Cluster, installed: dict[str, Installed]
) -> None:
    ns = installed["pvc"].namespace
    wait_for(lambda: claim_phase(cluster, ns, "vineyard-socket") == "Bound",
             "the socket claim is Bound")
    for pod in pods(cluster, ns, f"{INSTANCE}=vineyard,app.kubernetes.io/component=vineyardd"):
        claims = [v["persistentVolumeClaim"]["claimName"] for v in pod["spec"]["volumes"]
                  if "persistentVolumeClaim" in v]
        assert claims == ["vineyard-socket"]


def test_emptydir_sidecar_runs_beside_vineyardd_in_each_pod(
    cluster: Cluster, installed: dict[str, Installed]
) -> None:
    ns = installed["emptydir-sidecar"].namespace
    vineyard_pods = pods(cluster, ns, f"{INSTANCE}=vineyard,app.kubernetes.io/component=vineyardd")
    assert len(vineyard_pods) == len(ready_nodes(cluster))
    for pod in vineyard_pods:
        assert [c["name"] for c in pod["spec"]["containers"]] == ["vineyardd", "worker"]
        assert all(s["ready"] for s in pod["status"]["containerStatuses"])


def test_external_etcd_uses_the_other_releases_etcd_and_deploys_none(
    cluster: Cluster, installed: dict[str, Installed]
) -> None:
    ns, other = installed["external-etcd"].namespace, installed["hostpath"].namespace
    args = _args(cluster, ns)
    assert flag(args, "etcd_endpoint") == (
        f"http://etcd-for-vineyard.{other}.svc.cluster.local:2379")
    assert flag(args, "etcd_prefix") == "/vineyard-external"
    kinds = {kind for kind, _ in release_objects(cluster, ns, "vineyard")}
    assert "StatefulSet" not in kinds
    # The Service it points at exists and has the other release's etcd behind it.
    service = kube(cluster).get(f"/api/v1/namespaces/{other}/services/etcd-for-vineyard")
    assert [p["port"] for p in service["spec"]["ports"]] == [2379]


def test_local_meta_has_no_etcd(cluster: Cluster, installed: dict[str, Installed]) -> None:
    ns = installed["local-meta"].namespace
    assert flag(_args(cluster, ns), "meta") == "local"
    assert flag(_args(cluster, ns), "etcd_endpoint") is None
    objects = release_objects(cluster, ns, "vineyard")
    assert not [o for o in objects if "etcd" in o[1]], objects


def test_etcd_ha_has_three_ready_members_on_bound_volumes(
    cluster: Cluster, installed: dict[str, Installed]
) -> None:
    ns = installed["etcd-ha"].namespace
    wait_for(lambda: statefulset_ready(cluster, ns, "vineyard-etcd", 3), "3 etcd members ready")
    members = pods(cluster, ns, f"{INSTANCE}=vineyard,app.kubernetes.io/component=etcd")
    assert sorted(p["metadata"]["name"] for p in members) == [
        f"vineyard-etcd-{i}" for i in range(3)]
    for i in range(3):
        assert claim_phase(cluster, ns, f"data-vineyard-etcd-{i}") == "Bound"
    pdb = kube(cluster).get(f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets/vineyard-etcd")
    assert pdb["spec"]["maxUnavailable"] == 1
    wait_for(lambda: kube(cluster).get(
        f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets/vineyard-etcd"
    ).get("status", {}).get("currentHealthy") == 3, "the PDB counts 3 healthy members")
    # Every member knows the whole cluster, by its stable name behind the headless Service.
    etcd = statefulset(cluster, ns, "vineyard-etcd")["spec"]["template"]["spec"]["containers"][0]
    initial = flag(etcd.get("command", []) + etcd.get("args", []), "initial-cluster") or ""
    assert initial.split(",") == [
        f"vineyard-etcd-{i}=http://vineyard-etcd-{i}.vineyard-etcd-headless.{ns}"
        f".svc.cluster.local:2380" for i in range(3)]


def test_hardened_has_no_rpc_service_and_is_on_delete(
    cluster: Cluster, installed: dict[str, Installed]
) -> None:
    ns = installed["hardened"].namespace
    ds = daemonset(cluster, ns, "vineyard")
    assert ds["spec"]["updateStrategy"]["type"] == "OnDelete"
    assert ("Service", "vineyard-rpc") not in release_objects(cluster, ns, "vineyard")
    assert flag(_args(cluster, ns), "rpc") == "false"


def test_each_scenario_is_listed_as_deployed_by_helm(
    e2e_env: dict[str, str], installed: dict[str, Installed]
) -> None:
    for scenario, result in installed.items():
        status = run_helm(e2e_env, "status", "vineyard", "-n", result.namespace).stdout
        assert "STATUS: deployed" in status, (scenario, status)
