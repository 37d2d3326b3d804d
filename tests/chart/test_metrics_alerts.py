"""The chart's alerting rules under `promtool test rules` (Debian's prometheus package): each
alert fires on the series that should raise it, and stays quiet on healthy ones, on another
release's, and before its `for` has passed. The rules are taken from the rendered PrometheusRule,
so what is tested is what the chart ships."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.chart_render import find, render

API = ("--api-versions", "monitoring.coreos.com/v1")
ON = {"metrics": {"enabled": True, "prometheusRule": {"enabled": True}}}

VINEYARDD = 'job="vineyard-metrics",namespace="vineyard"'
ETCD = 'job="vineyard-etcd-metrics",namespace="vineyard"'
OTHER = 'job="other-metrics",namespace="vineyard"'  # another release's exporters


def promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        pytest.fail("promtool not found: run `make setup` (Debian package prometheus)")
    return found


def rule_groups(
    values: dict[str, Any] | None = None, *, annotations: bool = True
) -> dict[str, Any]:
    """The rendered rules; without annotations (promtool compares them whole when an alert is
    expected: test_annotations_are_templated_by_prometheus checks them)."""
    rule = find(render(values or ON, extra_args=API), "PrometheusRule")
    groups = rule["spec"]["groups"]
    if not annotations:
        for group in groups:
            for r in group["rules"]:
                r.pop("annotations", None)
    return {"groups": groups}


@dataclass
class Case:
    """Series (one sample a minute) and, at eval_time, the alerts expected: label sets of the
    firing alerts (empty: none fires)."""

    alert: str
    series: dict[str, str]
    eval_time: str
    firing: list[dict[str, str]] = field(default_factory=list)
    values: dict[str, Any] | None = None
    annotations: list[dict[str, str]] | None = None  # checked only when given


def labels(selector: str, **more: str) -> dict[str, str]:
    pairs = dict(part.split("=", 1) for part in selector.split(","))
    return {k: v.strip('"') for k, v in pairs.items()} | more


def ksm(metric: str, **labels: str) -> str:
    """A kube-state-metrics series of the release's namespace."""
    return (
        metric
        + "{"
        + ",".join(['namespace="vineyard"', *(f'{k}="{v}"' for k, v in labels.items())])
        + "}"
    )


def daemonset(name: str, *, ready: int, desired: int) -> dict[str, str]:
    """kube-state-metrics' view of a DaemonSet for 15 minutes."""
    return {
        ksm("kube_daemonset_status_number_ready", daemonset=name): f"{ready}x15",
        ksm("kube_daemonset_status_desired_number_scheduled", daemonset=name): f"{desired}x15",
    }


def statefulset(*, ready: int, replicas: int) -> dict[str, str]:
    """kube-state-metrics' view of the etcd StatefulSet for 5 minutes."""
    name = "vineyard-etcd"
    return {
        ksm("kube_statefulset_replicas", statefulset=name): f"{replicas}x5",
        ksm("kube_statefulset_status_replicas_ready", statefulset=name): f"{ready}x5",
    }


