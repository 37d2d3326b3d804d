"""Values are checked against values.schema.json before helm runs (every problem has a path),
then against the chart's own cross-field rules by an offline render (no cluster)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import vineyard_helm
from vineyard_helm import InvalidValuesError, validate
from vineyard_helm.values import format_path, schema_problems

# bad values -> the dotted paths that must be reported (every one of them)
BAD_VALUES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "unknown volume type": ({"socket": {"volume": {"type": "nfs"}}}, ["socket.volume.type"]),
    "size not a string": ({"vineyard": {"size": 12}}, ["vineyard.size"]),
    "pull policy": ({"image": {"pullPolicy": "Sometimes"}}, ["image.pullPolicy"]),
    "meta backend": ({"vineyard": {"meta": "redis"}}, ["vineyard.meta"]),
    "rpc port type": ({"vineyard": {"rpc": {"port": "9600"}}}, ["vineyard.rpc.port"]),
    "pull secret item": ({"imagePullSecrets": [{"name": 5}]}, ["imagePullSecrets[0].name"]),
    "several at once": (
        {"socket": {"volume": {"type": "nfs"}}, "vineyard": {"size": 12, "meta": "redis"}},
        ["socket.volume.type", "vineyard.meta", "vineyard.size"],
    ),
}


@pytest.mark.parametrize(("values", "paths"), BAD_VALUES.values(), ids=list(BAD_VALUES))
def test_each_problem_is_reported_with_its_dotted_path(
    values: dict[str, Any], paths: list[str]
) -> None:
    with pytest.raises(InvalidValuesError) as caught:
        validate(values)
    reported = [problem.split(": ", 1)[0] for problem in caught.value.problems]
    assert reported == paths
    for problem in caught.value.problems:
        assert problem in str(caught.value)


def test_message_names_the_allowed_choices() -> None:
    with pytest.raises(InvalidValuesError) as caught:
        validate({"socket": {"volume": {"type": "nfs"}}})
    (problem,) = caught.value.problems
    assert problem.startswith("socket.volume.type: 'nfs' is not one of [")
    assert "'hostPath'" in problem


def test_an_unknown_key_is_a_problem_when_the_schema_is_closed() -> None:
    with pytest.raises(InvalidValuesError) as caught:
        validate({"vineyard": {"sise": "1Gi"}})
    assert any(p.startswith("vineyard:") and "sise" in p for p in caught.value.problems)


def test_good_values_pass_and_come_back_merged(tmp_path: Path, helm: str) -> None:
    file = tmp_path / "v.yaml"
    file.write_text("vineyard:\n  size: 1Gi\nresources:\n  limits:\n    memory: 2Gi\n")
    merged = validate(
        [file, {"vineyard": {"meta": "local"}}], set_values=["etcd.enabled=false"], helm=helm
    )
    assert merged == {
        "vineyard": {"size": "1Gi", "meta": "local"},
        "resources": {"limits": {"memory": "2Gi"}},
        "etcd": {"enabled": False},
    }


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


def test_schema_problems_are_reported_without_running_helm() -> None:
    """The schema comes first: its problems need no helm (and the render never runs)."""
    with pytest.raises(InvalidValuesError, match=r"vineyard\.size"):
        validate({"vineyard": {"size": 12}}, helm="/nonexistent/helm")


def test_the_chart_rules_need_helm_and_say_so(tmp_path: Path) -> None:
    with pytest.raises(vineyard_helm.HelmNotFoundError):
        validate({"vineyard": {"size": "1Gi"}}, helm=tmp_path / "helm")


def test_validate_contacts_no_cluster(
    helm: str, unreachable_kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The offline render works with a kubeconfig naming a cluster nobody serves."""
    monkeypatch.setenv("KUBECONFIG", str(unreachable_kubeconfig))
    validate({"vineyard": {"size": "128Mi"}}, helm=helm)
    with pytest.raises(InvalidValuesError, match=r"is below vineyard\.size"):
        validate({"vineyard": {"size": "1Gi"}}, helm=helm)


def test_null_removes_a_default_before_validation_as_helm_does(helm: str) -> None:
    # helm deletes a defaulted key set to null: the schema then sees it absent, not null.
    validate({"vineyard": {"size": None}}, helm=helm)
    vineyard_helm.render({"vineyard": {"size": None}}, validate=False, helm=helm)
    with pytest.raises(InvalidValuesError, match="'resources' is a required property"):
        validate({"resources": None}, helm=helm)
    with pytest.raises(InvalidValuesError, match="resources"):
        vineyard_helm.render({"resources": None}, validate=False, helm=helm)


def test_every_ci_scenario_of_the_chart_is_valid(helm: str) -> None:
    for scenario in sorted((Path(vineyard_helm.chart_path()) / "ci").glob("*-values.yaml")):
        validate(scenario, helm=helm)


def test_format_path_marks_list_indexes() -> None:
    assert format_path(["a", 0, "b", 12]) == "a[0].b[12]"
    assert format_path([]) == "(root)"


def test_schema_problems_are_sorted_by_path() -> None:
    schema = {
        "type": "object",
        "properties": {"b": {"type": "string"}, "a": {"type": "string"}},
    }
    assert schema_problems({"b": 1, "a": 2}, schema) == [
        "a: 2 is not of type 'string'",
        "b: 1 is not of type 'string'",
    ]


def test_invalid_values_never_reach_helm(tmp_path: Path) -> None:
    """install/upgrade/render refuse values the schema rejects before running helm: a missing
    helm binary is not even noticed. (tests/e2e/test_e2e_bad_values.py checks, against a real
    API server, that nothing is created.)"""
    bad = {"socket": {"volume": {"type": "nfs"}}}
    missing = str(tmp_path / "helm")
    for call in (
        lambda: vineyard_helm.render(bad, helm=missing),
        lambda: vineyard_helm.install(bad, helm=missing),
        lambda: vineyard_helm.upgrade(bad, install=True, helm=missing),
    ):
        with pytest.raises(InvalidValuesError):
            call()


def test_a_bad_set_expression_is_invalid_values() -> None:
    with pytest.raises(InvalidValuesError, match="--set"):
        validate(set_values=["vineyard.size"])


def test_a_packaged_chart_archive_is_validated_with_its_own_schema(
    helm: str, tmp_path: Path
) -> None:
    import subprocess

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
