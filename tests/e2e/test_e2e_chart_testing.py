"""chart-testing's `ct install` against the local cluster, for every ci scenario: ct installs
the chart once per charts/vineyard/ci/*-values.yaml (`helm install --wait`), runs `helm test`,
and uninstalls, in one namespace (`--namespace`).

What this cluster needs first, and why:
- PersistentVolumes for the scenarios with claims (pvc: one of class "standard", RWX; etcd-ha:
  three without a class, RWO). ct names releases at random, so the volumes cannot be reserved
  for a claim name; they are left unbound for the claims to take.
- `helm test` pods must finish. kwok runs no container and completes only Job pods; helm's test
  pods are bare pods that would stay Running, so while ct runs they are marked Succeeded as a
  kubelet would when their commands exit 0 (e2e_kube.helm_test_pods_complete). So under kwok
  this test checks that ct's flow (install --wait, test pods created by `helm test` and their
  hook lifecycle, uninstall) goes through for every scenario, NOT that the test commands pass:
  that cannot fail here. What they check (the RPC Service answers, etcd is healthy) runs for
  real with real containers: the contract suite (tests/contract) runs the commands, and the
  real-node suite runs `helm test` itself for the hostPath, PVC and etcd-ha scenarios
  (tests/e2e_real).
- external-etcd keeps its endpoint (etcd-for-vineyard.vineyard.svc...), which nothing here
  serves: under kwok, no container dials it, so the scenario installs; its etcd test pod is
  completed like the others.
"""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcluster import Cluster
from tests.e2e.e2e_kube import helm_test_pods_complete
from tests.support.kube import create_pv, delete_pvs, inventory, kinds_and_names
from tests.support.paths import BIN, CHART, REPO, SCENARIOS


@pytest.fixture
def volumes(cluster: Cluster) -> Iterator[list[str]]:
    names = [create_pv(cluster, storage_class="standard", access_modes=["ReadWriteMany"],
                       size="16Mi")]
    names += [create_pv(cluster, storage_class="", access_modes=["ReadWriteOnce"],
                        size="1Gi") for _ in range(3)]
    yield names
    delete_pvs(cluster, names)


@pytest.mark.timeout(2400)  # ct install of 7 scenarios, bounded at 1800 s by its own timeout
def test_ct_install_passes_for_every_ci_scenario(
    cluster: Cluster, namespace: str, e2e_env: dict[str, str], volumes: list[str]
) -> None:
    before = kinds_and_names(inventory(cluster, namespace))
    env = {**e2e_env, "PATH": f"{BIN}:{Path(sys.executable).parent}:{e2e_env['PATH']}"}
    with helm_test_pods_complete(cluster, namespace) as completed:
        result = subprocess.run(
            [str(BIN / "ct"), "install", "--config", str(REPO / "ct.yaml"),
             "--charts", str(CHART.relative_to(REPO)), "--namespace", namespace,
             "--helm-extra-args", "--timeout 300s"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=1800, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "All charts installed successfully" in output
    for scenario in SCENARIOS:
        assert f"ci/{scenario}-values.yaml" in output, scenario
    # helm test ran each time: rpc and etcd checks where the scenario has them.
    assert any(name.endswith("-test-rpc") for name in completed), completed
    assert any(name.endswith("-test-etcd") for name in completed), completed
    # ct uninstalled every release; only the etcd-ha members' claims are kept (by design:
    # test_e2e_uninstall.py).
    left = kinds_and_names(inventory(cluster, namespace)) - before
    assert {kind for kind, _ in left} <= {"PersistentVolumeClaim"}, left
