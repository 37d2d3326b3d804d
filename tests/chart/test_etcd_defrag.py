"""Defragmentation: a CronJob that runs the etcd image's own etcdctl (no shell), bounded in
time, history and resources, hardened like the other pods, and let through the network policy."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.chart_render import HelmFailed, find, render, run_helm_template
from tests.support.paths import SCENARIOS

ETCD_SCENARIOS = [s for s in SCENARIOS if s not in ("external-etcd", "local-meta", "hardened")]


def cronjob(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    return find(manifests, "CronJob")


def pod_spec(job: dict[str, Any]) -> dict[str, Any]:
    return job["spec"]["jobTemplate"]["spec"]["template"]["spec"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_a_defrag_cronjob_exists_exactly_when_the_chart_runs_etcd(
    scenario: str, rendered_scenarios: dict
) -> None:
    kinds = [m["kind"] for m in rendered_scenarios[scenario]]
    assert kinds.count("CronJob") == (1 if scenario in ETCD_SCENARIOS else 0)


def test_it_can_be_turned_off() -> None:
    assert "CronJob" not in {m["kind"] for m in render({"etcd": {"defrag": {"enabled": False}}})}


@pytest.mark.parametrize("scenario", ETCD_SCENARIOS)
def test_it_runs_etcdctl_defrag_cluster_from_the_etcd_image_against_the_client_service(
    scenario: str, rendered_scenarios: dict
) -> None:
    manifests = rendered_scenarios[scenario]
    (container,) = pod_spec(cronjob(manifests))["containers"]
    etcd = find(manifests, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == etcd["image"]
    assert "args" not in container
    assert container["command"] == [
        "etcdctl",
        "--endpoints=http://etcd-for-vineyard.vineyard.svc.cluster.local:2379",
        "--command-timeout=60s",
        "defrag",
        "--cluster",
    ]
    vineyardd = find(manifests, "DaemonSet")["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][1].removeprefix("--endpoints=") in [
        a.removeprefix("--etcd_endpoint=") for a in vineyardd["args"]
    ]


def test_runs_are_bounded_in_number_time_and_history(rendered_scenarios: dict) -> None:
    job = cronjob(rendered_scenarios["hostpath"])
    spec = job["spec"]
    assert spec["schedule"] == "17 3 * * *"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert 0 < spec["startingDeadlineSeconds"] <= 3600
    assert spec["successfulJobsHistoryLimit"] == 1
    assert spec["failedJobsHistoryLimit"] <= 3
    job_spec = spec["jobTemplate"]["spec"]
    assert 0 < job_spec["activeDeadlineSeconds"] <= 600
    assert job_spec["backoffLimit"] <= 2
    assert pod_spec(job)["restartPolicy"] == "Never"
    (container,) = pod_spec(job)["containers"]
    for bound in ("cpu", "memory", "ephemeral-storage"):
        assert bound in container["resources"]["limits"], bound


def test_it_runs_hardened_like_the_etcd_members(rendered_scenarios: dict) -> None:
    manifests = rendered_scenarios["etcd-ha"]
    spec = pod_spec(cronjob(manifests))
    etcd = find(manifests, "StatefulSet")["spec"]["template"]["spec"]
    assert spec["securityContext"] == etcd["securityContext"]
    assert spec["containers"][0]["securityContext"] == etcd["containers"][0]["securityContext"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False


def test_schedule_and_resources_come_from_values() -> None:
    resources = {"requests": {"cpu": "5m", "memory": "16Mi"}, "limits": {"memory": "32Mi"}}
    job = cronjob(render({"etcd": {"defrag": {"schedule": "@weekly", "resources": resources}}}))
    assert job["spec"]["schedule"] == "@weekly"
    rendered = pod_spec(job)["containers"][0]["resources"]
    # helm merges maps key by key: the defaults' other keys stay.
    assert rendered["requests"].items() >= resources["requests"].items()
    assert rendered["limits"].items() >= resources["limits"].items()


@pytest.mark.parametrize("helm_major", [3, 4])
@pytest.mark.parametrize("schedule", ["", "every day", "* * *", "@sometimes"])
def test_a_schedule_that_is_no_cron_expression_is_refused(helm_major: int, schedule: str) -> None:
    with pytest.raises(HelmFailed) as failure:
        run_helm_template({"etcd": {"defrag": {"schedule": schedule}}}, helm_major=helm_major)
    assert "schedule" in failure.value.stderr, failure.value.stderr


def test_the_etcd_network_policy_lets_the_defrag_pods_in(rendered_scenarios: dict) -> None:
    manifests = rendered_scenarios["etcd-ha"]
    labels = cronjob(manifests)["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    client_rule = find(manifests, "NetworkPolicy", "vineyard-etcd")["spec"]["ingress"][0]
    selectors = [p["podSelector"]["matchLabels"] for p in client_rule["from"] if "podSelector" in p]
    assert any(all(labels.get(k) == v for k, v in s.items()) for s in selectors), selectors
    without = render({"networkPolicy": {"enabled": True}, "etcd": {"defrag": {"enabled": False}}})
    rule = find(without, "NetworkPolicy", "vineyard-etcd")["spec"]["ingress"][0]
    components = {
        p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in rule["from"]
    }
    assert components == {"vineyardd", "test"}
