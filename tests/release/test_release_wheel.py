"""The released wheels, installed with pip into fresh venvs outside the repository, as users
install them: no checkout, no chart download.

- The pure wheel, with helm on PATH, renders and installs the chart it carries; with no helm
  anywhere it says so clearly (HelmNotFoundError, exit code 4), as before platform wheels.
- This machine's platform wheel, in a venv whose PATH has no helm, runs the seed's Python flow
  (start_vineyardd, the objects checked in the cluster, delete_kubernetes_objects), install,
  upgrade and uninstall, and the CLI, all with the helm it carries; the order in which helm is
  looked for (helm=, $VINEYARD_HELM_BINARY, bundled, PATH) is checked case by case there.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.release.release_kit import Published, python_dist, run
from tests.support.figures import record_timing
from tests.support.kube import daemonset, kube, pods, release_objects, statefulset
from tests.support.paths import BIN, REPO

# `published` (hack/release.py, up to 600 s), pip install of the wheel (600 s), install (300 s).
pytestmark = pytest.mark.timeout(1800)

NO_HELM_PATH = f"/usr/bin{os.pathsep}/bin"

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

# The seed's flow, as a notebook would run it. It stops between start and delete (a line on
# stdin) for the test to look at the cluster itself.
SEED_FLOW = """
import json, sys, time
begin = time.monotonic()
from vineyard_helm.deploy.kubernetes import delete_kubernetes_objects, start_vineyardd
resources = start_vineyardd(namespace=sys.argv[1], size="256Mi", rpc_socket_port=9700)
print(json.dumps({"resources": [[r.kind, r.name] for r in resources],
                  "seconds": time.monotonic() - begin}), flush=True)
sys.stdin.readline()
begin = time.monotonic()
delete_kubernetes_objects(resources, wait=True, timeout_seconds=300)
print(json.dumps({"seconds": time.monotonic() - begin}), flush=True)
"""

LIFECYCLE = """
import json, sys, time, vineyard_helm
from vineyard_helm.helm import Helm
namespace, seconds = sys.argv[1], {}
begin = time.monotonic()
installed = vineyard_helm.install({"vineyard": {"size": "256Mi"}}, namespace=namespace,
                                  timeout="180s")
seconds["install"] = time.monotonic() - begin
begin = time.monotonic()
upgraded = vineyard_helm.upgrade(set_values=["vineyard.size=300Mi"], namespace=namespace,
                                 reuse_values=True, timeout="180s")
seconds["upgrade"] = time.monotonic() - begin
begin = time.monotonic()
vineyard_helm.uninstall(namespace=namespace, timeout="180s")
seconds["uninstall"] = time.monotonic() - begin
helm = Helm()
print(json.dumps({"revisions": [installed.revision, upgraded.revision], "seconds": seconds,
                  "helm": [helm.executable, helm.origin]}))
"""


def fresh_venv(wheel: Path, root: Path) -> Path:
    """python of a new venv with `wheel` (and its dependencies from the package index)
    installed by pip, as a user would."""
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                          str(wheel)], capture_output=True, text=True, timeout=600, cwd=root)
    assert pip.returncode == 0, pip.stderr
    return python


@pytest.fixture(scope="module")
def venv_python(published: Published, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pure wheel's venv."""
    pure, _ = python_dist(published.dist)
    return fresh_venv(pure, tmp_path_factory.mktemp("pure-venv"))


@pytest.fixture(scope="module")
def bundled_python(published: Published, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The venv of this machine's platform wheel (the one helm it carries can run)."""
    _, (platform_wheel,) = python_dist(published.dist)
    return fresh_venv(platform_wheel, tmp_path_factory.mktemp("platform-venv"))


@pytest.fixture
def user_env(helm_env: dict[str, str]) -> dict[str, str]:
    """No trace of the checkout: not on PYTHONPATH, not the working directory; helm on PATH."""
    env = {k: v for k, v in helm_env.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "VINEYARD_HELM_BINARY")}
    env["PATH"] = f"{BIN}{os.pathsep}{NO_HELM_PATH}"
    return env


@pytest.fixture
def no_helm_env(user_env: dict[str, str]) -> dict[str, str]:
    """As user_env, but no helm anywhere on PATH."""
    assert shutil.which("helm", path=NO_HELM_PATH) is None, "this machine has a system helm"
    return {**user_env, "PATH": NO_HELM_PATH}


