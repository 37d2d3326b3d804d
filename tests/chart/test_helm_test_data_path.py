"""The data path `helm test` (templates/tests/test-data-path.yaml): an Indexed Job of writers on
sampled vineyardd nodes puts objects over the socket, a reader pod gets them back through RPC (or
etcd) and deletes them. Rendered only: the pods run on the real node
(tests/e2e_real/test_realnode_data_path.py), and the selftest itself is tested against the real
vineyardd in tools/exporter."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.chart_render import (
    HelmFailed,
    Manifest,
    container,
    find,
    invalid_objects,
    pod_spec,
    render,
    run_helm_template,
)
from tests.support.chart_render import render_notes as notes

JOB, READER = "vineyard-test-data-put", "vineyard-test-data-get"
VAP_API = ("--api-versions", "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy")
BIGMEM = {
    "name": "bigmem",
    "nodeSelector": {"vineyard.v6d.io/pool": "bigmem"},
    "size": "2Gi",
    "memoryHeadroom": "256Mi",
    "tolerations": [
        {"key": "dedicated", "operator": "Equal", "value": "bigmem", "effect": "NoSchedule"}
    ],
}
TOP_TOLERATION = {"key": "vineyard", "operator": "Exists", "effect": "NoSchedule"}


def data_path(manifests: list[Manifest]) -> tuple[Manifest | None, Manifest | None]:
    """The writers' Job and the reader Pod, None where not rendered."""

    def named(suffix: str) -> Manifest | None:
        found = [m for m in manifests if m["metadata"]["name"].endswith(suffix)]
        assert len(found) <= 1, found
        return found[0] if found else None

    return named("-test-data-put"), named("-test-data-get")


def writer(manifests: list[Manifest]) -> tuple[Manifest, dict[str, Any], dict[str, Any]]:
    job, _ = data_path(manifests)
    assert job is not None, "no writers' Job"
    spec = pod_spec(job)
    return job, spec, container(spec, "put")


def args(c: dict[str, Any]) -> dict[str, list[str]]:
    """--flag=value arguments by flag (a flag may repeat)."""
    out: dict[str, list[str]] = {}
    for a in c["args"]:
        if a.startswith("--"):
            flag, _, value = a.partition("=")
            out.setdefault(flag, []).append(value)
    return out


def vineyardd_args(manifests: list[Manifest], name: str = "vineyard") -> dict[str, list[str]]:
    return args(container(pod_spec(find(manifests, "DaemonSet", name))))


