"""admission.enabled: the ValidatingAdmissionPolicy and binding that decide who may use the
socket. Rendered only where the API is served (`--api-versions` stands in for a cluster's
discovery here); asked for without it, the chart refuses with the reason. What the API server
makes of the CEL is checked on a real one in tests/e2e/test_e2e_admission_policy.py."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.support.chart_render import HelmFailed, Manifest, find, render, run_helm_template
from tests.support.paths import CHART

VAP_API = ("--api-versions", "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy")
ADMISSION_KINDS = {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
PVC = {"type": "persistentVolumeClaim", "persistentVolumeClaim": {"storageClass": "standard"}}
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def admission(allowed: dict[str, Any] | None = None, **values: Any) -> dict[str, Any]:
    """Values with the policy on, `allowed` as given, and any other top-level values."""
    return {"admission": {"enabled": True, "allowed": allowed or {}}, **values}


def render_policy(values: dict[str, Any], **kwargs: Any) -> list[Manifest]:
    return [m for m in render(values, extra_args=VAP_API, **kwargs) if m["kind"] in ADMISSION_KINDS]


def policy(values: dict[str, Any], **kwargs: Any) -> Manifest:
    return find(render_policy(values, **kwargs), "ValidatingAdmissionPolicy")


def variable(vap: Manifest, name: str) -> str:
    return next(v["expression"] for v in vap["spec"]["variables"] if v["name"] == name)


def refusal(values: dict[str, Any], *, helm_major: int = 4, with_api: bool = True) -> str:
    with pytest.raises(HelmFailed) as failure:
        run_helm_template(values, helm_major=helm_major, extra_args=VAP_API if with_api else ())
    return failure.value.stderr


# ---- rendered only where the API is served ---------------------------------------------------


def test_policy_is_off_by_default() -> None:
    kinds = {m["kind"] for m in render(extra_args=VAP_API)}
    assert not kinds & ADMISSION_KINDS


@pytest.mark.parametrize("helm_major", [3, 4])
def test_asking_for_it_without_the_api_fails_naming_the_api_and_the_way_out(
    helm_major: int,
) -> None:
    stderr = refusal(admission(), helm_major=helm_major, with_api=False)
    assert "INVALID VALUES" in stderr
    assert (
        "admission.enabled is true, but the cluster does not serve admissionregistration.k8s.io/v1"
        " ValidatingAdmissionPolicy (Kubernetes 1.30 or newer)"
    ) in stderr
    assert "set admission.enabled=false" in stderr
    assert (
        "helm template needs --api-versions admissionregistration.k8s.io/v1/"
        "ValidatingAdmissionPolicy"
    ) in stderr


def test_an_older_api_version_alone_does_not_count() -> None:
    """v1beta1 (Kubernetes 1.28-1.29, off by default there) is not what the chart renders."""
    beta = ("--api-versions", "admissionregistration.k8s.io/v1beta1/ValidatingAdmissionPolicy")
    with pytest.raises(HelmFailed) as failure:
        run_helm_template(admission(), extra_args=beta)
    assert "does not serve admissionregistration.k8s.io/v1" in failure.value.stderr


@pytest.mark.parametrize("helm_major", [3, 4])
@pytest.mark.parametrize("socket", ["hostPath", "persistentVolumeClaim"])
def test_with_the_api_a_policy_and_its_binding_render(socket: str, helm_major: int) -> None:
    volume = PVC if socket == "persistentVolumeClaim" else {"type": "hostPath"}
    objects = render_policy(admission(socket={"volume": volume}), helm_major=helm_major)
    assert sorted(m["kind"] for m in objects) == sorted(ADMISSION_KINDS)
    vap = find(objects, "ValidatingAdmissionPolicy")
    binding = find(objects, "ValidatingAdmissionPolicyBinding")
    name = "vineyard.vineyard.socket.v6d.io"
    assert vap["metadata"]["name"] == binding["metadata"]["name"] == name
    assert binding["spec"] == {"policyName": name, "validationActions": ["Deny"]}
    # Cluster-scoped: no namespace; the release's labels, component admission.
    for obj in objects:
        assert "namespace" not in obj["metadata"]
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == "vineyard"
        assert obj["metadata"]["labels"]["app.kubernetes.io/component"] == "admission"
        kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)
    spec = vap["spec"]
    assert spec["failurePolicy"] == "Fail"
    assert spec["matchConstraints"]["resourceRules"] == [
        {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]},
        {
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "operations": ["UPDATE"],
            "resources": ["pods/ephemeralcontainers"],
        },
    ]
    assert [v["expression"] for v in spec["validations"]] == [
        "variables.socketVolumes.size() == 0 || variables.allowed",
        "variables.groupFields.size() == 0 || variables.allowed",
    ]


def test_warn_action_reaches_the_binding() -> None:
    values = admission()
    values["admission"]["action"] = "Warn"
    binding = find(render_policy(values), "ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["validationActions"] == ["Warn"]


def test_names_stay_valid_and_apart_for_the_longest_release_and_namespace() -> None:
    release, namespace = "r" * 53, "n" * 63
    objects = render_policy(admission(), release=release, namespace=namespace)
    for obj in objects:
        name = obj["metadata"]["name"]
        assert DNS1123_SUBDOMAIN.match(name), name
        assert len(name) <= 253
    other = policy(admission(), release=release, namespace="m" * 63)["metadata"]["name"]
    assert other != objects[0]["metadata"]["name"]


# ---- values the chart refuses --------------------------------------------------------------


def test_emptydir_mode_has_nothing_to_admit() -> None:
    values = admission(
        socket={"volume": {"type": "emptyDir"}}, sidecars=[{"name": "w", "image": "w:1"}]
    )
    assert "admission.enabled is true with socket.volume.type=emptyDir" in refusal(values)


def test_a_pod_label_alone_is_refused_since_its_author_writes_it() -> None:
    stderr = refusal(admission({"podSelector": {"matchLabels": {"vineyard.v6d.io/client": "y"}}}))
    assert "admission.allowed.podSelector is the only criterion set" in stderr
    assert "admission.allowed.namespaceSelector or admission.allowed.serviceAccounts" in stderr
    # Beside a service account it is a criterion like the others.
    assert policy(
        admission({"podSelector": {"matchLabels": {"a": "b"}}, "serviceAccounts": ["ml/w"]})
    )


@pytest.mark.parametrize("helm_major", [3, 4])
@pytest.mark.parametrize(
    ("allowed", "key"),
    [
        ({"serviceAccounts": ["trainer"]}, "serviceAccounts"),
        ({"serviceAccounts": ["ml/Trainer"]}, "serviceAccounts"),
        ({"namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}, "values"),
        (
            {
                "namespaceSelector": {
                    "matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]
                }
            },
            "values",
        ),
        ({"namespaceSelector": {"matchLabels": {"a": "not a label value"}}}, "matchLabels"),
        ({"namespaceSelector": {"matchLabel": {"a": "b"}}}, "matchLabel"),
    ],
)
def test_the_schema_refuses_malformed_allowed_values(
    allowed: dict[str, Any], key: str, helm_major: int
) -> None:
    stderr = refusal(admission(allowed), helm_major=helm_major)
    assert "schema" in stderr, stderr
    assert key in stderr, stderr


# ---- what the policy looks at ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("host_path", "dirs"),
    [
        ("", ["var/run/vineyard/vineyard/vineyard", "run/vineyard/vineyard/vineyard"]),
        ("/data//vineyard-sockets/", ["data/vineyard-sockets"]),
        ("/run/vineyard-sockets", ["run/vineyard-sockets", "var/run/vineyard-sockets"]),
    ],
)
def test_the_socket_directory_is_compared_normalised_with_its_run_twin(
    host_path: str, dirs: list[str]
) -> None:
    vap = policy(admission(socket={"volume": {"hostPath": {"path": host_path}}}))
    assert json.loads(variable(vap, "socketDirs")) == dirs
    # The DaemonSet mounts exactly that directory (first entry, made absolute again).
    daemonset = find(
        render(admission(socket={"volume": {"hostPath": {"path": host_path}}}), extra_args=VAP_API),
        "DaemonSet",
    )
    [mounted] = [
        v["hostPath"]["path"]
        for v in daemonset["spec"]["template"]["spec"]["volumes"]
        if "hostPath" in v
    ]
    assert mounted.strip("/").replace("//", "/") == dirs[0]


def test_hostpath_mode_checks_host_paths_subpaths_and_every_container_kind() -> None:
    vap = policy(admission())
    names = [v["name"] for v in vap["spec"]["variables"]]
    assert "hostPathVolumes" in names
    mounts = variable(vap, "mountLists")
    for kind in ("containers", "initContainers", "ephemeralContainers"):
        assert f"object.spec.{kind}" in mounts
    volumes = variable(vap, "socketVolumes")
    assert "m.subPath" in volumes
    assert "m.subPathExpr" in volumes
    assert "persistentVolumeClaim" not in volumes


@pytest.mark.parametrize(("existing", "claim"), [("", "vineyard-socket"), ("shared", "shared")])
def test_pvc_mode_checks_the_socket_claim_in_the_release_namespace(
    existing: str, claim: str
) -> None:
    volume = {**PVC, "persistentVolumeClaim": {"existingClaim": existing, "storageClass": "x"}}
    vap = policy(admission(socket={"volume": volume}), namespace="data")
    volumes = variable(vap, "socketVolumes")
    assert f'v.persistentVolumeClaim.claimName == "{claim}"' in volumes
    assert 'request.namespace == "data"' in volumes
    assert "hostPath" not in json.dumps(vap["spec"]["variables"])


@pytest.mark.parametrize("socket", ["hostPath", "persistentVolumeClaim"])
def test_every_place_a_pod_asks_for_the_group_is_checked(socket: str) -> None:
    volume = PVC if socket == "persistentVolumeClaim" else {"type": "hostPath"}
    vap = policy(admission(socket={"volume": volume, "access": {"groupId": 4242}}))
    groups = variable(vap, "groupFields")
    for field in (
        "supplementalGroups.exists(g, g == 4242)",
        "fsGroup == 4242",
        "runAsGroup == 4242",
    ):
        assert field in groups, field
    for kind in ("containers", "initContainers", "ephemeralContainers"):
        assert f"object.spec.{kind}.filter(" in groups
    assert "2000" not in groups
    assert "socket group 4242" in vap["spec"]["validations"][1]["messageExpression"]


def test_the_releases_own_pods_are_exempt_and_carry_what_the_exemption_reads() -> None:
    values = admission(networkPolicy={"enabled": True}, etcd={"replicaCount": 3})
    manifests = render(values, release="vault", namespace="data", extra_args=VAP_API)
    vap = find(manifests, "ValidatingAdmissionPolicy")
    [condition] = vap["spec"]["matchConditions"]
    expression = condition["expression"]
    assert expression.startswith("!(")
    assert 'request.namespace == "data"' in expression
    assert 'object.metadata.labels["app.kubernetes.io/instance"] == "vault"' in expression
    assert 'object.metadata.labels["app.kubernetes.io/name"] == "vineyard"' in expression
    pod_labels = []
    for m in manifests:
        if m["kind"] == "Pod":
            pod_labels.append(m["metadata"]["labels"])
        elif m["kind"] in ("DaemonSet", "StatefulSet"):
            pod_labels.append(m["spec"]["template"]["metadata"]["labels"])
        elif m["kind"] == "CronJob":
            pod_labels.append(m["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"])
    assert len(pod_labels) >= 4  # vineyardd, etcd, defrag, test pods
    for labels in pod_labels:
        assert labels["app.kubernetes.io/instance"] == "vault"
        assert labels["app.kubernetes.io/name"] == "vineyard"


# ---- who is allowed: CEL and words ---------------------------------------------------------

EVERY_OPERATOR = {
    "matchLabels": {"team": "ml"},
    "matchExpressions": [
        {"key": "env", "operator": "In", "values": ["prod", "dev"]},
        {"key": "tier", "operator": "NotIn", "values": ["x"]},
        {"key": "vineyard.v6d.io/client", "operator": "Exists"},
        {"key": "frozen", "operator": "DoesNotExist"},
    ],
}


def test_a_label_selector_becomes_cel_with_kubernetes_semantics() -> None:
    vap = policy(admission({"namespaceSelector": EVERY_OPERATOR, "serviceAccounts": ["ml/a"]}))
    labels = "variables.namespaceLabels"
    assert variable(vap, "allowed") == " && ".join(
        [
            f'("team" in {labels} && {labels}["team"] == "ml")',
            f'("env" in {labels} && {labels}["env"] in ["prod","dev"])',
            f'!("tier" in {labels} && {labels}["tier"] in ["x"])',
            f'("vineyard.v6d.io/client" in {labels})',
            f'!("frozen" in {labels})',
            '(request.namespace + "/" + variables.serviceAccount) in ["ml/a"]',
        ]
    )


def test_nothing_allowed_means_only_the_releases_own_pods() -> None:
    vap = policy(admission())
    assert variable(vap, "allowed") == "false"
    message = vap["spec"]["validations"][0]["messageExpression"]
    assert "Allowed: only the release's own pods (admission.allowed sets no criteria)." in message


@pytest.mark.parametrize(
    ("allowed", "words"),
    [
        ({"serviceAccounts": ["ml/a"]}, "pods running as service account ml/a."),
        (
            {"serviceAccounts": ["ml/a", "ml/b"]},
            "pods running as one of the service accounts ml/a, ml/b.",
        ),
        (
            {"namespaceSelector": EVERY_OPERATOR},
            "pods in a namespace labelled team=ml,env in (prod,dev),tier notin (x),"
            "vineyard.v6d.io/client,!frozen.",
        ),
        (
            {
                "namespaceSelector": {"matchLabels": {"team": "ml"}},
                "podSelector": {"matchLabels": {"app": "trainer"}},
                "serviceAccounts": ["ml/trainer"],
            },
            "pods in a namespace labelled team=ml, labelled app=trainer and running as service"
            " account ml/trainer.",
        ),
    ],
)
def test_refusals_say_who_is_allowed_and_how_to_be(allowed: dict[str, Any], words: str) -> None:
    vap = policy(admission(allowed))
    for validation in vap["spec"]["validations"]:
        message = validation["messageExpression"]
        assert validation["reason"] == "Forbidden"
        assert f"Allowed: the release's own pods, and {words}" in message
        assert (
            "To be allowed, meet every one of those conditions, or have the release's"
            " admission.allowed values include the pod (helm upgrade vineyard -n vineyard)."
        ) in message


@pytest.mark.parametrize("socket", ["hostPath", "persistentVolumeClaim"])
def test_refusals_name_the_release_and_what_was_refused(socket: str) -> None:
    volume = PVC if socket == "persistentVolumeClaim" else {"type": "hostPath"}
    vap = policy(admission(socket={"volume": volume}), release="vault", namespace="data")
    mount, group = (v["messageExpression"] for v in vap["spec"]["validations"])
    release = 'vineyard release \\"vault\\" (namespace \\"data\\") refused pod'
    assert release in mount
    assert release in group
    what = (
        "it mounts the release's socket directory /var/run/vineyard/data/vault ("
        if socket == "hostPath"
        else 'it mounts the release\'s socket claim \\"vault-vineyard-socket\\" ('
    )
    assert what in mount
    assert "it carries the release's socket group 2000 (" in group


# ---- NOTES -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def notes_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the chart that renders NOTES.txt into a ConfigMap: `helm template` leaves NOTES
    out, and `helm install --dry-run` takes no --api-versions."""
    copy = tmp_path_factory.mktemp("notes") / "vineyard"
    shutil.copytree(CHART, copy)
    notes = (copy / "templates" / "NOTES.txt").read_text()
    (copy / "templates" / "_zz_notes_probe.tpl").write_text(
        '{{- define "probe.notes" }}' + notes + "{{- end }}"
    )
    (copy / "templates" / "zz-notes-probe.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes-probe}\n"
        'data:\n  notes: {{ include "probe.notes" . | toJson }}\n'
    )
    return copy


