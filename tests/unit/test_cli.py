"""The vineyard-helm command: exit codes, output formats, one-line errors (no traceback)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import vineyard_helm
from tests.unit.status_fixture import METADATA, status_document
from vineyard_helm import Release, Resource, cli, errors
from vineyard_helm.helm_json import status_from_json


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def assert_one_clear_error(err: str) -> None:
    assert err.startswith("vineyard-helm: error: ")
    assert "Traceback" not in err


def test_validate_ok(tmp_path: Path, helm: str) -> None:
    values = tmp_path / "v.yaml"
    values.write_text("vineyard:\n  size: 128Mi\n")
    assert run("validate", "-f", str(values), "--set", "vineyard.meta=local", "--helm", helm) == (
        0,
        "values are valid\n",
        "",
    )


def test_validate_lists_every_problem_and_exits_3(helm: str) -> None:
    code, out, err = run(
        "validate", "--set", "socket.volume.type=nfs,vineyard.size=12", "--helm", helm
    )
    assert (code, out) == (cli.EXIT_INVALID_VALUES, "")
    assert_one_clear_error(err)
    assert "socket.volume.type: value must be one of 'hostPath'" in err
    assert "vineyard.size: got number, want null or string" in err


def test_validate_runs_the_charts_own_rules_and_exits_3(helm: str) -> None:
    code, out, err = run("validate", "--set", "vineyard.size=2Gi", "--helm", helm)
    assert (code, out) == (cli.EXIT_INVALID_VALUES, "")
    assert_one_clear_error(err)
    assert "resources.limits.memory (512Mi) is below vineyard.size (2Gi)" in err


@pytest.mark.parametrize("output", ["json", "yaml"])
def test_validate_machine_readable(output: str, helm4: str) -> None:
    code, out, _ = run("validate", "--set", "vineyard.size=12", "-o", output, "--helm", helm4)
    assert code == 3
    assert yaml.safe_load(out) == {
        "valid": False,
        "problems": ["vineyard.size: got number, want null or string"],
    }
    code, out, _ = run("validate", "-o", output, "--helm", helm4)
    assert (code, yaml.safe_load(out)) == (0, {"valid": True, "problems": []})


def test_render_yaml_is_helms_own_output(helm: str) -> None:
    code, out, _ = run("render", "--helm", helm, "--set", "vineyard.size=300Mi")
    assert code == 0
    template = [helm, "template", "vineyard", str(vineyard_helm.chart_path())]
    template += ["--namespace", "vineyard", "--set", "vineyard.size=300Mi"]
    assert out == subprocess.run(template, capture_output=True, text=True, check=True).stdout
    documents = [d for d in yaml.safe_load_all(out) if d]
    assert documents == vineyard_helm.render({"vineyard": {"size": "300Mi"}}, helm=helm)


def test_set_json_and_set_string_reach_helm(helm: str) -> None:
    code, out, err = run(
        "render",
        "--helm",
        helm,
        "-o",
        "json",
        "--set-json",
        'vineyard.extraArgs=["--allocator=mimalloc"]',
        "--set-string",
        "socket.access.mode=0700",
    )
    assert code == 0, err
    daemonset = next(m for m in json.loads(out) if m["kind"] == "DaemonSet")
    pod = daemonset["spec"]["template"]["spec"]
    assert "--allocator=mimalloc" in pod["containers"][0]["args"]
    assert "chmod 0700" in " ".join(pod["initContainers"][0]["command"])


def test_render_json_and_table(helm: str) -> None:
    code, out, _ = run("render", "--helm", helm, "-o", "json", "v6d", "-n", "data")
    manifests = json.loads(out)
    assert code == 0
    assert ("DaemonSet", "v6d-vineyard", "data") in {
        (m["kind"], m["metadata"]["name"], m["metadata"].get("namespace")) for m in manifests
    }
    code, out, _ = run("render", "--helm", helm, "-o", "table")
    assert out.splitlines()[0].split() == ["KIND", "NAME", "API", "VERSION"]
    assert any(line.split()[:2] == ["DaemonSet", "vineyard"] for line in out.splitlines())


@pytest.mark.parametrize(
    "argv",
    [(), ("frobnicate",), ("render", "-o", "xml"), ("status", "--no-such-flag")],
)
def test_usage_errors_exit_2(argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(list(argv)) == cli.EXIT_USAGE
    assert "usage: vineyard-helm" in capsys.readouterr().err


def test_help_and_version_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    assert "Exit codes:" in capsys.readouterr().out
    assert cli.main(["--version"]) == 0
    # The second line says which helm runs (tests/unit/test_helm_resolution.py).
    first_line = capsys.readouterr().out.splitlines()[0]
    assert first_line == f"vineyard-helm {vineyard_helm.__version__}"


def test_helm_not_found_exits_4(tmp_path: Path) -> None:
    code, _, err = run("render", "--helm", str(tmp_path / "helm"))
    assert code == cli.EXIT_HELM_NOT_FOUND
    assert_one_clear_error(err)
    assert "helm.sh/docs/intro/install" in err


def test_unreachable_cluster_exits_5(helm: str, unreachable_kubeconfig: Path) -> None:
    for argv in (("status",), ("uninstall",), ("install", "--no-wait")):
        code, _, err = run(*argv, "--helm", helm, "--kubeconfig", str(unreachable_kubeconfig))
        assert code == cli.EXIT_CLUSTER_UNREACHABLE, argv
        assert_one_clear_error(err)
        assert "unreachable" in err.lower()


def test_missing_chart_exits_9(helm: str, tmp_path: Path) -> None:
    code, _, err = run("render", "--helm", helm, "--chart", str(tmp_path / "no-chart"))
    assert code == cli.EXIT_CHART_NOT_FOUND
    assert_one_clear_error(err)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.ReleaseExistsError("x"), 7),
        (errors.WaitTimeoutError("x"), 8),
        (errors.ChartNotFoundError("x"), 9),
        (errors.ClusterUnreachableError("x"), 5),
        (errors.HelmError("x"), 1),
        (errors.VineyardHelmError("x"), 1),
        (errors.InvalidValuesError(["a: b"]), 3),
        (errors.HelmNotFoundError("x"), 4),
    ],
)
def test_each_error_has_its_documented_exit_code(
    error: errors.VineyardHelmError, code: int
) -> None:
    assert cli.exit_code_for(error) == code
    assert f"\n{code} " in (cli.__doc__ or "")


def test_ctrl_c_exits_130(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(vineyard_helm.api, "status", interrupted)
    assert run("status")[0] == cli.EXIT_INTERRUPTED


@pytest.fixture
def fake_cluster_verbs(monkeypatch: pytest.MonkeyPatch, helm4: str) -> dict[str, Any]:
    """install/upgrade/status replaced by stand-ins returning real records, capturing options."""
    calls: dict[str, Any] = {}
    release = Release(
        "vineyard",
        "vineyard",
        1,
        "deployed",
        "vineyard",
        "0.1.0",
        "0.24.2",
        resources=(Resource("DaemonSet", "vineyard", "vineyard", "vineyard"),),
    )
    report = status_from_json(status_document(helm4), metadata=METADATA)

    def install(values: Any, **options: Any) -> Release:
        calls["install"] = (values, options)
        if options.get("progress") is not None:
            options["progress"](report)
        return release

    def upgrade(values: Any, **options: Any) -> Release:
        calls["upgrade"] = (values, options)
        return release

    monkeypatch.setattr(vineyard_helm.api, "install", install)
    monkeypatch.setattr(vineyard_helm.api, "upgrade", upgrade)
    monkeypatch.setattr(vineyard_helm.api, "status", lambda *a, **k: report)
    return calls


def test_install_passes_options_and_prints_the_release(
    fake_cluster_verbs: dict[str, Any], tmp_path: Path
) -> None:
    values = tmp_path / "v.yaml"
    values.write_text("{}\n")
    code, out, err = run(
        "install",
        "v6d",
        "-n",
        "data",
        "-f",
        str(values),
        "--set",
        "a=1",
        "--set-string",
        "b=2",
        "--timeout",
        "90s",
        "--rollback-on-failure",
        "--kube-context",
        "kind",
    )
    assert code == 0
    passed_values, options = fake_cluster_verbs["install"]
    assert passed_values == [str(values)]
    assert options["release"] == "v6d"
    assert options["namespace"] == "data"
    assert options["set_values"] == ["a=1"]
    assert options["set_string_values"] == ["b=2"]
    assert options["timeout"] == "90s"
    assert options["rollback_on_failure"] is True
    assert options["context"] == "kind"
    assert options["wait"] is True
    assert "STATUS:      deployed" in out
    assert "DaemonSet  vineyard" in out
    assert err.startswith("waiting: vineyard: deployed; vineyardd 2/3 ready")


def test_install_no_wait_has_no_progress(fake_cluster_verbs: dict[str, Any]) -> None:
    code, _, err = run("install", "--no-wait")
    assert code == 0
    assert fake_cluster_verbs["install"][1]["progress"] is None
    assert err == ""


@pytest.mark.parametrize("output", ["json", "yaml"])
def test_install_and_upgrade_machine_readable(
    fake_cluster_verbs: dict[str, Any], output: str
) -> None:
    for verb in ("install", "upgrade"):
        code, out, _ = run(verb, "-o", output, "--no-progress")
        data = yaml.safe_load(out)
        assert code == 0
        assert data["revision"] == 1
        assert data["resources"] == [
            {
                "kind": "DaemonSet",
                "name": "vineyard",
                "namespace": "vineyard",
                "release": "vineyard",
                "api_version": "",
            }
        ]
    assert fake_cluster_verbs["upgrade"][1]["install"] is False


def test_status_formats(fake_cluster_verbs: dict[str, Any]) -> None:
    code, out, _ = run("status")
    assert code == 0
    assert "vineyardd: 2/3 pods ready" in out
    for output in ("json", "yaml"):
        code, out, _ = run("status", "-o", output)
        data = yaml.safe_load(out)
        assert data["ready"] is False
        assert data["release"]["revision"] == 3
        assert [p["node"] for p in data["vineyardd"]["pods"]] == ["node-0", "node-1", "node-2"]
        assert data["socket"]["host_path"] == "/var/run/vineyard/vineyard/vineyard"


def test_python_dash_m_and_console_script_run_the_same_cli(helm: str) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "vineyard_helm",
            "validate",
            "--set",
            "vineyard.size=12",
            "--helm",
            helm,
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 3
    assert result.stderr.startswith("vineyard-helm: error: invalid values")
    script = Path(sys.executable).parent / "vineyard-helm"
    if script.exists():  # installed (pip install -e .): the entry point
        result = subprocess.run(
            [str(script), "render", "--helm", helm, "-o", "table"], capture_output=True, text=True
        )
        assert result.returncode == 0
        assert "DaemonSet" in result.stdout


def test_a_failing_command_prints_exactly_one_line(helm: str, tmp_path: Path) -> None:
    """In a real process (no pytest log capture): no log record leaks beside the one line."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "vineyard_helm",
            "render",
            "--helm",
            helm,
            "--chart",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == cli.EXIT_CHART_NOT_FOUND
    assert result.stderr.splitlines() == [
        f'vineyard-helm: error: path "{tmp_path / "x"}" not found'
    ]


def test_verbose_shows_the_helm_commands(helm: str) -> None:
    code, _, err = run("render", "-v", "--helm", helm, "-o", "table")
    assert code == 0
    assert f"vineyard-helm: running command: {helm} template vineyard" in err
