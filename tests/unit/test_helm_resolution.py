"""Which helm runs once a platform wheel bundles one: helm=, then $VINEYARD_HELM_BINARY, then
the bundled helm, then PATH; what `--version` and `doctor` say of it; `vineyard-helm helm ...`
runs that same helm. The bundled helm is a fake here (a script in a directory laid out as a
platform wheel's vineyard_helm/_helm/); tests/release installs the real wheel."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vineyard_helm import HELM_ENV_VAR, HelmNotFoundError, bundled, cli
from vineyard_helm.helm import (
    FROM_ARGUMENT,
    FROM_BUNDLE,
    FROM_ENVIRONMENT,
    FROM_PATH,
    Helm,
    locate_helm,
)

FAKE_HELM = """#!/bin/sh
# A helm that says who it is; `version` answers like helm's --template does.
if [ "$1" = version ]; then echo "{version}"; exit 0; fi
echo "{name} $*"
exit {code}
"""


def fake_helm(directory: Path, name: str, *, version: str = "v4.9.9", code: int = 0) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "helm"
    path.write_text(FAKE_HELM.format(name=name, version=version, code=code))
    path.chmod(0o755)
    return path


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A helm in each place: a bundle (as a platform wheel lays it out), PATH, and two more
    for helm= and the environment variable. Nothing is chosen yet: the environment variable is
    unset and PATH holds the PATH helm only."""
    bundle = tmp_path / "_helm"
    helms = {
        FROM_BUNDLE: fake_helm(bundle, "bundled", version="v4.3.1"),
        FROM_PATH: fake_helm(tmp_path / "path-bin", "path", version="v3.22.0"),
        FROM_ENVIRONMENT: fake_helm(tmp_path / "env-bin", "environment"),
        FROM_ARGUMENT: fake_helm(tmp_path / "arg-bin", "argument"),
    }
    data = helms[FROM_BUNDLE].read_bytes()
    record = {
        "version": "v4.3.1",
        "sha256": hashlib.sha256(data).hexdigest(),
        "goos": "linux",
        "goarch": "amd64",
        "go": "go1.26.8",
        "binary": "helm",
    }
    (bundle / bundled.BUNDLE_RECORD).write_text(json.dumps(record))
    (bundle / "LICENSE").write_text("Apache License 2.0\n")
    monkeypatch.setattr(bundled, "BUNDLED_HELM_DIR", str(bundle))
    monkeypatch.setenv("PATH", f"{helms[FROM_PATH].parent}{os.pathsep}/usr/bin:/bin")
    monkeypatch.delenv(HELM_ENV_VAR, raising=False)
    return helms


