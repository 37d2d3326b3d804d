"""An upgrade that would wreck the chart's etcd (members, ports, data volume, claims, its name)
is refused before anything changes, naming the value, old -> new, and the README procedure.

`lookup` answers nothing under `helm template`, so these tests render a copy of the chart with
one extra template that hands vineyard.upgrade.problems, the helper validateValues calls with
lookup's answer, a list of StatefulSets read from a file: the objects the chart rendered for the
values before the upgrade. Only the lookup line itself is left to a live upgrade."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.support.chart_render import HelmFailed, deep_merge, find, render, run_helm_template
from tests.support.paths import CHART

PROBE = """{{- $items := (.Files.Get "observed-statefulsets.json" | fromJson).items }}
{{- $problems := include "vineyard.upgrade.problems" (dict "ctx" . "statefulsets" $items) | fromJsonArray }}
{{- if $problems }}{{ fail (printf "UPGRADE REFUSED:\\n- %s" (join "\\n- " $problems)) }}{{ end }}
"""  # noqa: E501


@pytest.fixture(scope="module")
def probe_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("probe") / "vineyard"
    shutil.copytree(CHART, copy)
    (copy / "templates" / "zz-upgrade-probe.yaml").write_text(PROBE)
    return copy


def upgrade(
    probe_chart: Path,
    before: dict[str, Any],
    after: dict[str, Any],
    *,
    observed: list[dict[str, Any]] | None = None,
    release: str = "vineyard",
    helm_major: int = 4,
) -> str:
    """Renders `after` as an upgrade of a release installed with `before` (whose StatefulSets
    the cluster is taken to hold, unless `observed` says otherwise)."""
    if observed is None:
        observed = [m for m in render(before, release=release) if m["kind"] == "StatefulSet"]
    (probe_chart / "observed-statefulsets.json").write_text(json.dumps({"items": observed}))
    return run_helm_template(
        after,
        chart=probe_chart,
        release=release,
        helm_major=helm_major,
        extra_args=("--is-upgrade",),
    )


def refused(probe_chart: Path, before: dict[str, Any], after: dict[str, Any], **kw: Any) -> str:
    with pytest.raises(HelmFailed) as failure:
        upgrade(probe_chart, before, after, **kw)
    assert "UPGRADE REFUSED" in failure.value.stderr, failure.value.stderr
    assert '"Changing the etcd topology" in the chart README' in failure.value.stderr
    return failure.value.stderr


PERSISTENT = {"etcd": {"persistence": {"enabled": True}}}
EPHEMERAL = {"etcd": {"persistence": {"enabled": False}}}
SIDECAR = {"name": "worker", "image": "worker:1"}


@pytest.mark.parametrize("helm_major", [3, 4])
@pytest.mark.parametrize(
    ("before", "after", "message"),
    [
        ({}, {"etcd": {"replicaCount": 3}}, "etcd.replicaCount: 1 -> 3"),
        ({"etcd": {"replicaCount": 3}}, {"etcd": {"replicaCount": 1}}, "etcd.replicaCount: 3 -> 1"),
        ({}, {"etcd": {"clientPort": 2479}}, "etcd.clientPort: 2379 -> 2479"),
        ({}, {"etcd": {"peerPort": 2480}}, "etcd.peerPort: 2380 -> 2480"),
        (EPHEMERAL, {}, "etcd.persistence.enabled: false -> true"),
        ({}, EPHEMERAL, "etcd.persistence.enabled: true -> false"),
        (
            PERSISTENT,
            deep_merge(PERSISTENT, {"etcd": {"persistence": {"size": "2Gi"}}}),
            "etcd.persistence.size: 1Gi -> 2Gi",
        ),
        (
            PERSISTENT,
            deep_merge(PERSISTENT, {"etcd": {"persistence": {"storageClass": "fast"}}}),
            "etcd.persistence.storageClass: null -> fast",
        ),
        (
            PERSISTENT,
            deep_merge(PERSISTENT, {"etcd": {"persistence": {"accessModes": ["ReadWriteOncePod"]}}}),  # noqa: E501
            'etcd.persistence.accessModes: ["ReadWriteOnce"] -> ["ReadWriteOncePod"]',
        ),
    ],
    ids=["scale-up", "scale-down", "client-port", "peer-port", "persistence-on", "persistence-off",
         "claim-size", "claim-class", "claim-modes"],
)  # fmt: skip
def test_a_topology_change_is_refused_naming_the_value_old_and_new(
    probe_chart: Path, helm_major: int, before: dict, after: dict, message: str
) -> None:
    assert message in refused(probe_chart, before, after, helm_major=helm_major)


def test_the_guard_works_alike_with_node_pools(probe_chart: Path) -> None:
    pools = {"pools": [{"name": "big", "nodeSelector": {"vineyard.v6d.io/pool": "big"}}]}
    stderr = refused(probe_chart, pools, {**pools, "etcd": {"replicaCount": 3}})
    assert "etcd.replicaCount: 1 -> 3" in stderr
    upgrade(probe_chart, {}, pools)  # adding a pool leaves etcd alone


def test_every_problem_is_reported_at_once(probe_chart: Path) -> None:
    stderr = refused(probe_chart, {}, {"etcd": {"replicaCount": 3, "clientPort": 2479}})
    assert "etcd.replicaCount: 1 -> 3" in stderr
    assert "etcd.clientPort: 2379 -> 2479" in stderr


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({}, {}),
        ({}, {"vineyard": {"size": "128Mi"}, "etcd": {"backendQuota": "256Mi"}}),
        ({"etcd": {"replicaCount": 3}}, {"etcd": {"replicaCount": 3, "resources": {}}}),
        (PERSISTENT, deep_merge(PERSISTENT, {"etcd": {"persistence": {"size": "1024Mi"}}})),
        # Leaving the chart's etcd is documented, not refused.
        ({}, {"vineyard": {"meta": "local"}}),
        ({}, {"etcd": {"enabled": False, "external": {"endpoints": ["http://etcd.db:2379"]}}}),
        ({}, {"socket": {"volume": {"type": "emptyDir"}}, "sidecars": [SIDECAR]}),
    ],
    ids=["same", "other-values", "same-ha", "same-size-other-unit", "to-local-meta",
         "to-external-etcd", "socket-type"],
)  # fmt: skip
def test_upgrades_that_keep_the_topology_pass(probe_chart: Path, before: dict, after: dict) -> None:
    upgrade(probe_chart, before, after)


def test_a_first_etcd_on_upgrade_passes(probe_chart: Path) -> None:
    """local -> etcd: nothing to compare, the chart creates the etcd."""
    upgrade(probe_chart, {"vineyard": {"meta": "local"}}, {})


def test_the_etcd_of_another_release_is_not_compared(probe_chart: Path) -> None:
    others = [
        m
        for m in render({"etcd": {"replicaCount": 3}}, release="other")
        if m["kind"] == "StatefulSet"
    ]
    upgrade(probe_chart, {}, {}, observed=others)
    unlabelled = json.loads(json.dumps(others))
    unlabelled[0]["metadata"]["labels"] = {}
    upgrade(probe_chart, {}, {"etcd": {"replicaCount": 5}}, observed=unlabelled)


def test_a_renamed_etcd_is_refused(probe_chart: Path) -> None:
    """A release whose etcd has another name (the chart now cuts long names differently)."""
    observed = [m for m in render({}) if m["kind"] == "StatefulSet"]
    observed[0]["metadata"]["name"] = "vineyard-et"
    stderr = refused(probe_chart, {}, {}, observed=observed)
    assert "renamed vineyard-et -> vineyard-etcd" in stderr


def test_the_cluster_s_canonical_quantities_compare_equal(probe_chart: Path) -> None:
    """The API server stores 1024Mi as 1Gi; that is no change of size."""
    observed = [m for m in render(deep_merge(PERSISTENT, {})) if m["kind"] == "StatefulSet"]
    claim = observed[0]["spec"]["volumeClaimTemplates"][0]["spec"]
    claim["resources"]["requests"]["storage"] = "1Gi"
    claim["volumeMode"] = "Filesystem"  # defaulted by the API server
    upgrade(probe_chart, {}, deep_merge(PERSISTENT, {"etcd": {"persistence": {"size": "1024Mi"}}}),
            observed=observed)  # fmt: skip


@pytest.mark.parametrize("helm_major", [3, 4])
def test_an_upgrade_render_without_a_cluster_passes(helm_major: int) -> None:
    """`helm template --is-upgrade`, client dry runs: lookup returns nothing, nothing to check."""
    manifests = render(
        {"etcd": {"replicaCount": 3}}, helm_major=helm_major, extra_args=("--is-upgrade",)
    )
    assert find(manifests, "StatefulSet")["spec"]["replicas"] == 3


def test_the_procedure_the_message_points_to_exists() -> None:
    readme = (CHART / "README.md").read_text()
    assert "### Changing the etcd topology" in readme
    for step in ("etcdctl snapshot save", "etcdutl snapshot restore", "helm uninstall"):
        assert step in readme, step


def test_the_real_chart_calls_the_guard_with_lookup() -> None:
    """The one untested line: validateValues asks lookup for the namespace's StatefulSets."""
    upgrade_tpl = (CHART / "templates" / "_upgrade.tpl").read_text()
    assert 'lookup "apps/v1" "StatefulSet" .Release.Namespace ""' in upgrade_tpl
    validate = (CHART / "templates" / "_validate.tpl").read_text()
    assert 'include "vineyard.upgrade.statefulsets" .' in validate
    assert 'include "vineyard.upgrade.problems"' in validate
