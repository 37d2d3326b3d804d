"""Rendering bugs found in review (issue 13), each pinned by the test that would have caught it.
Release-name lengths (43 and 48 characters) are in test_object_names.py."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from tests.support.chart_render import HelmFailed, find, render, run_helm_template
from tests.support.chart_render import render_notes as notes
from tests.support.helm import helm_binary
from tests.support.paths import CHART, CI_DIR


def helm_template_with_set(helm_major: int, *sets: str) -> list[dict]:
    """`helm template` with --set flags, as a user types them (strings where YAML would not)."""
    cmd = [helm_binary(helm_major), "template", "vineyard", str(CHART)]
    for item in sets:
        cmd += ["--set", item]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise HelmFailed(proc.stderr)
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def vineyardd_args(manifests: list[dict]) -> list[str]:
    spec = find(manifests, "DaemonSet")["spec"]["template"]["spec"]
    return next(c for c in spec["containers"] if c["name"] == "vineyardd")["args"]


@pytest.mark.parametrize("helm_major", [3, 4])
def test_spill_rates_given_with_set_are_accepted_as_numbers(helm_major: int) -> None:
    """--set turns 0.9 into the string "0.9"; the schema used to refuse it as not a number."""
    args = vineyardd_args(
        helm_template_with_set(
            helm_major,
            "vineyard.spill.path=/spill",
            "vineyard.spill.upperRate=0.9",
            "vineyard.spill.lowerRate=.25",
        )
    )
    assert "--spill_upper_rate=0.9" in args
    assert "--spill_lower_rate=0.25" in args


@pytest.mark.parametrize("helm_major", [3, 4])
@pytest.mark.parametrize("rate", ["1.5", "0.9x", "-0.1", "abc"])
def test_spill_rates_that_are_not_fractions_are_still_refused(helm_major: int, rate: str) -> None:
    with pytest.raises(HelmFailed) as failure:
        helm_template_with_set(
            helm_major, "vineyard.spill.path=/spill", f"vineyard.spill.upperRate={rate}"
        )
    assert "upperRate" in failure.value.stderr, failure.value.stderr


@pytest.mark.parametrize("helm_major", [3, 4])
def test_spill_rates_as_strings_are_still_compared(helm_major: int) -> None:
    with pytest.raises(HelmFailed) as failure:
        helm_template_with_set(
            helm_major,
            "vineyard.spill.path=/spill",
            "vineyard.spill.lowerRate=0.9",
            "vineyard.spill.upperRate=0.5",
        )
    assert (
        "vineyard.spill.lowerRate (0.9) must be below vineyard.spill.upperRate (0.5)"
        in failure.value.stderr
    )


def test_rpc_from_still_admits_the_chart_s_own_rpc_test_pod() -> None:
    """networkPolicy.rpcFrom used to lock out the `helm test` pod that checks the RPC port."""
    peer = {"namespaceSelector": {"matchLabels": {"team": "data"}}}
    manifests = render({"networkPolicy": {"enabled": True, "rpcFrom": [peer]}})
    test_pod_labels = find(manifests, "Pod", "vineyard-test-rpc")["metadata"]["labels"]
    (rule,) = find(manifests, "NetworkPolicy", "vineyard")["spec"]["ingress"]
    assert peer in rule["from"]
    admitted = [p["podSelector"]["matchLabels"] for p in rule["from"] if "podSelector" in p]
    assert any(
        all(test_pod_labels.get(k) == v for k, v in selector.items()) for selector in admitted
    ), admitted
    # Only this release's test pods, not every pod of the release.
    assert all(selector.get("app.kubernetes.io/component") == "test" for selector in admitted)


def test_rpc_from_without_tests_admits_only_the_listed_peers() -> None:
    peer = {"namespaceSelector": {"matchLabels": {"team": "data"}}}
    manifests = render(
        {"networkPolicy": {"enabled": True, "rpcFrom": [peer]}, "tests": {"enabled": False}}
    )
    assert find(manifests, "NetworkPolicy", "vineyard")["spec"]["ingress"][0]["from"] == [peer]


@pytest.mark.parametrize(
    ("scenario", "suggested"), [("hardened", False), ("hostpath", True), ("local-meta", True)]
)
def test_notes_suggest_helm_test_only_when_test_pods_render(scenario: str, suggested: bool) -> None:
    """The hardened scenario (RPC off, local metadata) renders no test pod; NOTES said otherwise."""
    text = notes("-f", str(CI_DIR / f"{scenario}-values.yaml"))
    pods = [m for m in render(scenario=scenario) if m["kind"] == "Pod"]
    assert ("helm test vineyard" in text) == suggested == bool(pods)


def test_notes_do_not_suggest_helm_test_when_tests_are_off() -> None:
    assert "helm test" not in notes("--set", "tests.enabled=false")
    assert run_helm_template({"tests": {"enabled": False}}).count("kind: Pod") == 0
