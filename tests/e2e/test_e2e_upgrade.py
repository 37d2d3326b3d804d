"""Upgrades and rollbacks against the real API server.

- RollingUpdate (the default, maxUnavailable 1): changing vineyard.size makes revision 2 and
  the DaemonSet replaces its pods one node at a time (watched: never more than one unavailable,
  and the up-to-date count climbs step by step), every pod recreated with the new --size.
  `helm rollback vineyard 1` makes revision 3 with revision 1's pod template.
- OnDelete (the hardened scenario): an upgrade changes the template but no pod, until a pod
  is deleted. Helm 4's `--wait` (kstatus) waits for those pods to be replaced, so it times out;
  `--wait=legacy` (Helm 3's logic) returns.
- A failing upgrade with rollback-on-failure (`--atomic` on Helm 3, `--rollback-on-failure` on
  Helm 4): under kwok every pod turns Ready, so readiness cannot fail; what really fails is a
  claim that can never bind. The upgrade moves the socket to a PersistentVolumeClaim of a
  storage class nobody provisions, the new pods stay Pending, the wait times out, and helm rolls
  back: the previous release is intact (revision 1's template, every pod Ready, no claim left).

The flows run in parallel (one namespace each) in one module fixture; the tests read them.
"""
from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml

from localcluster import Cluster
from tests.e2e.e2e_kube import flag, in_parallel, install_args, vineyardd_args
from tests.support.helm import run_helm
from tests.support.kube import (
    INSTANCE,
    claim_phase,
    daemonset,
    kube,
    pods,
    ready_nodes,
    wait_daemonset_settled,
)
from tests.support.paths import BIN, CHART
from tests.support.wait import wait_for

VINEYARDD = f"{INSTANCE}=vineyard,app.kubernetes.io/component=vineyardd"

# The module's flows (upgrade, rollback, OnDelete, failing upgrades) run in the first test's
# setup, each with several helm waits of up to 5 minutes.
pytestmark = pytest.mark.timeout(1800)


@dataclass
class Flow:
    namespace: str = ""
    error: BaseException | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def get(self) -> dict[str, Any]:
        if self.error is not None:
            raise self.error
        return self.data


