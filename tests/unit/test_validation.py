"""validate() is an offline `helm template`: helm checks values.schema.json (every problem with
its dotted path), the chart's own cross-field rules run, and no cluster is contacted. Values
reach helm unchanged: files, dicts and --set/--set-string/--set-json, in the order given."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

import vineyard_helm
from vineyard_helm import InvalidValuesError, validate

# bad values -> the dotted paths that must be reported (every one of them)
BAD_VALUES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "unknown volume type": ({"socket": {"volume": {"type": "nfs"}}}, ["socket.volume.type"]),
    "size not a string": ({"vineyard": {"size": 12}}, ["vineyard.size"]),
    "pull policy": ({"image": {"pullPolicy": "Sometimes"}}, ["image.pullPolicy"]),
    "meta backend": ({"vineyard": {"meta": "redis"}}, ["vineyard.meta"]),
    "rpc port type": ({"vineyard": {"rpc": {"port": "9600"}}}, ["vineyard.rpc.port"]),
    "pull secret item": ({"imagePullSecrets": [{"name": 5}]}, ["imagePullSecrets[0].name"]),
    "if/then rule": ({"etcd": {"enabled": False}}, ["etcd.external.endpoints"]),
    "several at once": (
        {"socket": {"volume": {"type": "nfs"}}, "vineyard": {"size": 12, "meta": "redis"}},
        ["socket.volume.type", "vineyard.meta", "vineyard.size"],
    ),
}


@pytest.mark.parametrize(("values", "paths"), BAD_VALUES.values(), ids=list(BAD_VALUES))
def test_each_problem_is_reported_with_its_dotted_path(
    values: dict[str, Any], paths: list[str], helm: str
) -> None:
    with pytest.raises(InvalidValuesError) as caught:
        validate(values, helm=helm)
    reported = [problem.split(": ", 1)[0] for problem in caught.value.problems]
    assert reported == paths
    for problem in caught.value.problems:
        assert problem in str(caught.value)
    assert "rejected by helm" in str(caught.value)


def test_message_names_the_allowed_choices(helm: str) -> None:
    with pytest.raises(InvalidValuesError) as caught:
        validate({"socket": {"volume": {"type": "nfs"}}}, helm=helm)
    (problem,) = caught.value.problems
    assert problem == (
        "socket.volume.type: value must be one of 'hostPath', 'persistentVolumeClaim', 'emptyDir'"
    )


def test_an_unknown_key_is_a_problem_because_the_schema_is_closed(helm: str) -> None:
    with pytest.raises(InvalidValuesError) as caught:
        validate({"vineyard": {"sise": "1Gi"}}, helm=helm)
    assert caught.value.problems == ("vineyard: additional properties 'sise' not allowed",)


def test_good_values_pass(tmp_path: Path, helm: str) -> None:
    file = tmp_path / "v.yaml"
    file.write_text("vineyard:\n  size: 1Gi\nresources:\n  limits:\n    memory: 2Gi\n")
    assert (
        validate(
            [file, {"vineyard": {"meta": "local"}}],
            set_values=["etcd.enabled=false"],
            set_json_values=['vineyard.extraArgs=["--allocator=mimalloc"]'],
            helm=helm,
        )
        is None
    )


# values the schema accepts but the chart's validateValues refuses -> what each message names
CHART_RULES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "memory limit below size": (
        {"vineyard": {"size": "1Gi"}},
        ["resources.limits.memory (512Mi) is below vineyard.size (1Gi)"],
    ),
    "explicit limit below size": (
        {"vineyard": {"size": "300Mi"}, "resources": {"limits": {"memory": "256Mi"}}},
        ["resources.limits.memory (256Mi) is below vineyard.size (300Mi)"],
    ),
    "spill rates in the wrong order": (
        {"vineyard": {"spill": {"path": "/spill", "lowerRate": 0.9, "upperRate": 0.5}}},
        ["vineyard.spill.lowerRate (0.9) must be below vineyard.spill.upperRate (0.5)"],
    ),
    "both at once": (
        {
            "vineyard": {"size": "2Gi", "spill": {"path": "/s", "lowerRate": 0.8}},
        },
        [
            "resources.limits.memory (512Mi) is below vineyard.size (2Gi)",
            "vineyard.spill.lowerRate (0.8) must be below vineyard.spill.upperRate (0.8)",
        ],
    ),
}


@pytest.mark.parametrize(("values", "starts"), CHART_RULES.values(), ids=list(CHART_RULES))
def test_the_charts_cross_field_rules_are_checked_too(
    values: dict[str, Any], starts: list[str], helm: str
) -> None:
    with pytest.raises(InvalidValuesError) as caught:
        validate(values, helm=helm)
    problems = caught.value.problems
    assert len(problems) == len(starts), problems
    for problem, start in zip(problems, starts, strict=True):
        assert problem.startswith(start), problems
    assert "rejected by the chart" in str(caught.value)


def test_spill_rates_are_not_checked_while_spilling_is_off(helm: str) -> None:
    validate({"vineyard": {"spill": {"lowerRate": 0.9, "upperRate": 0.5}}}, helm=helm)


def test_validate_needs_helm_and_says_so(tmp_path: Path) -> None:
    with pytest.raises(vineyard_helm.HelmNotFoundError, match=r"helm\.sh/docs/intro/install"):
        validate({"vineyard": {"size": 12}}, helm=tmp_path / "helm")


def test_validate_contacts_no_cluster(
    helm: str, unreachable_kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The offline render works with a kubeconfig naming a cluster nobody serves."""
    monkeypatch.setenv("KUBECONFIG", str(unreachable_kubeconfig))
    validate({"vineyard": {"size": "128Mi"}}, helm=helm)
    with pytest.raises(InvalidValuesError, match=r"is below vineyard\.size"):
        validate({"vineyard": {"size": "1Gi"}}, helm=helm)


