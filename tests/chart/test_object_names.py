"""Object names: valid for their kind by Kubernetes' own rules and unique within their kind, for
release names of every length helm allows (1..53) in every scenario with every optional object
on; release names no Service can carry are refused up front."""

from __future__ import annotations

import random
import re
import string
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.support.chart_render import HelmFailed, Manifest, find, render
from tests.support.paths import SCENARIOS

# Kubernetes' validation (apimachinery/pkg/util/validation): Services are DNS-1035 labels; a
# StatefulSet's pods are named <set>-<ordinal> and carry controller-revision-hash <set>-<hash>,
# a label value, so the set keeps to 52 characters of label alphabet; a CronJob's Jobs append an
# 11-character timestamp to its name (52 at most, the API server checks it); every other kind
# here is a DNS-1123 subdomain.
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
NAME_RULES: dict[str, tuple[re.Pattern[str], int]] = {
    "Service": (DNS1035_LABEL, 63),
    "StatefulSet": (DNS1123_LABEL, 52),
    "CronJob": (DNS1123_SUBDOMAIN, 52),
}
SUBDOMAIN = (DNS1123_SUBDOMAIN, 253)
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

# helm's own rule for release names (pkg/chartutil, ValidateReleaseName), at most 53 characters.
HELM_RELEASE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

# Every optional object on: network policies, test pods, a disruption budget (3 members).
EVERYTHING_ON: dict[str, Any] = {
    "networkPolicy": {"enabled": True},
    "tests": {"enabled": True},
    "etcd": {"replicaCount": 3},
}


def release_name(length: int, rng: random.Random) -> str:
    """A release name of that length that starts with a letter (the chart refuses others, see
    below); one in two contains "vineyard", which the full name then does not repeat."""
    alphabet = string.ascii_lowercase + string.digits + "-"
    if length >= 8 and rng.random() < 0.5:
        at = rng.randint(0, length - 8)
        name = [rng.choice(alphabet) for _ in range(length)]
        name[at : at + 8] = "vineyard"
    else:
        name = [rng.choice(alphabet) for _ in range(length)]
    name[0] = (
        rng.choice(string.ascii_lowercase) if name[0] not in string.ascii_lowercase else name[0]
    )
    if name[-1] == "-":
        name[-1] = rng.choice(string.ascii_lowercase + string.digits)
    result = "".join(name)
    assert HELM_RELEASE_NAME.match(result), result
    assert len(result) == length, result
    return result


def name_problems(manifests: list[Manifest]) -> list[str]:
    problems = []
    for kind, count in Counter((m["kind"], m["metadata"]["name"]) for m in manifests).items():
        if count > 1:
            problems.append(f"{count} objects {kind[0]} {kind[1]}")
    for m in manifests:
        kind, name = m["kind"], m["metadata"]["name"]
        pattern, limit = NAME_RULES.get(kind, SUBDOMAIN)
        if not pattern.match(name) or len(name) > limit:
            problems.append(f"{kind} {name!r} ({len(name)} characters) breaks the {kind} name rule")
        for where, labels in labelled(m):
            for key, value in labels.items():
                if len(str(value)) > 63 or not LABEL_VALUE.match(str(value)):
                    problems.append(
                        f"{kind} {name}: {where} label {key}={value!r} is not a label value"
                    )
    return problems


def labelled(m: Manifest) -> list[tuple[str, dict[str, Any]]]:
    spec = m.get("spec", {})
    found = [
        ("metadata", m["metadata"].get("labels", {})),
        ("selector", spec.get("selector", {}).get("matchLabels", {})),
    ]
    template = spec.get("template") or spec.get("jobTemplate", {}).get("spec", {}).get("template")
    if template:
        found.append(("pod template", template["metadata"].get("labels", {})))
    return found


def cases() -> list[tuple[str, int, str]]:
    rng = random.Random(13)
    return [
        (scenario, length, release_name(length, rng))
        for scenario in SCENARIOS
        for length in range(1, 54)
    ]


