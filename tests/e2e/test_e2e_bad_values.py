"""Bad values are refused before any object is created, by the Python API and by `helm install`
(Helm 3 and 4): the namespace's objects (every kind, listed through discovery) are the same
before and after, and a namespace that --create-namespace would have made is not made.

Two kinds of bad values: what values.schema.json rejects (every problem listed with its path),
and what only the chart's own cross-field checks catch (a memory limit below vineyard.size).
"""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

import vineyard_helm
from localcluster import Cluster
from tests.support.helm import HELM_BINARIES, run_helm
from tests.support.kube import inventory, kube

BAD: dict[str, tuple[dict[str, Any], list[str]]] = {
    # values -> what the error must name (schema: each path; chart: its message)
    "schema": ({"socket": {"volume": {"type": "nfs"}}, "vineyard": {"size": 12, "meta": "redis"}},
               ["socket.volume.type", "vineyard.meta", "vineyard.size"]),
    "chart-rule": ({"vineyard": {"size": "2Gi"}},
                   ["resources.limits.memory (512Mi) is below vineyard.size (2Gi)"]),
}


def _missing_namespace() -> str:
    return f"e2e-never-made-{uuid.uuid4().hex[:6]}"


@pytest.mark.parametrize("major", [3, 4])
@pytest.mark.parametrize("case", list(BAD))
def test_the_python_api_refuses_bad_values_and_creates_nothing(
    cluster: Cluster, namespace: str, case: str, major: int
) -> None:
    values, named = BAD[case]
    common: dict[str, Any] = {"kubeconfig": cluster.kubeconfig, "helm": str(HELM_BINARIES[major])}
    before = inventory(cluster, namespace)
    missing = _missing_namespace()
    calls = {
        "install": lambda: vineyard_helm.install(values, namespace=namespace,
                                                 create_namespace=False, **common),
        "upgrade --install": lambda: vineyard_helm.upgrade(values, namespace=namespace,
                                                           install=True, **common),
        "install --create-namespace": lambda: vineyard_helm.install(values, namespace=missing,
                                                                    **common),
        "validate": lambda: vineyard_helm.validate(values, helm=common["helm"]),
    }
    for what, call in calls.items():
        with pytest.raises(vineyard_helm.InvalidValuesError) as caught:
            call()
        problems = caught.value.problems
        if case == "schema":
            assert [p.split(":")[0] for p in problems] == named, (what, problems)
        else:
            assert [p[:len(named[0])] for p in problems] == named, (what, problems)
    assert inventory(cluster, namespace) == before
    assert kube(cluster).get_or_none(f"/api/v1/namespaces/{missing}") is None


@pytest.mark.parametrize("major", [3, 4])
@pytest.mark.parametrize("case", list(BAD))
def test_helm_install_refuses_bad_values_and_creates_nothing(
    cluster: Cluster, namespace: str, e2e_env: dict[str, str], tmp_path: Path,
    case: str, major: int
) -> None:
    from tests.support.paths import CHART

    values, named = BAD[case]
    file = tmp_path / "bad-values.yaml"
    file.write_text(yaml.safe_dump(values))
    before = inventory(cluster, namespace)
    missing = _missing_namespace()
    for ns, extra in ((namespace, []), (missing, ["--create-namespace"])):
        result = run_helm(e2e_env, "install", "vineyard", str(CHART), "-n", ns, "-f", str(file),
                          "--wait", "--timeout", "1m", *extra, major=major, check=False)
        assert result.returncode != 0
        assert "INSTALLATION FAILED" in result.stderr
        if case == "schema":
            for path in named:
                assert f"/{path.replace('.', '/')}" in result.stderr, result.stderr
        else:
            assert named[0] in result.stderr, result.stderr
    assert inventory(cluster, namespace) == before
    assert kube(cluster).get_or_none(f"/api/v1/namespaces/{missing}") is None
    listed = run_helm(e2e_env, "list", "-n", namespace, "-q", major=major).stdout
    assert listed.strip() == ""