class DaemonSetWatch:
    """`kubectl get daemonset --watch -o json` in the background: every status the API server
    stores for the DaemonSet while the block runs (a watch sees each write; polling would not)."""

    def __init__(self, cluster: Cluster, namespace: str, name: str) -> None:
        self.statuses: list[dict[str, Any]] = []
        self._proc = subprocess.Popen(
            [str(BIN / "kubectl"), "get", "daemonset", name, "-n", namespace, "--watch",
             "-o", "json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env=cluster.env)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        decoder, buffer = json.JSONDecoder(), ""
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            buffer += line
            try:
                obj, end = decoder.raw_decode(buffer.lstrip())
            except json.JSONDecodeError:
                continue
            buffer = buffer.lstrip()[end:]
            self.statuses.append(obj.get("status", {}))

    def stop(self) -> list[dict[str, Any]]:
        self._proc.terminate()
        self._proc.wait(timeout=10)
        self._reader.join(timeout=10)
        return self.statuses


def vineyardd_pods(cluster: Cluster, ns: str) -> dict[str, list[str]]:
    """uid -> vineyardd args, of the live (not terminating) vineyardd pods."""
    return {p["metadata"]["uid"]: vineyardd_args(p) for p in pods(cluster, ns, VINEYARDD)
            if not p["metadata"].get("deletionTimestamp")}


def template(cluster: Cluster, ns: str) -> dict[str, Any]:
    return daemonset(cluster, ns, "vineyard")["spec"]["template"]


def history(env: dict[str, str], ns: str, major: int = 4) -> list[dict[str, Any]]:
    return yaml.safe_load(run_helm(env, "history", "vineyard", "-n", ns, "-o", "yaml",
                                   major=major).stdout)


def rolling_flow(cluster: Cluster, env: dict[str, str], ns: str) -> dict[str, Any]:
    run_helm(env, *install_args("vineyard", ns, sets=["vineyard.size=200Mi"]))
    wait_daemonset_settled(cluster, ns, "vineyard")
    data: dict[str, Any] = {"rev1_template": template(cluster, ns),
                            "rev1_pods": vineyardd_pods(cluster, ns)}
    watch = DaemonSetWatch(cluster, ns, "vineyard")
    try:
        run_helm(env, "upgrade", "vineyard", str(CHART), "-n", ns, "--set",
                 "vineyard.size=300Mi", "--wait", "--timeout", "5m")
        wait_daemonset_settled(cluster, ns, "vineyard")
    finally:
        data["rollout_statuses"] = watch.stop()
    data["rev2_template"] = template(cluster, ns)
    data["rev2_pods"] = vineyardd_pods(cluster, ns)
    data["rev2_history"] = history(env, ns)
    data["nodes"] = len(ready_nodes(cluster))
    run_helm(env, "rollback", "vineyard", "1", "-n", ns, "--wait", "--timeout", "5m")
    wait_daemonset_settled(cluster, ns, "vineyard")
    data["rev3_template"] = template(cluster, ns)
    data["rev3_pods"] = vineyardd_pods(cluster, ns)
    data["rev3_history"] = history(env, ns)
    return data


def on_delete_flow(cluster: Cluster, env: dict[str, str], ns: str) -> dict[str, Any]:
    run_helm(env, *install_args("vineyard", ns, scenario="hardened"))
    wait_daemonset_settled(cluster, ns, "vineyard")
    before = vineyardd_pods(cluster, ns)
    upgrade = ["upgrade", "vineyard", str(CHART), "-n", ns, "--reuse-values"]
    # Helm 4's default wait (kstatus "watcher") counts an OnDelete DaemonSet's old pods as not
    # updated, so `--wait` returns only once someone deletes them: it times out here.
    watcher = run_helm(env, *upgrade, "--set", "vineyard.size=150Mi", "--wait",
                       "--timeout", "10s", check=False)
    # Helm 3's wait and Helm 4's --wait=legacy do not wait for OnDelete pods.
    run_helm(env, *upgrade, "--set", "vineyard.size=160Mi", "--wait=legacy", "--timeout", "5m")
    generation = daemonset(cluster, ns, "vineyard")["metadata"]["generation"]
    wait_for(lambda: daemonset(cluster, ns, "vineyard")["status"].get("observedGeneration")
             == generation, "the DaemonSet controller saw the upgrade")
    after_upgrade = vineyardd_pods(cluster, ns)
    victim = next(p for p in pods(cluster, ns, VINEYARDD))
    kube(cluster).delete(f"/api/v1/namespaces/{ns}/pods/{victim['metadata']['name']}")
    node = victim["spec"]["nodeName"]

    def replaced() -> dict | None:
        new = [p for p in pods(cluster, ns, VINEYARDD) if p["spec"].get("nodeName") == node
               and p["metadata"]["uid"] != victim["metadata"]["uid"]
               and not p["metadata"].get("deletionTimestamp")]
        return new[0] if new else None

    replacement = wait_for(replaced, f"a new vineyard pod on {node}")
    return {"before": before, "after_upgrade": after_upgrade, "watcher": watcher,
            "template_args": vineyardd_args(template(cluster, ns)),
            "replacement_args": vineyardd_args(replacement),
            "status": daemonset(cluster, ns, "vineyard")["status"]}


def failing_flow(cluster: Cluster, env: dict[str, str], ns: str, major: int) -> dict[str, Any]:
    run_helm(env, *install_args("vineyard", ns), major=major)
    wait_daemonset_settled(cluster, ns, "vineyard")
    rev1 = template(cluster, ns)
    rollback_flag = "--atomic" if major == 3 else "--rollback-on-failure"
    result = run_helm(
        env, "upgrade", "vineyard", str(CHART), "-n", ns,
        "--set", "socket.volume.type=persistentVolumeClaim",
        "--set", "socket.volume.persistentVolumeClaim.storageClass=no-such-class",
        "--wait", "--timeout", "20s", rollback_flag, major=major, check=False)
    wait_for(lambda: claim_phase(cluster, ns, "vineyard-socket") is None,
             "the failed revision's claim is deleted by the rollback")
    wait_daemonset_settled(cluster, ns, "vineyard")
    return {"result": result, "rev1_template": rev1, "after_template": template(cluster, ns),
            "history": history(env, ns, major), "pods": vineyardd_pods(cluster, ns)}


@pytest.fixture(scope="module")
def flows(cluster: Cluster, e2e_env: dict[str, str], make_namespace) -> dict[str, Flow]:
    jobs: dict[str, Callable[[str], dict[str, Any]]] = {
        "rolling": lambda ns: rolling_flow(cluster, e2e_env, ns),
        "on-delete": lambda ns: on_delete_flow(cluster, e2e_env, ns),
        "failing-helm3": lambda ns: failing_flow(cluster, e2e_env, ns, 3),
        "failing-helm4": lambda ns: failing_flow(cluster, e2e_env, ns, 4),
    }
    out = {name: Flow(make_namespace(f"upg-{name}")) for name in jobs}

    def run(name: str) -> None:
        try:
            out[name].data = jobs[name](out[name].namespace)
        except BaseException as e:  # kept for the test that reads this flow
            out[name].error = e

    start = time.monotonic()
    in_parallel({name: (lambda name=name: run(name)) for name in jobs})
    out["rolling"].data["all_flows_seconds"] = time.monotonic() - start
    return out


def test_upgrade_is_revision_2_with_every_pod_recreated_with_the_new_size(
    flows: dict[str, Flow]
) -> None:
    data = flows["rolling"].get()
    assert [(h["revision"], h["status"]) for h in data["rev2_history"]] == [
        (1, "superseded"), (2, "deployed")]
    assert flag(vineyardd_args(data["rev1_template"]), "size") == "200Mi"
    assert flag(vineyardd_args(data["rev2_template"]), "size") == "300Mi"
    assert not set(data["rev1_pods"]) & set(data["rev2_pods"]), "some pod was not recreated"
    assert len(data["rev2_pods"]) == data["nodes"]
    assert all(flag(args, "size") == "300Mi" for args in data["rev2_pods"].values())


def test_the_rollout_follows_rolling_update_max_unavailable_1(flows: dict[str, Flow]) -> None:
    data = flows["rolling"].get()
    statuses, nodes = data["rollout_statuses"], data["nodes"]
    assert statuses, "the watch saw nothing"
    unavailable = [s.get("numberUnavailable", 0) for s in statuses]
    assert max(unavailable) <= 1, unavailable
    updated = {s.get("updatedNumberScheduled", 0) for s in statuses}
    # One node at a time: the up-to-date count passes through every step, not 0 -> all.
    assert set(range(1, nodes)) <= updated, sorted(updated)


def test_rollback_restores_revision_1s_spec_as_revision_3(flows: dict[str, Flow]) -> None:
    data = flows["rolling"].get()
    assert data["rev3_template"] == data["rev1_template"]
    assert [(h["revision"], h["status"]) for h in data["rev3_history"]] == [
        (1, "superseded"), (2, "superseded"), (3, "deployed")]
    assert data["rev3_history"][-1]["description"] == "Rollback to 1"
    assert all(flag(args, "size") == "200Mi" for args in data["rev3_pods"].values())
    assert not set(data["rev3_pods"]) & set(data["rev2_pods"])


def test_on_delete_upgrades_touch_no_pod_until_it_is_deleted(flows: dict[str, Flow]) -> None:
    data = flows["on-delete"].get()
    assert data["after_upgrade"] == data["before"], "OnDelete must not restart any pod"
    assert all(flag(args, "size") == "128Mi" for args in data["after_upgrade"].values())
    assert flag(data["template_args"], "size") == "160Mi"
    assert flag(data["replacement_args"], "size") == "160Mi"


def test_helm4_watcher_wait_does_not_return_for_on_delete_pods(flows: dict[str, Flow]) -> None:
    """A limit worth knowing for the hardened scenario: with Helm 4, upgrade with
    `--wait=legacy` (or without --wait), or delete the pods; `--wait` alone times out."""
    watcher = flows["on-delete"].get()["watcher"]
    assert watcher.returncode != 0
    assert "Updated: 0/" in watcher.stderr, watcher.stderr


@pytest.mark.parametrize("major", [3, 4])
def test_a_failing_upgrade_with_rollback_on_failure_leaves_the_previous_release(
    flows: dict[str, Flow], major: int
) -> None:
    data = flows[f"failing-helm{major}"].get()
    result = data["result"]
    assert result.returncode != 0, result.stdout
    assert "rolled back" in result.stderr, result.stderr
    assert [(h["revision"], h["status"]) for h in data["history"]] == [
        (1, "superseded"), (2, "failed"), (3, "deployed")]
    assert data["history"][-1]["description"] == "Rollback to 1"
    assert data["after_template"] == data["rev1_template"]
    volumes = data["after_template"]["spec"]["volumes"]
    assert not [v for v in volumes if "persistentVolumeClaim" in v]