def test_names_are_valid_and_unique_for_every_release_name_length() -> None:
    """One render per (scenario, length): 7 x 53, on a thread pool (helm runs as processes)."""

    def check(case: tuple[str, int, str]) -> list[str]:
        scenario, _, release = case
        manifests = render(EVERYTHING_ON, scenario=scenario, release=release, namespace="ns")
        return [
            f"{scenario}, release {release!r} ({len(release)}): {p}"
            for p in name_problems(manifests)
        ]

    with ThreadPoolExecutor(max_workers=4) as pool:
        problems = [p for found in pool.map(check, cases()) for p in found]
    assert problems == [], "\n".join(problems[:20])


def test_the_checker_sees_a_duplicate_and_a_long_statefulset_name() -> None:
    """The property above can fail: the checker flags what the old templates produced."""
    manifests = render(EVERYTHING_ON, release="data")
    policy = find(manifests, "NetworkPolicy", "data-vineyard")
    twin = {**policy, "metadata": {**policy["metadata"]}}
    long_set = find(manifests, "StatefulSet")
    long_set = {**long_set, "metadata": {**long_set["metadata"], "name": "s" * 53}}
    problems = name_problems([policy, twin, long_set])
    assert any("2 objects NetworkPolicy data-vineyard" in p for p in problems), problems
    assert any("StatefulSet 'sss" in p for p in problems), problems


def test_a_43_character_release_gets_two_distinct_network_policies() -> None:
    """Regression: <release>-vineyard-etcd cut to 52 characters used to equal <release>-vineyard."""
    release = "r" * 43
    policies = [
        m["metadata"]["name"]
        for m in render(EVERYTHING_ON, release=release)
        if m["kind"] == "NetworkPolicy"
    ]
    assert len(policies) == len(set(policies)) == 2, policies


def test_a_48_character_release_gets_distinct_test_pods() -> None:
    """Regression: <release>-vineyard-test-rpc and -test-etcd cut to 63 characters were equal."""
    release = "r" * 48
    pods = sorted(
        m["metadata"]["name"] for m in render(EVERYTHING_ON, release=release) if m["kind"] == "Pod"
    )
    assert len(set(pods)) == 3, pods
    assert pods[0].endswith("-test-data-get"), pods
    assert pods[1].endswith("-test-etcd"), pods
    assert pods[2].endswith("-test-rpc"), pods


def test_short_release_names_keep_the_names_they_always_had() -> None:
    names = {
        (m["kind"], m["metadata"]["name"])
        for m in render(EVERYTHING_ON, scenario="pvc", release="data")
    }
    assert {
        ("StatefulSet", "data-vineyard-etcd"),
        ("Service", "data-vineyard-etcd-headless"),
        ("Service", "etcd-for-data-vineyard"),
        ("Service", "data-vineyard-rpc"),
        ("PersistentVolumeClaim", "data-vineyard-socket"),
        ("Pod", "data-vineyard-test-rpc"),
        ("NetworkPolicy", "data-vineyard"),
        ("NetworkPolicy", "data-vineyard-etcd"),
    } <= names


@pytest.mark.parametrize("release", ["1st", "v6d.prod", "0"])
def test_release_names_no_service_can_carry_are_refused_naming_the_release(release: str) -> None:
    """helm allows a leading digit and dots; Service names (DNS-1035 labels) do not."""
    assert HELM_RELEASE_NAME.match(release)
    with pytest.raises(HelmFailed) as failure:
        render(release=release)
    assert "INVALID VALUES" in failure.value.stderr
    assert f'"{release}"' in failure.value.stderr
    assert "fullnameOverride" in failure.value.stderr


def test_fullname_override_rescues_a_release_name_starting_with_a_digit() -> None:
    names = {
        m["metadata"]["name"] for m in render({"fullnameOverride": "vineyard-one"}, release="1st")
    }
    assert "vineyard-one-rpc" in names


def test_a_full_name_that_the_etcd_objects_would_share_is_refused() -> None:
    """A 52-character full name ending in -etcd is what <fullname cut to 47>-etcd gives back."""
    release = "vineyard" + "x" * 39 + "-etcd"
    assert len(release) == 52
    with pytest.raises(HelmFailed) as failure:
        render(release=release)
    assert "-etcd" in failure.value.stderr
    assert "NetworkPolicies" in failure.value.stderr
