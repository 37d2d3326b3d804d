"""The released wheel, installed with pip into a fresh venv outside the repository, renders and
installs the chart it carries: no checkout, no chart download."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from release_kit import BIN, REPO, Published, run

# `published` (hack/release.py, up to 600 s), pip install of the wheel (600 s), install (300 s).
pytestmark = pytest.mark.timeout(1800)

RENDER = """
import json, vineyard_helm
manifests = vineyard_helm.render()
print(json.dumps({"chart": str(vineyard_helm.chart_path()),
                  "version": vineyard_helm.__version__,
                  "kinds": sorted({m["kind"] for m in manifests})}))
"""

INSTALL = """
import json, sys, time, vineyard_helm
release = vineyard_helm.install(release="vineyard", namespace=sys.argv[1], timeout="180s")
# Other tests add and remove nodes on the shared cluster: a DaemonSet may briefly be short of
# one pod, so readiness is awaited with a deadline rather than read once.
deadline = time.monotonic() + 60
while not (status := vineyard_helm.status(release="vineyard", namespace=sys.argv[1])).ready:
    if time.monotonic() > deadline:
        break
    time.sleep(0.5)
print(json.dumps({"chart_version": release.chart_version, "ready": status.ready,
                  "status": status.to_dict()}, default=str))
"""


@pytest.fixture(scope="module")
def venv_python(published: Published, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """python of a fresh venv with the released wheel (and its dependencies from the package
    index) installed by pip, as a user would."""
    venv = tmp_path_factory.mktemp("user-venv") / "venv"
    (wheel,) = (published.dist / "python").glob("*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                          str(wheel)], capture_output=True, text=True, timeout=600,
                         cwd=venv.parent)
    assert pip.returncode == 0, pip.stderr
    return python


@pytest.fixture
def user_env(helm_env: dict[str, str]) -> dict[str, str]:
    """No trace of the checkout: not on PYTHONPATH, not the working directory."""
    env = {k: v for k, v in helm_env.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{BIN}{os.pathsep}/usr/bin:/bin"
    return env


def test_wheel_in_a_fresh_venv_renders_its_own_chart(
        venv_python: Path, published: Published, user_env: dict[str, str],
        tmp_path: Path) -> None:
    out = run([venv_python, "-c", RENDER], user_env, cwd=tmp_path)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    chart = Path(result["chart"])
    assert chart.is_relative_to(venv_python.parent.parent), chart  # inside the venv
    assert not chart.is_relative_to(REPO)
    assert result["version"] == published.version
    assert {"DaemonSet", "StatefulSet", "Service"} <= set(result["kinds"])


def test_wheel_in_a_fresh_venv_installs_its_chart_into_the_cluster(
        venv_python: Path, published: Published, cluster, namespace: str,
        user_env: dict[str, str], tmp_path: Path) -> None:
    env = {**user_env, "KUBECONFIG": str(cluster.kubeconfig)}
    out = run([venv_python, "-c", INSTALL, namespace], env, cwd=tmp_path, timeout=300)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["chart_version"] == published.version
    assert result["ready"], result["status"]
