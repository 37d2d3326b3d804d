"""Property: any values document the schema accepts renders into valid Kubernetes objects, or is
refused by the chart's own cross-field check with a message naming the keys; never a template
error."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from tests.support.chart_render import HelmFailed, Manifest, deep_merge, default_values, render
from tests.support.paths import SCHEMA_PATH

# Members of the schema that stand for deep Kubernetes types (affinity terms, env vars, probes)
# are open objects there; the generator leaves them empty rather than invent Kubernetes objects.
OPEN_OBJECT = {"type": "object", "maxProperties": 0}


def generation_schema() -> dict[str, Any]:
    schema = copy.deepcopy(json.loads(SCHEMA_PATH.read_text()))

    def bound(node: Any) -> None:
        if isinstance(node, dict):
            if (
                node.get("type") == "object"
                and "properties" not in node
                and not isinstance(node.get("additionalProperties"), dict)
            ):
                node.clear()
                node.update(OPEN_OBJECT)
                return
            if node.get("type") == "array":
                node["maxItems"] = 2
            if isinstance(node.get("additionalProperties"), dict):
                node["maxProperties"] = 2
            if (
                "items" in node
                and node["items"].get("type") == "object"
                and node["items"].get("required")
                in (["name"], ["containerPort"], ["name", "mountPath"])
            ):
                node["maxItems"] = 0
            if "items" in node and node["items"].get("$ref") == "#/definitions/volume":
                # A volume is a name and one source whose fields (an NFS server, a secret's
                # name) the schema leaves to the API server: an empty source is no volume.
                node["maxItems"] = 0
            for value in node.values():
                bound(value)
        elif isinstance(node, list):
            for value in node:
                bound(value)

    bound(schema)
    return schema


def strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in [k, *strings(v)]]
    if isinstance(node, list):
        return [s for v in node for s in strings(v)]
    return []


def yaml_representable(values: dict[str, Any]) -> bool:
    """YAML files cannot carry control characters or lone surrogates; a user cannot write them."""
    return all(s.isprintable() and s.encode(errors="ignore").decode() == s for s in strings(values))


def check(manifests: list[Manifest]) -> None:
    for manifest in manifests:
        kubernetes_validate.validate(manifest, kubernetes_validate.latest_version(), strict=True)


def section(name: str) -> st.SearchStrategy[Any]:
    """Values for one top-level key, from its own sub-schema (the definitions it refers to kept)."""
    schema = generation_schema()
    return from_schema({**schema["properties"][name], "definitions": schema["definitions"]})


def documents() -> st.SearchStrategy[dict[str, Any]]:
    """Whole values documents, one optional section at a time: generating the top-level document
    in one go makes hypothesis-jsonschema filter nearly everything through the if/then rules."""
    names = list(json.loads(SCHEMA_PATH.read_text())["properties"])
    return st.fixed_dictionaries({}, optional={name: section(name) for name in names})


@settings(
    max_examples=40,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(values=documents())
def test_schema_valid_values_render_valid_objects(values: dict[str, Any]) -> None:
    assume(yaml_representable(values))
    merged = deep_merge(default_values(), values)
    assume(
        not list(
            jsonschema.Draft7Validator(json.loads(SCHEMA_PATH.read_text())).iter_errors(merged)
        )
    )
    try:
        manifests = render(values)
    except HelmFailed as failure:
        refused = failure.stderr
    else:
        check(manifests)
        return
    # Schema-valid values only the chart's cross-field rules (validateValues) refuse.
    assert "INVALID VALUES" in refused, refused


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    socket_type=st.sampled_from(["hostPath", "persistentVolumeClaim", "emptyDir"]),
    meta=st.sampled_from(["etcd", "local"]),
    rpc=st.booleans(),
    replicas=st.sampled_from([1, 3, 5]),
    persistence=st.booleans(),
    strategy=st.sampled_from(["RollingUpdate", "OnDelete"]),
)
def test_every_combination_of_modes_renders_valid_objects(
    socket_type: str, meta: str, rpc: bool, replicas: int, persistence: bool, strategy: str
) -> None:
    values: dict[str, Any] = {
        "socket": {
            "volume": {"type": socket_type, "persistentVolumeClaim": {"storageClass": "standard"}}
        },
        "vineyard": {"meta": meta, "rpc": {"enabled": rpc}},
        "etcd": {"replicaCount": replicas, "persistence": {"enabled": persistence}},
        "updateStrategy": {"type": strategy},
    }
    if socket_type == "emptyDir":
        values["sidecars"] = [{"name": "worker", "image": "python:3.11"}]
    if meta == "etcd" and replicas > 1 and not persistence:
        # A member replaced on emptyDir cannot rejoin: refused, naming both values.
        with pytest.raises(HelmFailed) as failure:
            render(values)
        assert f"etcd.replicaCount ({replicas}) with etcd.persistence.enabled=false" in str(
            failure.value.stderr
        )
        return
    manifests = render(values)
    check(manifests)
    kinds = {m["kind"] for m in manifests}
    assert ("StatefulSet" in kinds) == (meta == "etcd")
    assert ("PodDisruptionBudget" in kinds) == (meta == "etcd" and replicas > 1)