def last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def left_behind(cluster, namespace: str) -> set[tuple[str, str]]:
    """The release's objects still there after an uninstall, but the etcd members' claims:
    Kubernetes keeps a StatefulSet's claims (the data) when the StatefulSet goes."""
    return {o for o in release_objects(cluster, namespace, "vineyard")
            if o[0] != "PersistentVolumeClaim"}


# ---- the pure wheel -------------------------------------------------------------------------


def test_wheel_in_a_fresh_venv_renders_its_own_chart(
        venv_python: Path, published: Published, user_env: dict[str, str],
        tmp_path: Path) -> None:
    out = run([venv_python, "-c", RENDER], user_env, cwd=tmp_path)
    result = last_json(out.stdout)
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
    result = last_json(out.stdout)
    assert result["chart_version"] == published.version
    assert result["ready"], result["status"]


def test_the_pure_wheel_without_helm_says_helm_is_not_found(
        venv_python: Path, no_helm_env: dict[str, str], tmp_path: Path) -> None:
    script = ("import vineyard_helm\ntry:\n    vineyard_helm.render()\n"
              "except vineyard_helm.HelmNotFoundError as error:\n    print(error)\n")
    said = run([venv_python, "-c", script], no_helm_env, cwd=tmp_path).stdout.strip()
    assert said.startswith("no 'helm' binary found on PATH; install Helm 3.x or 4.x"), said
    assert "VINEYARD_HELM_BINARY" in said
    command = venv_python.parent / "vineyard-helm"
    rendered = run([command, "render"], no_helm_env, cwd=tmp_path, check=False)
    assert rendered.returncode == 4
    assert rendered.stderr.startswith("vineyard-helm: error: no 'helm' binary found on PATH")
    version = run([command, "--version"], no_helm_env, cwd=tmp_path)
    assert "helm: none found (no 'helm' binary found on PATH)" in version.stdout
    assert not list((venv_python.parent.parent).rglob("vineyard_helm/_helm"))


# ---- this machine's platform wheel, no helm on PATH -----------------------------------------