@pytest.fixture
def no_bundle(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """This installation carries no helm (the pure wheel, a checkout)."""
    monkeypatch.setattr(bundled, "BUNDLED_HELM_DIR", str(tmp_path / "no-bundle"))


@pytest.fixture
def no_helm(no_bundle: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No helm anywhere: none bundled, none named, none on PATH."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv(HELM_ENV_VAR, raising=False)


def test_the_argument_wins_over_everything(
    places: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(HELM_ENV_VAR, str(places[FROM_ENVIRONMENT]))
    found = locate_helm(places[FROM_ARGUMENT])
    assert (found.path, found.origin) == (str(places[FROM_ARGUMENT]), FROM_ARGUMENT)


def test_the_environment_variable_wins_over_the_bundled_helm(
    places: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(HELM_ENV_VAR, str(places[FROM_ENVIRONMENT]))
    found = locate_helm()
    assert (found.path, found.origin) == (str(places[FROM_ENVIRONMENT]), FROM_ENVIRONMENT)


def test_the_bundled_helm_wins_over_path(places: dict[str, Path]) -> None:
    found = locate_helm()
    assert (found.path, found.origin) == (str(places[FROM_BUNDLE]), FROM_BUNDLE)


def test_path_is_used_where_nothing_is_bundled(places: dict[str, Path], no_bundle: None) -> None:
    found = locate_helm()
    assert (found.path, found.origin) == (str(places[FROM_PATH]), FROM_PATH)


def test_naming_helm_bare_in_the_environment_picks_paths_helm_over_the_bundled(
    places: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(HELM_ENV_VAR, "helm")
    found = locate_helm()
    assert (found.path, found.origin) == (str(places[FROM_PATH]), FROM_ENVIRONMENT)


def test_a_broken_bundled_helm_is_reported_not_skipped(places: dict[str, Path]) -> None:
    """The first place that names a helm decides: a bundled binary that lost its executable
    bit is an error naming it, not a silent switch to whatever PATH has."""
    places[FROM_BUNDLE].chmod(0o644)
    with pytest.raises(HelmNotFoundError, match=r"from bundled\) is not an executable"):
        locate_helm()


def test_helm_runs_know_where_their_binary_came_from(places: dict[str, Path]) -> None:
    runner = Helm()
    assert (runner.executable, runner.origin) == (str(places[FROM_BUNDLE]), FROM_BUNDLE)


def test_version_names_the_bundled_helm_and_its_recorded_version_without_running_it(
    places: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    places[FROM_BUNDLE].write_text("#!/bin/sh\nexit 99\n")  # running it would show
    assert cli.main(["--version"]) == 0
    first, second = capsys.readouterr().out.splitlines()
    assert first.startswith("vineyard-helm ")
    assert second == f"helm v4.3.1, bundled: {places[FROM_BUNDLE]}"


def test_version_names_paths_helm_and_the_missing_one(
    places: dict[str, Path],
    no_bundle: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["--version"]) == 0
    assert (
        capsys.readouterr().out.splitlines()[1].startswith(f"helm from PATH: {places[FROM_PATH]} ")
    )
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert cli.main(["--version"]) == 0
    assert "helm: none found (no 'helm' binary found on PATH)" in capsys.readouterr().out


def test_doctor_lists_every_place_in_order_and_the_used_helms_version(
    places: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["doctor", "-o", "json"]) == cli.EXIT_OK
    report = json.loads(capsys.readouterr().out)
    assert [e["origin"] for e in report["looked_for"]] == [
        FROM_ARGUMENT,
        FROM_ENVIRONMENT,
        FROM_BUNDLE,
        FROM_PATH,
    ]
    assert [e["used"] for e in report["looked_for"]] == [False, False, True, False]
    assert report["looked_for"][3]["path"] == str(places[FROM_PATH])  # shown, not used
    assert report["helm"] == {
        "path": str(places[FROM_BUNDLE]),
        "origin": FROM_BUNDLE,
        "version": "v4.3.1",
    }
    assert report["bundled"]["sha256_matches"] is True

    assert cli.main(["doctor", "--helm", str(places[FROM_ARGUMENT])]) == cli.EXIT_OK
    table = capsys.readouterr().out
    assert f"helm v4.9.9: {places[FROM_ARGUMENT]} (from helm=)" in table
    assert f"{FROM_BUNDLE}                {places[FROM_BUNDLE]}\n" in table
    assert "(matches the binary)" in table


def test_doctor_fails_when_the_bundled_binary_is_not_the_recorded_one(
    places: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    with places[FROM_BUNDLE].open("a") as handle:
        handle.write("# altered after the build\n")
    assert cli.main(["doctor"]) == cli.EXIT_HELM_FAILED
    captured = capsys.readouterr()
    assert "DOES NOT match" in captured.out
    assert "is not the binary this wheel was built with" in captured.err


def test_doctor_without_any_helm_exits_4_and_says_where_it_looked(
    no_helm: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["doctor"]) == cli.EXIT_HELM_NOT_FOUND
    captured = capsys.readouterr()
    assert "bundled helm: none" in captured.out
    assert "no 'helm' binary found on PATH" in captured.err


def test_helm_passthrough_runs_the_same_helm_with_its_exit_code(
    places: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["helm", "get", "values", "vineyard", "--all"]) == 0
    assert capsys.readouterr().out == "bundled get values vineyard --all\n"
    fake_helm(places[FROM_ENVIRONMENT].parent, "environment", code=3)
    monkeypatch.setenv(HELM_ENV_VAR, str(places[FROM_ENVIRONMENT]))
    assert cli.main(["helm", "--help"]) == 3  # helm's own options are helm's
    assert capsys.readouterr().out == "environment --help\n"


def test_helm_passthrough_without_helm_exits_4(
    no_helm: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["helm", "list"]) == cli.EXIT_HELM_NOT_FOUND
    assert "vineyard-helm: error: no 'helm' binary found on PATH" in capsys.readouterr().err


def test_the_console_command_becomes_helm(tmp_path: Path) -> None:
    """`python -m vineyard_helm helm ...` (and the console script) exec helm: its output, its
    exit code, its own process."""
    helm = tmp_path / "helm"
    helm.write_text('#!/bin/sh\necho "$$ $*"\nexit 5\n')  # its process id and arguments
    helm.chmod(0o755)
    env = {**os.environ, HELM_ENV_VAR: str(helm)}
    script = (
        "import os, sys\nprint(os.getpid(), flush=True)\n"
        "sys.argv = ['vineyard-helm', 'helm', 'status', 'x']\n"
        "from vineyard_helm.cli import main_entry\nmain_entry()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    python_pid, helm_says = done.stdout.splitlines()
    assert done.returncode == 5
    assert helm_says == f"{python_pid} status x"  # the same process: exec, not a child