@pytest.mark.parametrize("helm_major", [3, 4])
def test_writers_then_reader_after_the_other_tests_each_deleted_when_it_succeeds(
    helm_major: int,
) -> None:
    manifests = render(helm_major=helm_major)
    job, reader = data_path(manifests)
    assert job is not None
    assert reader is not None
    hooks = {
        m["metadata"]["name"]: m["metadata"]["annotations"]
        for m in manifests
        if "helm.sh/hook" in m["metadata"].get("annotations", {})
    }
    assert {name: a["helm.sh/hook"] for name, a in hooks.items()} == {
        "vineyard-test-rpc": "test",
        "vineyard-test-etcd": "test",
        JOB: "test",
        READER: "test",
    }
    # helm runs test hooks by weight (then name) and waits for each: health first (weight 0).
    weights = {name: int(a.get("helm.sh/hook-weight", "0")) for name, a in hooks.items()}
    assert weights == {"vineyard-test-rpc": 0, "vineyard-test-etcd": 0, JOB: 10, READER: 20}
    for name in (JOB, READER):
        assert hooks[name]["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
        assert hooks[name]["helm.sh/hook-output-log-policy"] == "hook-succeeded,hook-failed"
    # One failed writer fails the Job, which helm then reports; no pod is retried.
    assert job["spec"]["backoffLimit"] == 0
    assert pod_spec(job)["restartPolicy"] == reader["spec"]["restartPolicy"] == "Never"
    assert job["spec"]["activeDeadlineSeconds"] == reader["spec"]["activeDeadlineSeconds"] == 120


@pytest.mark.parametrize("nodes", [1, 3, 7])
def test_the_sample_size_is_the_jobs_completions_and_the_readers_names(nodes: int) -> None:
    manifests = render(
        {"tests": {"dataPath": {"nodes": nodes, "size": "64Ki"}}}, release="vy", namespace="ns"
    )
    job, _, put = writer(manifests)
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == (
        "Indexed",
        nodes,
        nodes,
    )
    [name] = args(put)["--name"]
    assert name == "vineyard-helm-test/ns/vy/data-path-$(JOB_COMPLETION_INDEX)"
    index = next(e for e in put["env"] if e["name"] == "JOB_COMPLETION_INDEX")
    assert index["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    )
    reader = find(manifests, "Pod", "vy-vineyard-test-data-get")
    got = args(container(reader["spec"], "get"))
    assert got["--name"] == [name.replace("$(JOB_COMPLETION_INDEX)", str(i)) for i in range(nodes)]
    assert args(put)["--size"] == got["--size"] == [str(64 * 1024)]


def test_writers_require_a_vineyardd_node_and_prefer_one_no_other_writer_is_on() -> None:
    manifests = render()
    _, spec, _ = writer(manifests)
    daemonset = find(manifests, "DaemonSet", "vineyard")
    [term] = spec["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"] == daemonset["spec"]["selector"]["matchLabels"]
    # Preferred, not required: fewer vineyardd nodes than writers must not leave one unschedulable.
    anti = spec["affinity"]["podAntiAffinity"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in anti
    [preferred] = anti["preferredDuringSchedulingIgnoredDuringExecution"]
    assert preferred["weight"] == 100
    term = preferred["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    labels = find(manifests, "Job")["spec"]["template"]["metadata"]["labels"]
    assert term["labelSelector"]["matchLabels"].items() <= labels.items()
    # The reader too runs on a vineyardd node (a Local RPC Service answers only there), alone.
    reader = find(manifests, "Pod", READER)["spec"]["affinity"]
    assert reader["podAffinity"] == spec["affinity"]["podAffinity"]
    assert "podAntiAffinity" not in reader


def test_pools_are_sampled_too_with_every_daemonsets_tolerations_and_the_same_socket() -> None:
    manifests = render({"pools": [BIGMEM], "tolerations": [TOP_TOLERATION]})
    _, spec, put = writer(manifests)
    daemonsets = [m for m in manifests if m["kind"] == "DaemonSet"]
    assert {d["metadata"]["name"] for d in daemonsets} == {"vineyard", "vineyard-bigmem"}
    selector = spec["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0][
        "labelSelector"
    ]["matchLabels"]
    for d in daemonsets:
        assert selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        assert args(container(pod_spec(d)))["--socket"] == args(put)["--socket"]
    assert spec["tolerations"] == [TOP_TOLERATION, *BIGMEM["tolerations"]]
    assert find(manifests, "Pod", READER)["spec"]["tolerations"] == spec["tolerations"]
    # No nodeSelector: the pod affinity picks any vineyardd node, whichever pool runs it.
    assert "nodeSelector" not in spec


def test_writers_use_the_socket_as_a_workload_does_and_nothing_more() -> None:
    manifests = render(
        {"socket": {"access": {"groupId": 3000}}, "tests": {"dataPath": {"size": "8Mi"}}},
        release="vy",
        namespace="ns",
    )
    _, spec, put = writer(manifests)
    daemonset = pod_spec(find(manifests, "DaemonSet", "vy-vineyard"))
    security = spec["securityContext"]
    assert security["runAsNonRoot"] is True
    assert (security["runAsUser"], security["runAsGroup"]) == (65532, 65532)
    assert security["supplementalGroups"] == [3000]
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "fsGroup" not in security
    assert spec["automountServiceAccountToken"] is False
    assert put["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    [volume] = spec["volumes"]
    own = next(v for v in daemonset["volumes"] if v["name"] == "vineyard-socket")
    assert volume["hostPath"] == {"path": own["hostPath"]["path"], "type": "Directory"}
    assert own["hostPath"]["path"] == "/var/run/vineyard/ns/vy"
    [mount] = put["volumeMounts"]
    assert mount == {"name": "vineyard-socket", "mountPath": "/var/run/vineyard", "readOnly": True}
    assert args(put)["--socket"] == args(container(daemonset))["--socket"]
    # 64Mi of its own plus the object twice (written, and the pattern it is made of).
    assert put["resources"]["limits"]["memory"] == 64 * 2**20 + 2 * 8 * 2**20
    # Through RPC the reader needs neither the socket nor its group.
    reader = find(manifests, "Pod", "vy-vineyard-test-data-get")["spec"]
    assert "volumes" not in reader
    assert "supplementalGroups" not in reader["securityContext"]
    assert "volumeMounts" not in container(reader, "get")


def test_a_claim_socket_is_mounted_read_only_and_found_by_the_node_name() -> None:
    values = {
        "socket": {
            "volume": {
                "type": "persistentVolumeClaim",
                "persistentVolumeClaim": {"storageClass": "standard"},
            }
        }
    }
    manifests = render(values)
    _, spec, put = writer(manifests)
    [volume] = spec["volumes"]
    assert volume["persistentVolumeClaim"] == {"claimName": "vineyard-socket", "readOnly": True}
    assert args(put)["--socket"] == ["/var/run/vineyard/$(MY_NODE_NAME)/vineyard.sock"]
    node = next(e for e in put["env"] if e["name"] == "MY_NODE_NAME")
    assert node["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert invalid_objects(manifests) == []


def test_with_admission_on_the_test_pods_are_admitted_as_the_releases_own() -> None:
    manifests = render(
        {"admission": {"enabled": True}}, release="vault", namespace="data", extra_args=VAP_API
    )
    vap = find(manifests, "ValidatingAdmissionPolicy")
    [exemption] = vap["spec"]["matchConditions"]
    assert 'request.namespace == "data"' in exemption["expression"]
    job, spec, _ = writer(manifests)
    # Without the exemption the policy would refuse them: they mount the socket directory and
    # carry the socket group, exactly what it looks for.
    dirs = next(v["expression"] for v in vap["spec"]["variables"] if v["name"] == "socketDirs")
    assert spec["volumes"][0]["hostPath"]["path"].strip("/") in dirs
    assert spec["securityContext"]["supplementalGroups"] == [2000]
    reader = find(manifests, "Pod", "vault-vineyard-test-data-get")
    for namespace, labels in (
        (job["metadata"]["namespace"], job["spec"]["template"]["metadata"]["labels"]),
        (reader["metadata"]["namespace"], reader["metadata"]["labels"]),
    ):
        assert namespace == "data"
        assert labels["app.kubernetes.io/instance"] == "vault"
        assert labels["app.kubernetes.io/name"] == "vineyard"


def test_network_policies_let_the_reader_reach_rpc_and_etcd() -> None:
    manifests = render(
        {
            "networkPolicy": {
                "enabled": True,
                "rpcFrom": [{"namespaceSelector": {"matchLabels": {"team": "ml"}}}],
            }
        }
    )
    reader = find(manifests, "Pod", READER)["metadata"]["labels"]
    for name in ("vineyard", "vineyard-etcd"):
        peers = find(manifests, "NetworkPolicy", name)["spec"]["ingress"][0]["from"]
        selectors = [p["podSelector"]["matchLabels"] for p in peers if "podSelector" in p]
        assert any(s.items() <= reader.items() for s in selectors), (name, selectors)


def test_without_rpc_the_reader_reads_etcd_and_deletes_through_its_nodes_socket() -> None:
    values = {"vineyard": {"rpc": {"enabled": False}, "etcdPrefix": "/team-a"}}
    manifests = render(values)
    _, _, put = writer(manifests)
    assert "--read-back" not in put["args"]
    reader = find(manifests, "Pod", READER)["spec"]
    got = args(container(reader, "get"))
    own = vineyardd_args(manifests)
    assert "--rpc" not in got
    assert got["--etcd"] == own["--etcd_endpoint"]
    assert got["--etcd-prefix"] == own["--etcd_prefix"] == ["/team-a"]
    assert got["--socket"] == own["--socket"]
    assert reader["securityContext"]["supplementalGroups"] == [2000]
    assert reader["volumes"] == pod_spec(find(manifests, "Job"))["volumes"]


def test_an_external_etcd_is_read_where_vineyardd_finds_it() -> None:
    endpoints = ["http://etcd-a.db:2379", "http://etcd-b.db:2379"]
    manifests = render(
        {
            "etcd": {"enabled": False, "external": {"endpoints": endpoints}},
            "vineyard": {"rpc": {"enabled": False}},
        }
    )
    got = args(container(find(manifests, "Pod", READER)["spec"], "get"))
    assert got["--etcd"] == [",".join(endpoints)] == vineyardd_args(manifests)["--etcd_endpoint"]


def test_through_rpc_the_reader_asks_the_rpc_service() -> None:
    manifests = render(
        {"rpcService": {"port": 9700}, "clusterDomain": "corp.local"}, release="vy", namespace="ns"
    )
    got = args(container(find(manifests, "Pod", "vy-vineyard-test-data-get")["spec"], "get"))
    find(manifests, "Service", "vy-vineyard-rpc")
    assert got["--rpc"] == ["vy-vineyard-rpc.ns.svc.corp.local:9700"]


def test_with_local_metadata_each_writer_reads_back_itself_and_notes_say_why() -> None:
    manifests = render(scenario="local-meta")
    _, _, put = writer(manifests)
    assert "--read-back" in put["args"]
    assert data_path(manifests)[1] is None
    text = notes("-f", "charts/vineyard/ci/local-meta-values.yaml")
    assert "reads it back\n  on the same node" in text
    assert "no other pod can find an\n  object put on another node" in text


@pytest.mark.parametrize("scenario", ["emptydir-sidecar", "hardened"])
def test_an_emptydir_socket_has_no_data_path_test_and_notes_say_why(scenario: str) -> None:
    assert data_path(render(scenario=scenario)) == (None, None)
    text = notes("-f", f"charts/vineyard/ci/{scenario}-values.yaml")
    assert "helm test: no data path test (tests.dataPath): with socket.volume.type=emptyDir" in text


@pytest.mark.parametrize(
    "values", [{"tests": {"enabled": False}}, {"tests": {"dataPath": {"enabled": False}}}]
)
def test_it_can_be_turned_off(values: dict[str, Any]) -> None:
    assert data_path(render(values)) == (None, None)
    assert "data path" not in notes(*(f"--set={k}" for k in flat(values))).lower()


def flat(values: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in values.items():
        if isinstance(value, dict):
            out += flat(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}={str(value).lower()}")
    return out


def test_notes_say_what_the_test_does() -> None:
    assert (
        "It also puts a 1Mi object over the socket on up to 3 vineyardd node(s) and reads it "
        "back\n  through RPC (metadata and bytes)"
    ) in notes()
    assert "from etcd (metadata; RPC is off)" in notes("--set", "vineyard.rpc.enabled=false")


def test_the_exporter_image_runs_it_with_the_registry_and_pull_secrets() -> None:
    manifests = render(
        {
            "global": {"imageRegistry": "mirror.example.com"},
            "imagePullSecrets": [{"name": "regcred"}],
            "metrics": {"exporter": {"image": {"tag": "9.9.9", "pullPolicy": "Always"}}},
        }
    )
    _, spec, put = writer(manifests)
    reader = find(manifests, "Pod", READER)["spec"]
    get = container(reader, "get")
    for pod, c in ((spec, put), (reader, get)):
        assert c["image"] == "mirror.example.com/vineyard-helm/vineyard-exporter:9.9.9"
        assert c["imagePullPolicy"] == "Always"
        assert pod["imagePullSecrets"] == [{"name": "regcred"}]
        assert c["args"][:2] == ["selftest", c["name"]]
        assert "command" not in c  # the image's entrypoint is the exporter


def test_long_release_names_keep_the_job_and_its_pods_hostnames_valid() -> None:
    manifests = render(release="r" * 53)
    job, reader = data_path(manifests)
    assert job is not None
    assert reader is not None
    name = job["metadata"]["name"]
    assert len(name) <= 52
    assert len(f"{name}-99") <= 63  # an Indexed Job's pod hostname: <job>-<index>
    assert len(reader["metadata"]["name"]) <= 63
    assert invalid_objects([job, reader]) == []


@pytest.mark.parametrize("scenario", ["hostpath", "pvc", "external-etcd", "etcd-ha", "local-meta"])
def test_every_scenarios_test_objects_are_valid_kubernetes(scenario: str) -> None:
    manifests = [m for m in render(scenario=scenario) if m["metadata"]["name"] in (JOB, READER)]
    assert manifests
    assert invalid_objects(manifests) == []


@pytest.mark.parametrize(
    ("data_path_values", "key"),
    [
        ({"nodes": 0}, "/tests/dataPath/nodes"),
        ({"nodes": 101}, "/tests/dataPath/nodes"),
        ({"size": "0"}, "/tests/dataPath/size"),
        ({"size": "1.5Mi"}, "/tests/dataPath/size"),
        ({"size": "100m"}, "/tests/dataPath/size"),
        ({"size": "1234567Gi"}, "/tests/dataPath/size"),
        ({"size": 2**41}, "/tests/dataPath/size"),
        ({"timeoutSeconds": 5}, "/tests/dataPath/timeoutSeconds"),
        ({"image": "busybox"}, "/tests/dataPath"),
    ],
)
def test_the_schema_refuses_bad_values(data_path_values: dict[str, Any], key: str) -> None:
    with pytest.raises(HelmFailed) as failure:
        run_helm_template({"tests": {"dataPath": data_path_values}})
    assert key in failure.value.stderr
