"""What operators are told: NOTES point at etcd's size, alarms and the procedures, and the
chart README's Operations section covers each day-30 task."""

from __future__ import annotations

import pytest

from tests.support.chart_render import find, render
from tests.support.chart_render import render_notes as notes
from tests.support.paths import CHART, CI_DIR


@pytest.mark.parametrize("scenario", ["hostpath", "etcd-ha", "pvc"])
def test_notes_tell_how_to_see_etcd_size_and_alarms(scenario: str) -> None:
    text = notes("-f", str(CI_DIR / f"{scenario}-values.yaml"), release="data", namespace="ns1")
    statefulset = find(render(scenario=scenario, release="data", namespace="ns1"), "StatefulSet")
    exec_prefix = f"kubectl -n ns1 exec {statefulset['metadata']['name']}-0 -c etcd -- etcdctl"
    assert f"{exec_prefix} alarm list" in text
    assert f"{exec_prefix} endpoint status --cluster -w table" in text
    assert "NOSPACE" in text
    assert "defragmented by CronJob data-vineyard-etcd-defrag (17 3 * * *)" in text
    assert "cannot change on upgrade" in text


def test_notes_warn_that_an_emptydir_member_restarts_empty() -> None:
    assert "WARNING: throwaway metadata" in notes("--set", "etcd.persistence.enabled=false")
    assert "throwaway" not in notes()  # claims by default


@pytest.mark.parametrize("scenario", ["local-meta", "external-etcd", "hardened"])
def test_notes_say_nothing_about_an_etcd_the_chart_does_not_run(scenario: str) -> None:
    text = notes("-f", str(CI_DIR / f"{scenario}-values.yaml"))
    assert "etcdctl" not in text
    assert "CronJob" not in text


def test_notes_leave_out_the_cronjob_when_defrag_is_off() -> None:
    text = notes("--set", "etcd.defrag.enabled=false")
    assert "CronJob" not in text
    assert "alarm list" in text


def test_the_readme_operations_section_covers_each_task() -> None:
    readme = (CHART / "README.md").read_text()
    operations = readme.split("## Operations", 1)[1].split("\n## ", 1)[0]
    for heading in (
        "### Compaction",
        "### Defragmentation",
        "### Quota and the NOSPACE alarm",
        "### Backup and restore",
        "### Changing the etcd topology",
        "### What an upgrade restarts and what it loses",
    ):
        assert heading in operations, heading
    for command in ("alarm list", "alarm disarm", "defrag --cluster", "compact", "snapshot save",
                    "etcdutl snapshot restore", "create job --from=cronjob/"):  # fmt: skip
        assert command in operations, command
