"""etcd stays bounded forever: compaction, a backend quota that fits the data volume with room
for a second copy, the WAL and snapshots, and bounded WAL and snapshot files."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.chart_render import (
    HelmFailed,
    deep_merge,
    default_values,
    find,
    render,
    run_helm_template,
    scenario_values,
)
from tests.support.paths import SCENARIOS

MI = 1024 * 1024
DEFAULT_BOUNDS = {
    "auto-compaction-mode": "periodic",
    "auto-compaction-retention": "1h",
    "quota-backend-bytes": str(384 * MI),
    "snapshot-count": "10000",
    "max-wals": "2",
    "max-snapshots": "2",
}
ETCD_SCENARIOS = [s for s in SCENARIOS if s not in ("external-etcd", "local-meta", "hardened")]


def etcd_flags(manifests: list[dict[str, Any]]) -> dict[str, str]:
    container = find(manifests, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["etcd"]
    flags = {}
    for arg in container["args"]:
        name, _, value = arg.removeprefix("--").partition("=")
        assert name not in flags, f"--{name} given twice"
        flags[name] = value
    return flags


def data_volume_bytes(manifests: list[dict[str, Any]]) -> int:
    spec = find(manifests, "StatefulSet")["spec"]
    claims = spec.get("volumeClaimTemplates")
    size = (
        claims[0]["spec"]["resources"]["requests"]["storage"]
        if claims
        else next(v for v in spec["template"]["spec"]["volumes"] if v["name"] == "data")[
            "emptyDir"
        ]["sizeLimit"]
    )
    number, unit = size[:-2], size[-2:]
    return int(number) * {"Mi": MI, "Gi": 1024 * MI}[unit]


def test_scenarios_with_their_own_etcd_are_known() -> None:
    kinds = {s: {m["kind"] for m in render(scenario=s)} for s in SCENARIOS}
    assert [s for s in SCENARIOS if "StatefulSet" in kinds[s]] == ETCD_SCENARIOS


@pytest.mark.parametrize("scenario", ETCD_SCENARIOS)
def test_every_member_is_bounded(scenario: str, rendered_scenarios: dict) -> None:
    flags = etcd_flags(rendered_scenarios[scenario])
    assert {k: flags.get(k) for k in DEFAULT_BOUNDS} == DEFAULT_BOUNDS


@pytest.mark.parametrize("scenario", ETCD_SCENARIOS)
def test_the_data_volume_holds_two_databases_the_wal_and_snapshots(
    scenario: str, rendered_scenarios: dict
) -> None:
    manifests = rendered_scenarios[scenario]
    flags = etcd_flags(manifests)
    needed = 2 * int(flags["quota-backend-bytes"]) + (int(flags["max-wals"]) + 2) * 64 * MI
    assert data_volume_bytes(manifests) >= needed
    etcd = deep_merge(default_values(), scenario_values(scenario))["etcd"]
    persistent = etcd["persistence"]["enabled"]
    assert bool(find(manifests, "StatefulSet")["spec"].get("volumeClaimTemplates")) == bool(
        persistent
    )


@pytest.mark.parametrize(
    ("values", "flags"),
    [
        (
            {"autoCompaction": {"mode": "revision", "retention": 1000000}},
            {"auto-compaction-mode": "revision", "auto-compaction-retention": "1000000"},
        ),
        (
            {"autoCompaction": {"mode": "periodic", "retention": 2}},
            {"auto-compaction-retention": "2"},
        ),
        ({"autoCompaction": {"mode": "periodic", "retention": "1h30m"}}, {}),
        (
            {"backendQuota": 3 * 1024 * MI, "persistence": {"size": "8Gi"}},
            {"quota-backend-bytes": str(3 * 1024 * MI)},
        ),
        (
            {"backendQuota": "2Gi", "persistence": {"size": "5Gi"}, "maxWals": 5},
            {"quota-backend-bytes": str(2048 * MI), "max-wals": "5"},
        ),
        ({"snapshotCount": 1000000, "maxSnapshots": 5}, {"snapshot-count": "1000000"}),
    ],
)
def test_bounds_are_rendered_as_etcd_reads_them(
    values: dict[str, Any], flags: dict[str, str]
) -> None:
    """Numbers come out as integers (YAML numbers are floats to helm: 1000000 would print 1e+06)."""
    rendered = etcd_flags(render({"etcd": values}))
    assert {k: rendered[k] for k in flags} == flags
    assert all("e+" not in v for v in rendered.values()), rendered


@pytest.mark.parametrize(
    ("values", "words"),
    [
        (
            {"backendQuota": "512Mi"},
            [
                "etcd.persistence.size (1Gi, each member's claim)",
                "etcd.backendQuota (512Mi)",
                "etcd.maxWals (2)",
                "= 1280Mi",
            ],
        ),
        (
            {"persistence": {"enabled": False, "size": "1Gi"}, "maxWals": 5},
            [
                "etcd.persistence.size (1Gi, each member's emptyDir size limit)",
                "etcd.maxWals (5)",
                "= 1216Mi",
            ],
        ),
        ({"persistence": {"size": 2 * 1024 * MI}, "backendQuota": "897Mi"}, ["= 2050Mi"]),
        ({"backendQuota": "32Mi"}, ["etcd.backendQuota (32Mi) is below 64Mi", "NOSPACE"]),
    ],
)
def test_a_quota_the_volume_cannot_hold_is_refused_naming_the_values(
    values: dict[str, Any], words: list[str]
) -> None:
    with pytest.raises(HelmFailed) as failure:
        run_helm_template({"etcd": values})
    for word in words:
        assert word in failure.value.stderr, failure.value.stderr


@pytest.mark.parametrize(
    "values",
    [
        {"persistence": {"size": "2Gi"}, "backendQuota": "896Mi"},
        {"persistence": {"size": "1Gi"}, "backendQuota": "384Mi"},
        {"persistence": {"enabled": True, "size": "10Gi"}, "backendQuota": "4Gi"},
    ],
)
def test_a_quota_that_fits_exactly_or_better_is_accepted(values: dict[str, Any]) -> None:
    run_helm_template({"etcd": values})


@pytest.mark.parametrize(
    "values",
    [
        {"vineyard": {"meta": "local"}, "etcd": {"persistence": {"size": "64Mi"}}},
        {
            "etcd": {
                "enabled": False,
                "persistence": {"size": "64Mi"},
                "external": {"endpoints": ["http://etcd.db:2379"]},
            }
        },
    ],
    ids=["local-meta", "external-etcd"],
)
def test_the_volume_check_applies_only_to_the_chart_s_own_etcd(values: dict[str, Any]) -> None:
    run_helm_template(values)


@pytest.mark.parametrize("helm_major", [3, 4])
@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"autoCompaction": {"mode": "periodic", "retention": 0}}, "retention"),
        ({"autoCompaction": {"mode": "periodic", "retention": "0h"}}, "retention"),
        ({"autoCompaction": {"mode": "periodic", "retention": "30s"}}, "retention"),
        ({"autoCompaction": {"mode": "revision", "retention": "1h"}}, "retention"),
        ({"autoCompaction": {"mode": "never", "retention": "1h"}}, "mode"),
        ({"backendQuota": "1.5Gi"}, "backendQuota"),
        ({"backendQuota": 0}, "backendQuota"),
        ({"maxWals": 0}, "maxWals"),
        ({"maxSnapshots": 0}, "maxSnapshots"),
        ({"snapshotCount": 0}, "snapshotCount"),
    ],
)
def test_unbounded_or_unreadable_settings_are_refused_by_the_schema(
    helm_major: int, values: dict[str, Any], key: str
) -> None:
    with pytest.raises(HelmFailed) as failure:
        run_helm_template({"etcd": values}, helm_major=helm_major)
    assert "/etcd/" in failure.value.stderr or "etcd" in failure.value.stderr
    assert key in failure.value.stderr, failure.value.stderr


def test_quantities_helm_reads_as_numbers_are_compared_too() -> None:
    """An integer size (bytes) used to fail the quantity parser ("1e+09")."""
    run_helm_template({"etcd": {"persistence": {"size": 1073741824}}})
    run_helm_template({"resources": {"limits": {"memory": "600000000000m"}}})
