"""The chart refuses, against a live release, an upgrade that would change the etcd topology
(its `lookup` of the release's etcd StatefulSet sees the running one): nothing changes, no
revision is recorded, the message names the value and the documented procedure. An upgrade
that leaves the topology alone still goes through. Helm 3 and Helm 4."""
from __future__ import annotations

from collections.abc import Callable

import pytest

from localcluster import Cluster
from tests.e2e.e2e_kube import install_args
from tests.support.helm import run_helm
from tests.support.kube import statefulset
from tests.support.paths import CHART

pytestmark = pytest.mark.timeout(1200)

REFUSED = [
    (["etcd.replicaCount=3"], "etcd.replicaCount: 1 -> 3"),
    (["etcd.clientPort=2479"], "etcd.clientPort: 2379 -> 2479"),
    (["etcd.persistence.enabled=false"], "etcd.persistence.enabled: true -> false"),
]


@pytest.mark.parametrize("major", [3, 4])
def test_etcd_topology_changes_are_refused_before_anything_changes(
        cluster: Cluster, e2e_env: dict[str, str], make_namespace: Callable[..., str],
        major: int) -> None:
    ns = make_namespace(f"guard-h{major}")
    run_helm(e2e_env, *install_args("vineyard", ns), major=major)
    before = statefulset(cluster, ns, "vineyard-etcd")
    for sets, message in REFUSED:
        argv = ["upgrade", "vineyard", str(CHART), "--namespace", ns,
                "--reuse-values"]
        for expression in sets:
            argv += ["--set", expression]
        res = run_helm(e2e_env, *argv, major=major, check=False)
        assert res.returncode != 0, f"upgrade with {sets} went through:\n{res.stdout}"
        assert message in res.stderr, res.stderr
        assert "Changing the etcd topology" in res.stderr, res.stderr
    after = statefulset(cluster, ns, "vineyard-etcd")
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"] == before["spec"]
    history = run_helm(e2e_env, "history", "vineyard", "--namespace", ns, "-o", "json",
                       major=major)
    assert history.stdout.count('"revision"') == 1, history.stdout
    # What leaves the topology alone still upgrades.
    run_helm(e2e_env, "upgrade", "vineyard", str(CHART), "--namespace", ns,
             "--reuse-values", "--set", "vineyard.size=128Mi", major=major)
    history = run_helm(e2e_env, "history", "vineyard", "--namespace", ns, "-o", "json",
                       major=major)
    assert history.stdout.count('"revision"') == 2, history.stdout