POD = {"pod": "vineyard-x7k2p"}
# etcd 3.6.16's series while the alarm is raised (measured), with the pod the monitors add.
NOSPACE = 'pod="vineyard-etcd-0",alarm_type="NOSPACE",server_id="8e9e05c52164694d"'
MEMBER = {"pod": "vineyard-etcd-0"}
CASES = {
    "memory above 90% of size for 5m fires": Case(
        "VineyardMemoryNearSize",
        {
            f'vineyard_memory_usage_bytes{{{VINEYARDD},pod="vineyard-x7k2p"}}': "950x10",
            f'vineyard_memory_limit_bytes{{{VINEYARDD},pod="vineyard-x7k2p"}}': "1000x10",
        },
        "10m",
        [labels(VINEYARDD, **POD, severity="warning")],
    ),
    "memory above 90% for less than 5m is quiet": Case(
        "VineyardMemoryNearSize",
        {
            f'vineyard_memory_usage_bytes{{{VINEYARDD},pod="vineyard-x7k2p"}}': "100x6 950x4",
            f'vineyard_memory_limit_bytes{{{VINEYARDD},pod="vineyard-x7k2p"}}': "1000x10",
        },
        "10m",
    ),
    "memory at half of size is quiet": Case(
        "VineyardMemoryNearSize",
        {
            f"vineyard_memory_usage_bytes{{{VINEYARDD}}}": "500x10",
            f"vineyard_memory_limit_bytes{{{VINEYARDD}}}": "1000x10",
        },
        "10m",
    ),
    "another release's full memory is not this release's alert": Case(
        "VineyardMemoryNearSize",
        {
            f"vineyard_memory_usage_bytes{{{OTHER}}}": "990x10",
            f"vineyard_memory_limit_bytes{{{OTHER}}}": "1000x10",
        },
        "10m",
    ),
    "the threshold and for come from values": Case(
        "VineyardMemoryNearSize",
        {
            f"vineyard_memory_usage_bytes{{{VINEYARDD}}}": "600x3",
            f"vineyard_memory_limit_bytes{{{VINEYARDD}}}": "1000x3",
        },
        "1m",
        [labels(VINEYARDD, severity="warning")],
        values={
            "metrics": {
                "enabled": True,
                "prometheusRule": {
                    "enabled": True,
                    "memoryUsage": {"threshold": 0.5, "for": "0s"},
                },
            }
        },
    ),
    "vineyardd not answering for 5m fires": Case(
        "VineyardDown",
        {
            f'vineyard_up{{{VINEYARDD},pod="vineyard-x7k2p"}}': "1 0x8",
            f'up{{{VINEYARDD},pod="vineyard-x7k2p"}}': "1x8",
        },
        "8m",
        [labels(VINEYARDD, **POD, severity="critical")],
    ),
    "an exporter Prometheus cannot scrape fires": Case(
        "VineyardDown",
        {f'up{{{VINEYARDD},pod="vineyard-x7k2p"}}': "0x8"},
        "8m",
        [labels(VINEYARDD, **POD, severity="critical")],
    ),
    "vineyardd answering is quiet": Case(
        "VineyardDown",
        {f"vineyard_up{{{VINEYARDD}}}": "1x8", f"up{{{VINEYARDD}}}": "1x8"},
        "8m",
    ),
    "fewer Ready vineyardd pods than desired for 10m fires": Case(
        "VineyardPodsNotReady",
        daemonset("vineyard", ready=2, desired=3),
        "15m",
        [{"namespace": "vineyard", "daemonset": "vineyard", "severity": "warning"}],
    ),
    "a pool's DaemonSet short of Ready pods fires": Case(
        "VineyardPodsNotReady",
        daemonset("vineyard-bigmem", ready=0, desired=1),
        "15m",
        [{"namespace": "vineyard", "daemonset": "vineyard-bigmem", "severity": "warning"}],
        values={
            **ON,
            "pools": [{"name": "bigmem", "nodeSelector": {"pool": "bigmem"}}],
        },
    ),
    "every desired pod Ready is quiet, and so is another DaemonSet": Case(
        "VineyardPodsNotReady",
        {
            **daemonset("vineyard", ready=3, desired=3),
            **daemonset("vineyardx", ready=0, desired=3),
        },
        "15m",
    ),
    "etcd without a leader for a minute fires": Case(
        "EtcdNoLeader",
        {f'etcd_server_has_leader{{{ETCD},pod="vineyard-etcd-0"}}': "1 0x3"},
        "3m",
        [labels(ETCD, **MEMBER, severity="critical")],
    ),
    "etcd with a leader is quiet": Case(
        "EtcdNoLeader", {f"etcd_server_has_leader{{{ETCD}}}": "1x3"}, "3m"
    ),
    "etcd database above 80% of the quota for 10m fires": Case(
        "EtcdDatabaseNearQuota",
        {
            f'etcd_mvcc_db_total_size_in_bytes{{{ETCD},pod="vineyard-etcd-0"}}': "350x12",
            f'etcd_server_quota_backend_bytes{{{ETCD},pod="vineyard-etcd-0"}}': "384x12",
        },
        "12m",
        [labels(ETCD, **MEMBER, severity="warning")],
    ),
    "etcd database well under the quota is quiet": Case(
        "EtcdDatabaseNearQuota",
        {
            f"etcd_mvcc_db_total_size_in_bytes{{{ETCD}}}": "100x12",
            f"etcd_server_quota_backend_bytes{{{ETCD}}}": "384x12",
        },
        "12m",
    ),
    "the NOSPACE alarm fires at once": Case(
        "EtcdNoSpaceAlarm",
        {
            f"etcd_debugging_server_alarms{{{ETCD},{NOSPACE}}}": "0 1",
        },
        "1m",
        [
            labels(
                ETCD,
                **MEMBER,
                alarm_type="NOSPACE",
                server_id="8e9e05c52164694d",
                severity="critical",
            )
        ],
    ),
    "no alarm, or another alarm, is not NOSPACE": Case(
        "EtcdNoSpaceAlarm",
        {
            f'etcd_debugging_server_alarms{{{ETCD},alarm_type="NOSPACE"}}': "0 0",
            f'etcd_debugging_server_alarms{{{ETCD},alarm_type="CORRUPT"}}': "1 1",
        },
        "1m",
    ),
    "an etcd member not scraped for 3m fires": Case(
        "EtcdMemberDown",
        {f'up{{{ETCD},pod="vineyard-etcd-1"}}': "0x5"},
        "5m",
        [labels(ETCD, pod="vineyard-etcd-1", severity="critical")],
    ),
    "a member short of Ready in the StatefulSet fires": Case(
        "EtcdMemberDown",
        statefulset(ready=2, replicas=3),
        "5m",
        [{"namespace": "vineyard", "statefulset": "vineyard-etcd", "severity": "critical"}],
    ),
    "every member up and Ready is quiet": Case(
        "EtcdMemberDown",
        {
            f'up{{{ETCD},pod="vineyard-etcd-0"}}': "1x5",
            **statefulset(ready=3, replicas=3),
        },
        "5m",
    ),
}