def notes(chart: Path, values: dict[str, Any]) -> str:
    out = run_helm_template(
        values, chart=chart, extra_args=(*VAP_API, "--show-only", "templates/zz-notes-probe.yaml")
    )
    return yaml.safe_load(out)["data"]["notes"]


def test_notes_mention_the_policy_only_when_it_is_on(notes_chart: Path) -> None:
    assert "Admission" not in notes(notes_chart, {})
    text = notes(notes_chart, admission({"serviceAccounts": ["ml/a"]}))
    assert "Admission: ValidatingAdmissionPolicy vineyard.vineyard.socket.v6d.io" in text
    assert (
        "refuses pods that mount /var/run/vineyard/vineyard/vineyard or carry group 2000 unless"
        " allowed (chart README, Who may use the socket)."
    ) in text
    assert "Allowed: the release's own pods, and pods running as service account ml/a." in text


def test_notes_in_pvc_mode_and_warn_action(notes_chart: Path) -> None:
    values = admission({"serviceAccounts": ["ml/a"]}, socket={"volume": PVC})
    values["admission"]["action"] = "Warn"
    text = notes(notes_chart, values)
    assert "warns about (action Warn: admitted, not refused) pods that mount claim" in text
    assert "claim vineyard-socket or carry group 2000" in text
    assert "Set admission.action=Deny to refuse them." in text
