"""The exact objects each scenario creates, and the names users and upstream scripts rely on."""

from __future__ import annotations

import pytest

from tests.support.chart_render import Manifest, render
from tests.support.paths import SCENARIOS

BASE = {
    ("ServiceAccount", "vineyard"),
    ("DaemonSet", "vineyard"),
    ("Service", "vineyard-rpc"),
}
ETCD_ONE = {
    ("StatefulSet", "vineyard-etcd"),
    ("Service", "vineyard-etcd-headless"),
    ("Service", "etcd-for-vineyard"),
    ("CronJob", "vineyard-etcd-defrag"),
}
TESTS_RPC = {("Pod", "vineyard-test-rpc")}
TESTS_ETCD = {("Pod", "vineyard-test-etcd")}
# The data path test: writers, and a reader unless metadata is local to each node.
TESTS_PUT = {("Job", "vineyard-test-data-put")}
TESTS_DATA = TESTS_PUT | {("Pod", "vineyard-test-data-get")}

EXPECTED = {
    "hostpath": BASE | ETCD_ONE | TESTS_RPC | TESTS_ETCD | TESTS_DATA,
    "pvc": BASE
    | ETCD_ONE
    | TESTS_RPC
    | TESTS_ETCD
    | TESTS_DATA
    | {("PersistentVolumeClaim", "vineyard-socket")},
    "emptydir-sidecar": BASE | ETCD_ONE | TESTS_RPC | TESTS_ETCD,
    "external-etcd": BASE | TESTS_RPC | TESTS_ETCD | TESTS_DATA,
    "local-meta": BASE | TESTS_RPC | TESTS_PUT,
    "etcd-ha": BASE
    | ETCD_ONE
    | TESTS_RPC
    | TESTS_ETCD
    | TESTS_DATA
    | {
        ("PodDisruptionBudget", "vineyard-etcd"),
        ("NetworkPolicy", "vineyard"),
        ("NetworkPolicy", "vineyard-etcd"),
    },
    "hardened": {
        ("ServiceAccount", "vineyard"),
        ("DaemonSet", "vineyard"),
        ("NetworkPolicy", "vineyard"),
    },
}


def inventory(manifests: list[Manifest]) -> set[tuple[str, str]]:
    return {(m["kind"], m["metadata"]["name"]) for m in manifests}


def test_every_scenario_has_an_expected_inventory() -> None:
    assert set(EXPECTED) == set(SCENARIOS)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_renders_exactly_its_objects(
    scenario: str, rendered_scenarios: dict[str, list[Manifest]]
) -> None:
    assert inventory(rendered_scenarios[scenario]) == EXPECTED[scenario]


def test_default_install_uses_the_seed_names() -> None:
    names = inventory(render())
    assert {
        ("DaemonSet", "vineyard"),
        ("Service", "vineyard-rpc"),
        ("Service", "etcd-for-vineyard"),
    } <= names


@pytest.mark.parametrize("release", ["v6d", "data-team", "vineyard-prod"])
def test_other_release_names_prefix_every_object(release: str) -> None:
    manifests = render(release=release, namespace="ns1")
    full = release if "vineyard" in release else f"{release}-vineyard"
    for kind, name in inventory(manifests):
        assert full in name, f"{kind} {name} does not carry the release name"
    assert all(m["metadata"]["namespace"] == "ns1" for m in manifests)


def test_every_object_is_labelled_with_the_release() -> None:
    for m in render():
        labels = m["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == "vineyard"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"


def test_common_labels_reach_objects_but_never_selectors() -> None:
    manifests = render({"commonLabels": {"team": "data"}})
    for m in manifests:
        assert m["metadata"]["labels"]["team"] == "data"
        selector = m.get("spec", {}).get("selector", {})
        assert "team" not in selector.get("matchLabels", selector)
