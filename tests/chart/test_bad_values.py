"""Bad values are refused before anything renders, with a message that names the key."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from tests.support.chart_render import HelmFailed, deep_merge, default_values, run_helm_template

# (case id, user values, the key the error must name as jsonschema paths it, as helm paths it)
SCHEMA_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("wrong-type-size", {"vineyard": {"size": 256}}, "vineyard/size"),
    ("wrong-type-rpc-enabled", {"vineyard": {"rpc": {"enabled": "yes"}}}, "vineyard/rpc/enabled"),
    ("wrong-type-replicas", {"etcd": {"replicaCount": "3"}}, "etcd/replicaCount"),
    ("unknown-top-level-key", {"vinyard": {"size": "1Gi"}}, "vinyard"),
    ("unknown-nested-key", {"socket": {"volume": {"hostpath": {"path": "/x"}}}}, "hostpath"),
    ("even-etcd-replicas", {"etcd": {"replicaCount": 2}}, "etcd/replicaCount"),
    ("bad-size-quantity", {"vineyard": {"size": "8 GB"}}, "vineyard/size"),
    ("bad-size-fraction", {"vineyard": {"size": "1.5Gi"}}, "vineyard/size"),
    (
        "bad-resource-quantity",
        {"resources": {"limits": {"memory": "lots"}}},
        "resources/limits/memory",
    ),
    ("bad-socket-mode", {"socket": {"access": {"mode": "rwxr-x---"}}}, "socket/access/mode"),
    ("unknown-socket-type", {"socket": {"volume": {"type": "nfs"}}}, "socket/volume/type"),
    (
        "pvc-without-class-or-claim",
        {"socket": {"volume": {"type": "persistentVolumeClaim"}}},
        "socket/volume/persistentVolumeClaim",
    ),
    ("external-etcd-without-endpoints", {"etcd": {"enabled": False}}, "etcd/external/endpoints"),
    ("emptydir-without-sidecars", {"socket": {"volume": {"type": "emptyDir"}}}, "sidecars"),
    ("latest-tag", {"image": {"tag": "latest"}}, "image/tag"),
    ("bad-digest", {"image": {"digest": "md5:abc"}}, "image/digest"),
    ("short-grace-period", {"terminationGracePeriodSeconds": 30}, "terminationGracePeriodSeconds"),
    ("bad-port", {"vineyard": {"rpc": {"port": 70000}}}, "vineyard/rpc/port"),
    ("bad-update-strategy", {"updateStrategy": {"type": "Recreate"}}, "updateStrategy/type"),
    ("bad-extra-arg", {"vineyard": {"extraArgs": ["--size 8Gi"]}}, "vineyard/extraArgs/0"),
    (
        "relative-host-path",
        {"socket": {"volume": {"hostPath": {"path": "run/vineyard"}}}},
        "socket/volume/hostPath/path",
    ),
    (
        "bad-endpoint",
        {"etcd": {"enabled": False, "external": {"endpoints": ["etcd:2379"]}}},
        "etcd/external/endpoints/0",
    ),
]

# Cross-field rules the chart's validateValues helper enforces:
# (case id, values, words in the message)
TEMPLATE_CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "memory-limit-below-size",
        {"vineyard": {"size": "1Gi"}, "resources": {"limits": {"memory": "512Mi"}}},
        ["resources.limits.memory", "vineyard.size", "512Mi", "1Gi"],
    ),
    (
        "memory-limit-below-size-decimal-units",
        {"vineyard": {"size": "2G"}, "resources": {"limits": {"memory": "1900M"}}},
        ["resources.limits.memory", "vineyard.size"],
    ),
    (
        "spill-rates-inverted",
        {"vineyard": {"spill": {"path": "/spill", "lowerRate": 0.9, "upperRate": 0.5}}},
        ["vineyard.spill.lowerRate", "vineyard.spill.upperRate"],
    ),
]


def schema_errors(schema: dict[str, Any], user_values: dict[str, Any]) -> list[str]:
    values = deep_merge(default_values(), user_values)
    return [
        "/".join(str(p) for p in e.absolute_path) + ": " + e.message
        for e in jsonschema.Draft7Validator(schema).iter_errors(values)
    ]


@pytest.mark.parametrize(("case", "values", "key"), SCHEMA_CASES, ids=[c[0] for c in SCHEMA_CASES])
def test_schema_rejects_and_names_the_key(
    schema: dict[str, Any], case: str, values: dict[str, Any], key: str
) -> None:
    errors = schema_errors(schema, values)
    assert errors, f"{case}: accepted"
    assert any(key in e for e in errors), errors


@pytest.mark.parametrize(("case", "values", "key"), SCHEMA_CASES, ids=[c[0] for c in SCHEMA_CASES])
@pytest.mark.parametrize("helm_major", [3, 4])
def test_helm_refuses_and_names_the_key(
    case: str, values: dict[str, Any], key: str, helm_major: int
) -> None:
    with pytest.raises(HelmFailed) as failure:
        run_helm_template(values, helm_major=helm_major)
    assert key.rsplit("/", 1)[-1] in failure.value.stderr, failure.value.stderr


@pytest.mark.parametrize(
    ("case", "values", "words"), TEMPLATE_CASES, ids=[c[0] for c in TEMPLATE_CASES]
)
def test_cross_field_rules_fail_with_every_problem_named(
    case: str, values: dict[str, Any], words: list[str]
) -> None:
    with pytest.raises(HelmFailed) as failure:
        run_helm_template(values)
    for word in words:
        assert word in failure.value.stderr, failure.value.stderr


def test_all_cross_field_problems_are_reported_at_once() -> None:
    values = {
        "vineyard": {
            "size": "1Gi",
            "spill": {"path": "/spill", "lowerRate": 0.9, "upperRate": 0.5},
        },
        "resources": {"limits": {"memory": "512Mi"}},
    }
    with pytest.raises(HelmFailed) as failure:
        run_helm_template(values)
    assert "resources.limits.memory" in failure.value.stderr
    assert "vineyard.spill.lowerRate" in failure.value.stderr


@pytest.mark.parametrize(
    ("size", "limit"), [("1Gi", "1Gi"), ("1G", "1Gi"), ("512Mi", "1G"), ("1024M", "1Gi")]
)
def test_memory_limit_at_or_above_size_is_accepted(size: str, limit: str) -> None:
    run_helm_template({"vineyard": {"size": size}, "resources": {"limits": {"memory": limit}}})
