"""helm lint --strict for every scenario under Helm 3 and 4, and chart-testing's ct lint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.chart_render import render
from tests.support.helm import helm_binary
from tests.support.paths import BIN, CHART, CI_DIR, REPO, SCENARIOS


@pytest.mark.parametrize("helm_major", [3, 4])
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_helm_lint_strict_passes(scenario: str, helm_major: int) -> None:
    proc = subprocess.run(
        [
            helm_binary(helm_major),
            "lint",
            "--strict",
            str(CHART),
            "-f",
            str(CI_DIR / f"{scenario}-values.yaml"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[WARNING]" not in proc.stdout, proc.stdout
    assert "[ERROR]" not in proc.stdout, proc.stdout


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_helm_3_and_helm_4_render_identically(scenario: str) -> None:
    """Same objects, same order. (Helm 4 only adds a blank line before each `---`.)"""
    assert render(scenario=scenario, helm_major=3) == render(scenario=scenario, helm_major=4)


def chart_testing_etc() -> Path:
    """chart-testing's own chart_schema.yaml and lintconf.yaml ship in its module, not in the
    binary: find them in the module cache at the version tools/ct/go.mod pins."""
    proc = subprocess.run(
        ["go", "list", "-m", "-json", "github.com/helm/chart-testing/v3"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO / "tools" / "ct",
    )
    return Path(json.loads(proc.stdout)["Dir"]) / "etc"


@pytest.mark.chart_testing
def test_chart_testing_lint_passes() -> None:
    etc = chart_testing_etc()
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    proc = subprocess.run(
        [
            str(BIN / "ct"),
            "lint",
            "--config",
            str(REPO / "ct.yaml"),
            "--charts",
            str(CHART),
            "--chart-yaml-schema",
            str(etc / "chart_schema.yaml"),
            "--lint-conf",
            str(etc / "lintconf.yaml"),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "All charts linted successfully" in proc.stdout + proc.stderr
