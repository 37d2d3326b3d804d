"""The wheel carries the chart; the installed package works with no checkout around it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support.paths import CHART, REPO

HEAVY = ("pyhelm3", "pydantic", "jsonschema", "yaml", "asyncio", "dataclasses", "pathlib")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("vineyard_helm-*.whl")
    return built


def chart_version() -> str:
    match = re.search(r"(?m)^version: *(\S+)", (CHART / "Chart.yaml").read_text())
    assert match is not None
    return match.group(1)


def test_wheel_version_is_the_charts(wheel: Path) -> None:
    assert wheel.name.startswith(f"vineyard_helm-{chart_version()}-")


def test_wheel_contains_the_whole_chart_and_the_type_marker(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in CHART.rglob("*"):
        if path.is_file():
            assert f"vineyard_helm/chart/{path.relative_to(CHART).as_posix()}" in names
    assert "vineyard_helm/chart/values.schema.json" in names
    assert "vineyard_helm/py.typed" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert (
        "vineyard-helm = vineyard_helm.cli:main_entry"
        in zipfile.ZipFile(wheel).read(entry_points).decode()
    )


def test_installed_wheel_renders_without_a_checkout(
    wheel: Path, tmp_path: Path, helm4: str
) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = (
        "import vineyard_helm\n"
        "print(vineyard_helm.chart_path())\n"
        "print(sorted({m['kind'] for m in vineyard_helm.render()}))\n"
        "print(vineyard_helm.__version__)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target), "VINEYARD_HELM_BINARY": helm4}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    chart_dir, kinds, version = result.stdout.splitlines()
    assert Path(chart_dir) == target / "vineyard_helm" / "chart"
    assert "DaemonSet" in kinds
    assert version == chart_version()


def _modules_after(code: str) -> set[str]:
    code += "\nimport sys; print(' '.join(sorted(m for m in sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return set(result.stdout.split())


def test_import_is_light() -> None:
    """`import vineyard_helm` loads no submodule and nothing heavy: names load on first use."""
    loaded = _modules_after("import vineyard_helm")
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}
    assert {m for m in loaded if m.startswith("vineyard_helm")} == {"vineyard_helm"}


def test_cli_version_and_help_load_nothing_heavy() -> None:
    for argv in (["--version"], ["--help"], ["render", "--help"]):
        loaded = _modules_after(
            "import contextlib, io\nfrom vineyard_helm import cli\n"
            f"with contextlib.redirect_stdout(io.StringIO()): cli.main({argv!r})"
        )
        assert "vineyard_helm.cli" in loaded
        assert not {m for m in loaded if m.split(".")[0] in HEAVY}, argv


def test_the_wheel_depends_on_pyyaml_alone(wheel: Path) -> None:
    """helm interprets values and runs the schema; no pyhelm3 (see vineyard_helm/helm.py) and
    no jsonschema."""
    archive = zipfile.ZipFile(wheel)
    metadata = archive.read(next(n for n in archive.namelist() if n.endswith("METADATA")))
    requires = [
        line.split(":", 1)[1].strip()
        for line in metadata.decode().splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    ]
    assert [r.lower() for r in requires] == ["pyyaml>=6.0"]
