"""Every rendered object of every scenario against the Kubernetes OpenAPI schema, offline,
for the oldest Kubernetes the chart supports (kubeVersion >= 1.25) and the newest known."""

from __future__ import annotations

import kubernetes_validate
import pytest

from tests.support.chart_render import Manifest
from tests.support.paths import SCENARIOS

OLDEST = "1.25.0"
NEWEST = kubernetes_validate.latest_version()


def validate_all(manifests: list[Manifest], version: str) -> list[str]:
    problems = []
    for manifest in manifests:
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            name = f"{manifest['kind']} {manifest['metadata']['name']}"
            problems.append(f"{name}: {error.message} at {list(error.path)}")
    return problems


@pytest.mark.parametrize("version", [OLDEST, NEWEST])
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_object_is_valid_kubernetes(
    scenario: str, version: str, rendered_scenarios: dict
) -> None:
    assert validate_all(rendered_scenarios[scenario], version) == []


def test_validator_catches_a_broken_object(rendered_scenarios: dict) -> None:
    """The check above can fail: an unknown field in a pod spec is reported."""
    daemonset = next(m for m in rendered_scenarios["hostpath"] if m["kind"] == "DaemonSet")
    broken = {**daemonset, "spec": {**daemonset["spec"], "replicas": 3}}
    assert validate_all([broken], NEWEST) != []
