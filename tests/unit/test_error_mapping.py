"""helm failures become our exceptions, from real helm stderr (Helm 3 and Helm 4).

The committed files under helm_stderr/ were recorded by helm_stderr/record.py from real helm
runs; the live tests replay the same situations now with both binaries.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import vineyard_helm
from tests.support.paths import REPO
from tests.unit.helm_stderr.record import environments, scenarios
from vineyard_helm import errors
from vineyard_helm.errors import from_helm_failure, headline

HERE = Path(__file__).resolve().parent
RECORDED = sorted((HERE / "helm_stderr").glob("helm*/*.stderr"))


def _expected(name: str) -> type[Exception]:
    expected: type[Exception] = getattr(errors, name.split("__")[0])
    return expected


def test_recordings_cover_both_helm_majors() -> None:
    majors = {path.parent.name for path in RECORDED}
    assert majors == {"helm3", "helm4"}


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: f"{p.parent.name}-{p.stem}")
def test_recorded_stderr_maps_to_the_named_error(path: Path) -> None:
    error = from_helm_failure(1, path.read_text(), ["helm"])
    assert type(error) is _expected(path.stem)


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: f"{p.parent.name}-{p.stem}")
def test_helm_errors_keep_returncode_stderr_and_command(path: Path) -> None:
    stderr = path.read_text()
    error = from_helm_failure(1, stderr, ["helm", "status"])
    if isinstance(error, errors.HelmError):
        assert (error.returncode, error.stderr, error.command) == (1, stderr, ("helm", "status"))
        assert str(error) == headline(stderr).removeprefix("Error:").strip()


def test_the_headline_skips_helms_log_lines() -> None:
    stderr = (HERE / "helm_stderr/helm4/ClusterUnreachableError__install.stderr").read_text()
    assert stderr.startswith("level=ERROR")
    assert headline(stderr).startswith("Error: INSTALLATION FAILED:")


def test_schema_errors_from_helm_list_every_problem_with_a_dotted_path() -> None:
    for major in ("helm3", "helm4"):
        stderr = (HERE / f"helm_stderr/{major}/InvalidValuesError__schema.stderr").read_text()
        error = from_helm_failure(1, stderr)
        assert isinstance(error, errors.InvalidValuesError)
        assert [p.split(":")[0] for p in error.problems] == ["socket.volume.type", "vineyard.size"]


def test_nested_schema_problems_are_reported_as_their_innermost_paths() -> None:
    """Helm 3.18+ and 4 nest problems under "validation failed" and "'allOf' failed" lines,
    which only say that their children failed."""
    for major in ("helm3", "helm4"):
        stderr = (
            HERE / f"helm_stderr/{major}/InvalidValuesError__schema_nested.stderr"
        ).read_text()
        error = from_helm_failure(1, stderr)
        assert isinstance(error, errors.InvalidValuesError)
        assert error.problems == (
            "etcd.external.endpoints: minItems: got 0, want 1",
            "socket.volume.type: value must be one of 'hostPath', 'persistentVolumeClaim', "
            "'emptyDir'",
            "vineyard.metaTimeout: got string, want integer",
            "vineyard.size: got number, want null or string",
        )


def test_schema_problems_of_helm_before_3_18_keep_their_dotted_paths() -> None:
    """Helm 3.17 and older (gojsonschema) print "- <field>: <description>". No such binary is
    built here, so this one stderr is written out from helm 3.17's pkg/chartutil/jsonschema.go
    and gojsonschema's ResultError.String()."""
    stderr = (
        "Error: values don't meet the specifications of the schema(s) in the following "
        "chart(s):\nvineyard:\n"
        "- vineyard.size: Invalid type. Expected: string, given: integer\n"
        "- (root): Additional property vinyard is not allowed\n"
    )
    error = from_helm_failure(1, stderr)
    assert isinstance(error, errors.InvalidValuesError)
    assert error.problems == (
        "(root): Additional property vinyard is not allowed",
        "vineyard.size: Invalid type. Expected: string, given: integer",
    )


def test_values_files_and_set_expressions_helm_cannot_read_are_named() -> None:
    for major in ("helm3", "helm4"):
        recorded = HERE / "helm_stderr" / major
        missing = from_helm_failure(
            1, (recorded / "InvalidValuesError__values_file_missing.stderr").read_text()
        )
        assert isinstance(missing, errors.InvalidValuesError)
        (problem,) = missing.problems
        assert problem.endswith("/missing-values.yaml: no such file or directory")
        unparsable = from_helm_failure(
            1, (recorded / "InvalidValuesError__values_file_unparsable.stderr").read_text()
        )
        assert isinstance(unparsable, errors.InvalidValuesError)
        assert "/unparsable-values.yaml: not a YAML map of values: " in unparsable.problems[0]
        set_syntax = from_helm_failure(
            1, (recorded / "InvalidValuesError__set_syntax.stderr").read_text()
        )
        assert isinstance(set_syntax, errors.InvalidValuesError)
        assert set_syntax.problems == ('--set: key "size" has no value',)


def test_install_and_upgrade_prefixes_do_not_hide_a_values_problem() -> None:
    for verb in ("INSTALLATION", "UPGRADE"):
        error = from_helm_failure(1, f"Error: {verb} FAILED: open x.yaml: permission denied\n")
        assert isinstance(error, errors.InvalidValuesError)
        assert error.problems == ("x.yaml: permission denied",)


def test_every_error_is_a_vineyard_helm_error() -> None:
    for name in vineyard_helm.__all__:
        value = getattr(vineyard_helm, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, vineyard_helm.VineyardHelmError)


def test_an_unknown_failure_is_a_plain_helm_error() -> None:
    error = from_helm_failure(2, "Error: something new went wrong\n")
    assert type(error) is errors.HelmError
    assert str(error) == "something new went wrong"


# ---- live: the same situations, both binaries, now --------------------------------------------


def _live_scenarios() -> list[str]:
    with environments(None) as env:
        return sorted(scenarios(env))


@pytest.mark.parametrize("scenario", _live_scenarios())
def test_live_helm_failure_maps_to_the_named_error(helm: str, scenario: str) -> None:
    with environments(None) as env:
        command = scenarios(env)[scenario]
        result = subprocess.run([helm, *command], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert type(from_helm_failure(result.returncode, result.stderr)) is _expected(scenario)


def test_api_raises_cluster_unreachable(helm: str, unreachable_kubeconfig: Path) -> None:
    for call in (
        lambda: vineyard_helm.status(kubeconfig=unreachable_kubeconfig, helm=helm),
        lambda: vineyard_helm.uninstall(kubeconfig=unreachable_kubeconfig, helm=helm),
        lambda: vineyard_helm.install(kubeconfig=unreachable_kubeconfig, helm=helm, wait=False),
    ):
        with pytest.raises(vineyard_helm.ClusterUnreachableError):
            call()


def test_recorder_writes_what_helm_prints(helm: str) -> None:
    """The recorder itself works (so the committed recordings can be refreshed)."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "tests.unit.helm_stderr.record", helm, "--out", tmp],
            check=True, capture_output=True, timeout=300, cwd=REPO,
        )
        recorded = sorted(p.name for p in Path(tmp).glob("helm*/*.stderr"))
    assert recorded == sorted(f"{name}.stderr" for name in _live_scenarios())
    assert set(recorded) <= {p.name for p in RECORDED}

