"""PodSecurity admission (the API server's own, on this cluster) against the chart's claims in
charts/vineyard/README.md ("Reaching the socket"):

- `persistentVolumeClaim` and `emptyDir` socket modes claim `restricted`: the pvc,
  emptydir-sidecar and hardened scenarios install and become ready in namespaces labelled
  pod-security.kubernetes.io/enforce=restricted (etcd pods included).
- `hostPath` (the default) needs `privileged`: a hostPath volume is refused by `baseline`
  already, so in a `restricted` or `baseline` namespace every vineyard pod is refused. Admission
  acts on pods, not on the DaemonSet: `helm install` itself succeeds (helm waiting would time
  out), the DaemonSet controller's pod creations fail, and its FailedCreate events quote the
  refusal: 'violates PodSecurity "baseline:latest": hostPath volumes (volume "vineyard-socket")';
  under restricted, 'restricted volume types (volume "vineyard-socket" uses restricted volume
  type "hostPath")' among others (the root init container that prepares the host directory is
  refused too). A server-side dry run of the DaemonSet's pod template gets the same refusal.
"""
from __future__ import annotations

import pytest

from localcluster import Cluster
from tests.e2e.e2e_kube import in_parallel, install_args
from tests.support.helm import run_helm
from tests.support.kube import (
    INSTANCE,
    daemonset,
    events,
    kube,
    pods,
    statefulset_ready,
    wait_daemonset_settled,
)
from tests.support.wait import wait_for

RESTRICTED_MODES = ("hardened", "pvc", "emptydir-sidecar")
#: How each level words its refusal of the socket's hostPath volume.
HOSTPATH_REFUSAL = {
    "restricted": 'restricted volume types (volume "vineyard-socket" uses restricted volume type '
                  '"hostPath")',
    "baseline": 'hostPath volumes (volume "vineyard-socket")',
}
ENFORCE = "pod-security.kubernetes.io/enforce"


@pytest.fixture(scope="module")
def installs(cluster: Cluster, e2e_env: dict[str, str], make_namespace, make_pv) -> dict:
    namespaces = {s: make_namespace(f"psa-{s}", {ENFORCE: "restricted"})
                  for s in RESTRICTED_MODES}
    namespaces["hostpath-restricted"] = make_namespace("psa-hostpath-r", {ENFORCE: "restricted"})
    namespaces["hostpath-baseline"] = make_namespace("psa-hostpath-b", {ENFORCE: "baseline"})
    make_pv(storage_class="standard", access_modes=["ReadWriteMany"], size="16Mi",
            claim=(namespaces["pvc"], "vineyard-socket"))
    jobs = {s: (lambda s=s: run_helm(e2e_env, *install_args("vineyard", namespaces[s],
                                                            scenario=s), check=False))
            for s in RESTRICTED_MODES}
    for level in ("restricted", "baseline"):
        ns = namespaces[f"hostpath-{level}"]
        jobs[f"hostpath-{level}"] = (lambda ns=ns: run_helm(
            e2e_env, *install_args("vineyard", ns, scenario="hostpath", wait=False),
            check=False))
    results = in_parallel(jobs)
    return {name: (namespaces[name], results[name]) for name in jobs}


@pytest.mark.parametrize("scenario", RESTRICTED_MODES)
def test_restricted_modes_install_under_enforce_restricted(
    cluster: Cluster, installs: dict, scenario: str
) -> None:
    ns, result = installs[scenario]
    assert result.returncode == 0, result.stdout + result.stderr
    wait_daemonset_settled(cluster, ns, "vineyard")
    if kube(cluster).get_or_none(f"/apis/apps/v1/namespaces/{ns}/statefulsets/vineyard-etcd"):
        wait_for(lambda: statefulset_ready(cluster, ns, "vineyard-etcd", 1), "etcd ready")
    refused = [e for e in events(cluster, ns) if e.get("reason") == "FailedCreate"]
    assert not refused, [e["message"] for e in refused]


@pytest.mark.parametrize("level", ["restricted", "baseline"])
def test_hostpath_mode_is_refused_by_admission(cluster: Cluster, installs: dict, level: str
                                               ) -> None:
    ns, result = installs[f"hostpath-{level}"]
    assert result.returncode == 0, result.stderr  # the DaemonSet itself is admitted

    def refusal() -> str | None:
        for event in events(cluster, ns):
            message = event.get("message", "")
            if event.get("reason") == "FailedCreate" and "violates PodSecurity" in message:
                return message
        return None

    message = wait_for(refusal, f"a FailedCreate event of the DaemonSet in {ns}")
    assert f'violates PodSecurity "{level}:latest"' in message
    if level == "baseline":  # restricted lists more violations first; events are truncated
        assert HOSTPATH_REFUSAL[level] in message
    assert not pods(cluster, ns, f"{INSTANCE}=vineyard,app.kubernetes.io/component=vineyardd")
    status = daemonset(cluster, ns, "vineyard")["status"]
    assert status.get("numberReady", 0) == 0
    assert status.get("currentNumberScheduled", 0) == 0


@pytest.mark.parametrize("level", ["restricted", "baseline"])
def test_the_refusal_is_the_api_servers_own(cluster: Cluster, installs: dict, level: str
                                            ) -> None:
    """A pod made from the DaemonSet's template, created with a server-side dry run, is refused
    by the API server, hostPath among the reasons."""
    import json

    ns, _ = installs[f"hostpath-{level}"]
    template = daemonset(cluster, ns, "vineyard")["spec"]["template"]
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "vineyard-dry-run", "labels": template["metadata"]["labels"]},
           "spec": template["spec"]}
    refused = cluster.kubectl("-n", ns, "create", "--dry-run=server", "-f", "-",
                              input=json.dumps(pod), check=False)
    assert refused.returncode != 0
    assert "is forbidden" in refused.stderr
    assert f'violates PodSecurity "{level}:latest"' in refused.stderr
    assert HOSTPATH_REFUSAL[level] in refused.stderr, refused.stderr
