"""Admission and least privilege on the local cluster: PodSecurity `restricted` accepts every
mode that claims it, `baseline` refuses hostPath with a message saying so; the release's
ServiceAccount can do no more than any authenticated identity; the NetworkPolicies are accepted
by the API server."""
from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
import yaml

from localcluster import Cluster, wait_until
from tests.support.chart_render import deep_merge, default_values, scenario_values
from tests.support.paths import CHART, CI_DIR, SCENARIOS

PSA = "pod-security.kubernetes.io/enforce"


def socket_type(scenario: str) -> str:
    return deep_merge(default_values(), scenario_values(scenario))["socket"]["volume"]["type"]


RESTRICTED = [s for s in SCENARIOS if socket_type(s) != "hostPath"]


def helm_install(cluster: Cluster, release: str, namespace: str, scenario: str,
                 *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(cluster.bin_dir / "helm"), "install", release, str(CHART), "-n", namespace,
         "-f", str(CI_DIR / f"{scenario}-values.yaml"), *extra],
        env=cluster.env, capture_output=True, text=True, check=False)


def workloads(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    out = cluster.kubectl("get", "daemonset,statefulset", "-n", namespace, "-o", "json").stdout
    return json.loads(out)["items"]


def pods_of(cluster: Cluster, namespace: str, workload: dict[str, Any]) -> list[dict[str, Any]]:
    selector = ",".join(f"{k}={v}" for k, v in workload["spec"]["selector"]["matchLabels"].items())
    out = cluster.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json").stdout
    return json.loads(out)["items"]


def expected_pods(workload: dict[str, Any]) -> int:
    if workload["kind"] == "StatefulSet":
        return int(workload["spec"].get("replicas", 1))
    return int(workload.get("status", {}).get("desiredNumberScheduled", 0))


def failed_create_messages(cluster: Cluster, namespace: str) -> list[str]:
    out = cluster.kubectl("get", "events", "-n", namespace, "--field-selector",
                          "reason=FailedCreate", "-o", "json").stdout
    return [e.get("message", "") for e in json.loads(out)["items"]]


@pytest.mark.parametrize("scenario", RESTRICTED)
def test_restricted_namespace_admits_every_pod_of_the_modes_that_claim_it(
        scenario: str, cluster: Cluster, namespace_factory, record_row) -> None:
    ns = namespace_factory("psa-restricted", {PSA: "restricted"})
    proc = helm_install(cluster, "vineyard", ns, scenario)
    assert proc.returncode == 0, proc.stderr

    def all_pods_created() -> bool:
        items = workloads(cluster, ns)
        return bool(items) and all(expected_pods(w) > 0 and len(pods_of(cluster, ns, w))
                                   >= expected_pods(w) for w in items)

    assert wait_until(all_pods_created, 90, interval=1.0), (
        f"pods missing; FailedCreate: {failed_create_messages(cluster, ns)}")
    assert failed_create_messages(cluster, ns) == []
    pods = sum(len(pods_of(cluster, ns, w)) for w in workloads(cluster, ns))
    record_row("restricted", scenario, pods)


@pytest.mark.parametrize("scenario", ["hostpath"])
def test_baseline_namespace_refuses_hostpath_naming_the_volume(
        scenario: str, cluster: Cluster, namespace_factory, record) -> None:
    ns = namespace_factory("psa-baseline", {PSA: "baseline"})
    proc = helm_install(cluster, "vineyard", ns, scenario)
    # helm creates the DaemonSet (workloads are only warned); its controller's pods are refused.
    assert proc.returncode == 0, proc.stderr
    messages: list[str] = []

    def refused() -> bool:
        messages[:] = failed_create_messages(cluster, ns)
        return any("hostPath volumes" in m for m in messages)

    assert wait_until(refused, 60, interval=1.0), messages
    message = next(m for m in messages if "hostPath volumes" in m)
    assert 'violates PodSecurity "baseline:latest"' in message
    daemonset = next(w for w in workloads(cluster, ns) if w["kind"] == "DaemonSet")
    assert pods_of(cluster, ns, daemonset) == []
    record("PodSecurity baseline refuses hostPath", area="Admission",
           figure=f"1 namespace (enforce=baseline), scenario {scenario}",
           result="refused: DaemonSet gets no pods; event: "
                  + message.split("Error creating: ", 1)[-1][:160])


@pytest.fixture(scope="module")
def restricted_rows() -> list[tuple[str, str, int]]:
    return []


@pytest.fixture
def record_row(restricted_rows, record):
    def add(level: str, scenario: str, pods: int) -> None:
        restricted_rows.append((level, scenario, pods))
        scenarios = ", ".join(s for _, s, _ in restricted_rows)
        record("PodSecurity restricted admits the non-hostPath modes", area="Admission",
               figure=f"{len(restricted_rows)} scenarios ({scenarios}), "
                      f"{sum(p for *_, p in restricted_rows)} pods",
               result="all pods admitted in enforce=restricted namespaces, no FailedCreate")
    return add


def can_i_list(cluster: Cluster, namespace: str, service_account: str) -> list[str]:
    out = cluster.kubectl("auth", "can-i", "--list", "-n", namespace,
                          f"--as=system:serviceaccount:{namespace}:{service_account}").stdout
    return sorted(line for line in out.splitlines()[1:] if line.strip())


def test_release_service_account_can_do_nothing_beyond_the_defaults(
        cluster: Cluster, namespace_factory, record) -> None:
    ns = namespace_factory("rbac")
    proc = helm_install(cluster, "vineyard", ns, "etcd-ha")
    assert proc.returncode == 0, proc.stderr
    accounts = json.loads(cluster.kubectl("get", "serviceaccounts", "-n", ns, "-l",
                                          "app.kubernetes.io/instance=vineyard",
                                          "-o", "json").stdout)["items"]
    assert accounts, "the release made no ServiceAccount"
    # An identity nobody granted anything: what every authenticated ServiceAccount may do.
    baseline = can_i_list(cluster, ns, "no-such-account")
    assert baseline, "kubectl auth can-i --list printed nothing"
    for sa in accounts:
        assert can_i_list(cluster, ns, sa["metadata"]["name"]) == baseline
        assert sa.get("automountServiceAccountToken") is False
    bindings = json.loads(cluster.kubectl("get", "rolebindings,clusterrolebindings", "-A",
                                          "-o", "json").stdout)["items"]
    subjects = [b["metadata"]["name"] for b in bindings for s in b.get("subjects") or []
                if s.get("kind") == "ServiceAccount" and s.get("namespace") == ns]
    assert subjects == []
    record("ServiceAccount least privilege", area="Least privilege",
           figure=f"{len(accounts)} ServiceAccount(s) of an etcd-ha release, "
                  f"{len(baseline)} rules in `auth can-i --list`",
           result="the same rules as an identity nobody granted anything; no (Cluster)RoleBinding "
                  "names it; token not automounted")


def test_network_policies_are_accepted_and_confine_etcd_to_the_release(
        cluster: Cluster, namespace_factory, record) -> None:
    ns = namespace_factory("netpol")
    checked = 0
    for scenario in SCENARIOS:
        rendered = subprocess.run(
            [str(cluster.bin_dir / "helm"), "template", "vineyard", str(CHART), "-n", ns,
             "-f", str(CI_DIR / f"{scenario}-values.yaml"), "--set", "networkPolicy.enabled=true"],
            env=cluster.env, capture_output=True, text=True, check=True).stdout
        policies = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "NetworkPolicy"]
        assert policies, scenario
        proc = cluster.kubectl("create", "--dry-run=server", "-o", "json", "-f", "-",
                               input=yaml.safe_dump_all(policies), check=False)
        assert proc.returncode == 0, f"{scenario}: {proc.stderr}"
        checked += len(policies)
    proc = helm_install(cluster, "vineyard", ns, "etcd-ha")
    assert proc.returncode == 0, proc.stderr
    live = json.loads(cluster.kubectl("get", "networkpolicy", "-n", ns, "-o", "json")
                      .stdout)["items"]
    etcd = next(p for p in live if p["spec"]["podSelector"]["matchLabels"].get(
        "app.kubernetes.io/component") == "etcd")
    client_rule = next(r for r in etcd["spec"]["ingress"]
                       if any(p.get("port") == "client" for p in r.get("ports", [])))
    for peer in client_rule["from"]:
        labels = peer["podSelector"]["matchLabels"]
        assert labels.get("app.kubernetes.io/instance") == "vineyard", peer
    record("NetworkPolicies accepted by the API", area="Least privilege",
           figure=f"{checked} NetworkPolicy objects from {len(SCENARIOS)} scenarios "
                  "(networkPolicy.enabled=true), server-side dry run; 1 live etcd-ha release",
           result="all accepted; etcd's client port admits only this release's pods")
