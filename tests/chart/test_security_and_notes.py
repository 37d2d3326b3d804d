"""Security defaults of every pod, and NOTES.txt telling the truth about the socket."""

from __future__ import annotations

import textwrap
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.support.chart_render import Manifest, find, render
from tests.support.chart_render import render_notes as notes
from tests.support.paths import CI_DIR, SCENARIOS

ROOT_INIT_CONTAINER = "prepare-socket-dir"


def pod_specs(manifests: list[Manifest]) -> list[tuple[str, dict[str, Any]]]:
    specs = []
    for m in manifests:
        if m["kind"] == "Pod":
            specs.append((m["metadata"]["name"], m["spec"]))
        elif m["kind"] in ("DaemonSet", "StatefulSet"):
            specs.append((m["metadata"]["name"], m["spec"]["template"]["spec"]))
        elif m["kind"] == "CronJob":
            specs.append(
                (m["metadata"]["name"], m["spec"]["jobTemplate"]["spec"]["template"]["spec"])
            )
    return specs


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return spec.get("initContainers", []) + spec["containers"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_container_is_hardened(scenario: str, rendered_scenarios: dict) -> None:
    for owner, spec in pod_specs(rendered_scenarios[scenario]):
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", owner
        assert spec["automountServiceAccountToken"] is False, owner
        for c in containers(spec):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, (owner, c["name"])
            assert sc["readOnlyRootFilesystem"] is True, (owner, c["name"])
            assert sc["capabilities"]["drop"] == ["ALL"], (owner, c["name"])
            assert "memory" in c["resources"].get("limits", {}), (owner, c["name"])


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_only_the_hostpath_socket_preparer_runs_as_root(
    scenario: str, rendered_scenarios: dict
) -> None:
    hostpath = (
        yaml.safe_load((CI_DIR / f"{scenario}-values.yaml").read_text())
        .get("socket", {})
        .get("volume", {})
        .get("type", "hostPath")
        == "hostPath"
    )
    for owner, spec in pod_specs(rendered_scenarios[scenario]):
        for c in containers(spec):
            sc = c["securityContext"]
            if c["name"] == ROOT_INIT_CONTAINER and hostpath:
                assert sc["runAsUser"] == 0
                assert sc["capabilities"]["add"] == ["CHOWN", "FOWNER"]
                continue
            assert sc.get("runAsNonRoot", spec["securityContext"].get("runAsNonRoot")) is True, (
                owner,
                c["name"],
            )
            assert sc.get("runAsUser", spec["securityContext"].get("runAsUser", 0)) != 0, (
                owner,
                c["name"],
            )
            assert "add" not in sc["capabilities"], (owner, c["name"])


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_no_rbac_and_no_token(scenario: str, rendered_scenarios: dict) -> None:
    kinds = {m["kind"] for m in rendered_scenarios[scenario]}
    assert not kinds & {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"}
    assert (
        find(rendered_scenarios[scenario], "ServiceAccount")["automountServiceAccountToken"]
        is False
    )


def test_grace_period_outlasts_vineyardd_forced_exit() -> None:
    spec = find(render(), "DaemonSet")["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] > 60


def test_two_releases_never_share_a_host_socket_directory() -> None:
    def host_dir(release: str, namespace: str) -> str:
        spec = find(render(release=release, namespace=namespace), "DaemonSet")["spec"]["template"][
            "spec"
        ]
        return next(
            v["hostPath"]["path"] for v in spec["volumes"] if v["name"] == "vineyard-socket"
        )

    dirs = {host_dir("vineyard", "a"), host_dir("vineyard", "b"), host_dir("other", "a")}
    assert len(dirs) == 3
    assert host_dir("vineyard", "a") == "/var/run/vineyard/a/vineyard"


def test_etcd_ha_spreads_disruption_and_keeps_stable_member_names(rendered_scenarios: dict) -> None:
    manifests = rendered_scenarios["etcd-ha"]
    statefulset = find(manifests, "StatefulSet")
    assert statefulset["spec"]["replicas"] == 3
    args = statefulset["spec"]["template"]["spec"]["containers"][0]["args"]
    cluster = next(a for a in args if a.startswith("--initial-cluster="))
    assert [m.split("=")[0] for m in cluster.removeprefix("--initial-cluster=").split(",")] == [
        "vineyard-etcd-0",
        "vineyard-etcd-1",
        "vineyard-etcd-2",
    ]
    assert (
        find(manifests, "Service", "vineyard-etcd-headless")["spec"]["publishNotReadyAddresses"]
        is True
    )
    assert find(manifests, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    assert (
        statefulset["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
        == "1Gi"
    )


def workload_snippet(text: str) -> dict[str, Any]:
    """The `spec:` block NOTES tells users to put in their workload pod."""
    block = text[text.index("  spec:\n") :].split("\n\n", 1)[0]
    return yaml.safe_load(textwrap.dedent(block))["spec"]


@pytest.mark.parametrize("scenario", ["hostpath", "pvc"])
def test_notes_snippet_is_a_valid_pod_that_mounts_the_daemon_volume(scenario: str) -> None:
    values_file = str(CI_DIR / f"{scenario}-values.yaml")
    text = notes("-f", values_file)
    spec = workload_snippet(text)
    spec["containers"][0]["image"] = "worker:1"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "worker"}, "spec": spec}
    kubernetes_validate.validate(pod, kubernetes_validate.latest_version(), strict=True)
    daemon = find(render(scenario=scenario), "DaemonSet")["spec"]["template"]["spec"]
    daemon_volume = next(v for v in daemon["volumes"] if v["name"] == "vineyard-socket")
    volume = spec["volumes"][0]
    source = "hostPath" if scenario == "hostpath" else "persistentVolumeClaim"
    key = "path" if scenario == "hostpath" else "claimName"
    assert volume[source][key] == daemon_volume[source][key]
    assert spec["securityContext"]["supplementalGroups"] == [2000]


def test_notes_print_an_overridden_host_path_not_the_default() -> None:
    text = notes("--set", "socket.volume.hostPath.path=/data/vineyard-sockets")
    assert "/data/vineyard-sockets/vineyard.sock" in text
    assert "/var/run/vineyard/vineyard/vineyard" not in text


def test_notes_for_emptydir_name_the_bundled_containers() -> None:
    text = notes("-f", str(CI_DIR / "emptydir-sidecar-values.yaml"))
    assert "emptyDir" in text
    assert "worker" in text
    assert "VINEYARD_IPC_SOCKET" in text


def test_sidecars_get_the_socket_and_its_path() -> None:
    spec = find(render(scenario="emptydir-sidecar"), "DaemonSet")["spec"]["template"]["spec"]
    worker = next(c for c in spec["containers"] if c["name"] == "worker")
    assert {"name": "VINEYARD_IPC_SOCKET", "value": "/var/run/vineyard/vineyard.sock"} in worker[
        "env"
    ]
    assert {
        "name": "vineyard-socket",
        "mountPath": "/var/run/vineyard",
        "readOnly": True,
    } in worker["volumeMounts"]
    assert next(v for v in spec["volumes"] if v["name"] == "vineyard-socket")["emptyDir"]


def test_network_policies_admit_only_the_release_to_etcd(rendered_scenarios: dict) -> None:
    manifests = rendered_scenarios["etcd-ha"]
    etcd_policy = find(manifests, "NetworkPolicy", "vineyard-etcd")
    client_rule, peer_rule = etcd_policy["spec"]["ingress"]
    assert client_rule["ports"] == [{"port": "client", "protocol": "TCP"}]
    components = {
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        for peer in client_rule["from"]
    }
    assert components == {"vineyardd", "test", "etcd-defrag"}
    assert all(
        p["podSelector"]["matchLabels"]["app.kubernetes.io/instance"] == "vineyard"
        for p in client_rule["from"]
    )
    assert (
        peer_rule["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "etcd"
    )
    rpc_policy = find(manifests, "NetworkPolicy", "vineyard")
    assert rpc_policy["spec"]["ingress"] == [
        {"ports": [{"port": "vineyard-rpc", "protocol": "TCP"}]}
    ]


def test_network_policy_without_rpc_lets_nothing_in(rendered_scenarios: dict) -> None:
    policy = find(rendered_scenarios["hardened"], "NetworkPolicy", "vineyard")
    assert policy["spec"]["ingress"] == []
    assert policy["spec"]["policyTypes"] == ["Ingress"]


def test_network_policy_peers_from_values_are_added() -> None:
    peer = {"namespaceSelector": {"matchLabels": {"team": "data"}}}
    manifests = render({"networkPolicy": {"enabled": True, "rpcFrom": [peer], "etcdFrom": [peer]}})
    assert peer in find(manifests, "NetworkPolicy", "vineyard")["spec"]["ingress"][0]["from"]
    assert peer in find(manifests, "NetworkPolicy", "vineyard-etcd")["spec"]["ingress"][0]["from"]