def test_platform_wheel_runs_the_seed_flow_with_no_helm_on_path(
        bundled_python: Path, cluster, namespace: str, no_helm_env: dict[str, str],
        tmp_path: Path) -> None:
    env = {**no_helm_env, "KUBECONFIG": str(cluster.kubeconfig)}
    begin = time.monotonic()
    flow = subprocess.Popen([str(bundled_python), "-c", SEED_FLOW, namespace], env=env,
                            cwd=tmp_path, text=True, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert flow.stdout is not None
        assert flow.stdin is not None
        line = flow.stdout.readline()
        assert line, flow.communicate()[1]
        started = json.loads(line)
        live = release_objects(cluster, namespace, "vineyard")
        assert {tuple(r) for r in started["resources"]} <= live
        assert {("DaemonSet", "vineyard"), ("StatefulSet", "vineyard-etcd"),
                ("Service", "vineyard-rpc"), ("Service", "etcd-for-vineyard")} <= live
        ds = daemonset(cluster, namespace, "vineyard")
        assert ds["status"]["numberReady"] == ds["status"]["desiredNumberScheduled"] > 0
        assert statefulset(cluster, namespace, "vineyard-etcd")["status"]["readyReplicas"] == 1
        svc = kube(cluster).get(f"/api/v1/namespaces/{namespace}/services/vineyard-rpc")
        assert [p["port"] for p in svc["spec"]["ports"]] == [9700]
        out, err = flow.communicate("delete\n", timeout=400)
    finally:
        if flow.poll() is None:
            flow.kill()
            flow.wait()
    assert flow.returncode == 0, err
    deleted = last_json(out)
    assert not left_behind(cluster, namespace)
    assert not pods(cluster, namespace)
    record_timing("platform wheel: seed flow, no helm on PATH", time.monotonic() - begin,
                  start_vineyardd=round(started["seconds"], 2),
                  delete_kubernetes_objects=round(deleted["seconds"], 2))


def test_platform_wheel_installs_upgrades_and_uninstalls_with_its_own_helm(
        bundled_python: Path, cluster, namespace: str, no_helm_env: dict[str, str],
        tmp_path: Path) -> None:
    env = {**no_helm_env, "KUBECONFIG": str(cluster.kubeconfig)}
    result = last_json(run([bundled_python, "-c", LIFECYCLE, namespace], env, cwd=tmp_path,
                           timeout=600).stdout)
    assert result["revisions"] == [1, 2]
    path, origin = result["helm"]
    assert origin == "bundled"
    assert Path(path).is_relative_to(bundled_python.parent.parent)
    assert not left_behind(cluster, namespace)
    record_timing("platform wheel: install, upgrade, uninstall", sum(result["seconds"].values()),
                  **{verb: round(s, 2) for verb, s in result["seconds"].items()})


def test_platform_wheel_cli_and_helm_passthrough_with_no_helm_on_path(
        bundled_python: Path, published: Published, cluster, namespace: str,
        no_helm_env: dict[str, str], tmp_path: Path) -> None:
    env = {**no_helm_env, "KUBECONFIG": str(cluster.kubeconfig)}
    command = bundled_python.parent / "vineyard-helm"
    site = bundled_python.parent.parent

    version = run([command, "--version"], env, cwd=tmp_path).stdout.splitlines()
    assert version[0] == f"vineyard-helm {published.version}"
    assert version[1].startswith("helm v4.3.1, bundled: ")
    assert Path(version[1].split(": ", 1)[1]).is_relative_to(site)

    doctor = json.loads(run([command, "doctor", "-o", "json"], env, cwd=tmp_path).stdout)
    assert doctor["helm"]["origin"] == "bundled"
    assert doctor["helm"]["version"] == "v4.3.1"
    assert doctor["bundled"]["sha256_matches"] is True
    licence = Path(doctor["bundled"]["path"]).with_name("LICENSE").read_text()
    assert "Apache License" in licence[:100]

    run([command, "install", "-n", namespace, "--set", "vineyard.size=256Mi", "--timeout",
         "180s", "--no-progress"], env, cwd=tmp_path, timeout=300)
    status = json.loads(run([command, "status", "-n", namespace, "-o", "json"], env,
                            cwd=tmp_path).stdout)
    assert status["release"]["name"] == "vineyard"
    listed = json.loads(run([command, "helm", "list", "-n", namespace, "-o", "json"], env,
                            cwd=tmp_path).stdout)
    assert [(r["name"], r["revision"]) for r in listed] == [("vineyard", "1")]
    values = run([command, "helm", "get", "values", "vineyard", "-n", namespace], env,
                 cwd=tmp_path).stdout
    assert "size: 256Mi" in values
    missing = run([command, "helm", "status", "nope", "-n", namespace], env, cwd=tmp_path,
                  check=False)
    assert missing.returncode == 1  # helm's own exit code and message
    assert "release: not found" in missing.stderr
    run([command, "uninstall", "-n", namespace, "--timeout", "180s"], env, cwd=tmp_path,
        timeout=300)
    assert not left_behind(cluster, namespace)


FAKE_HELM = "#!/bin/sh\necho v3.99.0-{name}\n"

WHICH = """
import json, sys, vineyard_helm.helm as h
found = h.locate_helm(sys.argv[1] if len(sys.argv) > 1 else None)
print(json.dumps([found.origin, found.path]))
"""


@pytest.mark.parametrize(
    ("argument", "environment", "path_helm", "expected"),
    [
        pytest.param(None, None, False, "bundled", id="nothing-else:bundled"),
        pytest.param(None, None, True, "bundled", id="bundled-over-PATH"),
        pytest.param(None, "env", True, "env", id="environment-over-bundled"),
        pytest.param(None, "helm", True, "path", id="environment-naming-PATH's-helm"),
        pytest.param("arg", "env", True, "arg", id="argument-over-environment"),
    ],
)
def test_platform_wheel_resolution_order(
        bundled_python: Path, no_helm_env: dict[str, str], tmp_path: Path,
        argument: str | None, environment: str | None, path_helm: bool, expected: str) -> None:
    helms = {}
    for name in ("arg", "env", "path"):
        helm = tmp_path / name / "helm"
        helm.parent.mkdir()
        helm.write_text(FAKE_HELM.format(name=name))
        helm.chmod(0o755)
        helms[name] = str(helm)
    env = dict(no_helm_env)
    if path_helm:
        env["PATH"] = f"{Path(helms['path']).parent}{os.pathsep}{env['PATH']}"
    if environment:
        env["VINEYARD_HELM_BINARY"] = helms.get(environment, environment)
    argv = [bundled_python, "-c", WHICH, *([helms[argument]] if argument else [])]
    origin, path = json.loads(run(argv, env, cwd=tmp_path).stdout)
    if expected == "bundled":
        assert (origin, Path(path).parent.name) == ("bundled", "_helm")
        assert Path(path).is_relative_to(bundled_python.parent.parent)
    else:
        assert path == helms[expected]
        assert origin == {"arg": "helm=", "env": "$VINEYARD_HELM_BINARY",
                          "path": "$VINEYARD_HELM_BINARY"}[expected]