def run_promtool_test(case: Case, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    groups = rule_groups(case.values, annotations=case.annotations is not None)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(groups))
    expected = [
        {"exp_labels": firing}
        | ({"exp_annotations": case.annotations[i]} if case.annotations else {})
        for i, firing in enumerate(case.firing)
    ]
    test = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in case.series.items()],
                "alert_rule_test": [
                    {
                        "eval_time": case.eval_time,
                        "alertname": case.alert,
                        "exp_alerts": expected,
                    }
                ],
            }
        ],
    }
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(test, sort_keys=False))
    return subprocess.run(
        [promtool(), "test", "rules", "test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("name", CASES)
def test_alert(name: str, tmp_path: Path) -> None:
    proc = run_promtool_test(CASES[name], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_alert_is_tested_firing_and_quiet() -> None:
    alerts = {r["alert"] for g in rule_groups()["groups"] for r in g["rules"]}
    firing = {c.alert for c in CASES.values() if c.firing}
    quiet = {c.alert for c in CASES.values() if not c.firing}
    assert alerts == firing == quiet


def test_a_wrong_expectation_fails(tmp_path: Path) -> None:
    """The harness can fail: expecting a quiet alert to fire is reported."""
    case = CASES["memory at half of size is quiet"]
    wrong = Case(case.alert, case.series, case.eval_time, [labels(VINEYARDD, severity="warning")])
    proc = run_promtool_test(wrong, tmp_path)
    assert proc.returncode != 0
    assert "VineyardMemoryNearSize" in proc.stdout + proc.stderr


def test_annotations_are_templated_by_prometheus(tmp_path: Path) -> None:
    """The {{ $labels }} and {{ $value }} of the annotations reach Prometheus, not helm."""
    case = CASES["memory above 90% of size for 5m fires"]
    summary = "vineyardd's shared memory is nearly full"
    description = (
        "vineyardd vineyard-x7k2p has handed out 95% of its --size: puts beyond it fail with"
        " NotEnoughMemoryException. Delete objects that are no longer needed, or raise"
        " vineyard.size (and the memory limit)."
    )
    annotated = Case(
        case.alert,
        case.series,
        case.eval_time,
        case.firing,
        annotations=[{"summary": summary, "description": description}],
    )
    proc = run_promtool_test(annotated, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_rules_pass_promtool_check(tmp_path: Path) -> None:
    values = {**ON, "pools": [{"name": "bigmem", "nodeSelector": {"pool": "bigmem"}}]}
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule_groups(values)))
    proc = subprocess.run(
        [promtool(), "check", "rules", str(tmp_path / "rules.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 7 rules found" in proc.stdout


def test_without_etcd_there_are_no_etcd_alerts() -> None:
    values = {**ON, "vineyard": {"meta": "local"}}
    alerts = {r["alert"] for g in rule_groups(values)["groups"] for r in g["rules"]}
    assert alerts == {"VineyardMemoryNearSize", "VineyardDown", "VineyardPodsNotReady"}