def test_null_removes_a_default_as_helm_does(helm: str) -> None:
    # helm deletes a defaulted key set to null: the schema then sees it absent, not null.
    validate({"vineyard": {"size": None}}, helm=helm)
    with pytest.raises(InvalidValuesError) as caught:
        validate({"resources": None}, helm=helm)
    assert caught.value.problems == ("(root): missing property 'resources'",)


def test_skipping_the_schema_still_runs_the_charts_rules(helm: str) -> None:
    manifests = vineyard_helm.render(
        {"vineyard": {"rpc": {"port": "9700"}}}, validate=False, helm=helm
    )
    assert manifests
    with pytest.raises(InvalidValuesError, match="rejected by the chart"):
        vineyard_helm.render({"vineyard": {"size": "1Gi"}}, validate=False, helm=helm)


def test_every_ci_scenario_of_the_chart_is_valid(helm: str) -> None:
    for scenario in sorted((Path(vineyard_helm.chart_path()) / "ci").glob("*-values.yaml")):
        validate(scenario, helm=helm)


@pytest.mark.parametrize(
    ("flag", "expression"),
    [("set_values", "vineyard.size"), ("set_string_values", "x"), ("set_json_values", "x={")],
)
def test_an_unparsable_set_expression_is_invalid_values(
    helm: str, flag: str, expression: str
) -> None:
    with pytest.raises(InvalidValuesError) as caught:
        validate(helm=helm, **{flag: [expression]})
    (problem,) = caught.value.problems
    option = {"set_values": "--set", "set_string_values": "--set-string"}.get(flag, "--set-json")
    assert problem.startswith(f"{option}: ")


def test_a_values_file_helm_cannot_read_or_parse_is_named(helm: str, tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(InvalidValuesError) as caught:
        validate(missing, helm=helm)
    assert caught.value.problems == (f"{missing}: no such file or directory",)
    for text in ("vineyard: [unclosed", "- a list\n", "42"):
        broken = tmp_path / "broken.yaml"
        broken.write_text(text)
        with pytest.raises(InvalidValuesError) as caught:
            validate(broken, helm=helm)
        (problem,) = caught.value.problems
        assert problem.startswith(f"{broken}: not a YAML map of values: "), problem


def test_a_source_that_is_neither_a_mapping_nor_a_path_is_a_type_error(helm4: str) -> None:
    with pytest.raises(TypeError, match="mapping or a YAML file path"):
        validate([42], helm=helm4)  # type: ignore[list-item]


def test_layers_reach_helm_in_order_and_temporary_files_are_removed(
    helm: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dict, file, dict: the first dict on stdin, the second as a temporary file, in order."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    file = tmp_path / "middle.yaml"
    file.write_text("vineyard:\n  size: 100Mi\n  metaTimeout: 30\n")
    manifests = vineyard_helm.render(
        [
            {"vineyard": {"size": "64Mi", "compression": False}},
            file,
            {"vineyard": {"size": "80Mi"}},
        ],
        set_values=["vineyard.metaTimeout=45"],
        helm=helm,
    )
    daemonset = next(m for m in manifests if m["kind"] == "DaemonSet")
    args = daemonset["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--size=80Mi" in args
    assert "--compression=false" in args
    assert "--meta_timeout=45" in args
    assert sorted(p.name for p in tmp_path.iterdir()) == ["middle.yaml"]


def test_a_packaged_chart_archive_is_validated_with_its_own_schema(
    helm: str, tmp_path: Path
) -> None:
    subprocess.run(
        [helm, "package", str(vineyard_helm.chart_path()), "-d", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    (archive,) = tmp_path.glob("vineyard-*.tgz")
    with pytest.raises(InvalidValuesError, match=r"socket\.volume\.type"):
        validate({"socket": {"volume": {"type": "nfs"}}}, chart=archive, helm=helm)
    with pytest.raises(InvalidValuesError, match=r"is below vineyard\.size"):
        validate({"vineyard": {"size": "1Gi"}}, chart=archive, helm=helm)
    validate({"vineyard": {"size": "128Mi"}}, chart=archive, helm=helm)


def test_dicts_are_sent_as_json_so_types_are_kept(helm: str) -> None:
    """A string that looks like a number stays a string (no --set coercion)."""
    with pytest.raises(InvalidValuesError, match=r"vineyard\.rpc\.port: got string"):
        validate(json.loads('{"vineyard": {"rpc": {"port": "9600"}}}'), helm=helm)
