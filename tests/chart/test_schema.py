"""values.schema.json: one schema at the root and in the chart, closed, described, and strict."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.support.chart_render import deep_merge, default_values, scenario_values
from tests.support.helm import helm_binary
from tests.support.paths import CHART, REPO, SCENARIOS, SCHEMA_PATH


def walk_schemas(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (path, sub-schema) reachable through properties, items and definitions."""
    if not isinstance(node, dict):
        return
    yield path, node
    for key, sub in node.get("properties", {}).items():
        yield from walk_schemas(sub, f"{path}.{key}" if path else key)
    for key, sub in node.get("definitions", {}).items():
        yield from walk_schemas(sub, f"#{key}")
    if isinstance(node.get("items"), dict):
        yield from walk_schemas(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk_schemas(node["additionalProperties"], f"{path}.*")


def walk_values(values: Any, path: str = "") -> Iterator[str]:
    """The dotted path of every key in a values document."""
    if isinstance(values, dict):
        for key, sub in values.items():
            child = f"{path}.{key}" if path else key
            yield child
            yield from walk_values(sub, child)


def test_root_schema_is_byte_identical_to_the_chart_schema() -> None:
    assert (REPO / "values.schema.json").read_bytes() == SCHEMA_PATH.read_bytes()


def test_schema_is_valid_draft_07(schema: dict[str, Any]) -> None:
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(schema)


# Objects left open on purpose, with the reason.
OPEN_BY_DESIGN = {
    # Helm hands an umbrella chart's globals to every subchart and validates them against each
    # subchart's schema: a closed `global` would refuse the other charts' globals.
    "global": "globals of the other charts in an umbrella release",
}


def test_every_object_in_the_schema_is_closed(schema: dict[str, Any]) -> None:
    open_objects = [
        path
        for path, node in walk_schemas(schema)
        if node.get("type") == "object"
        and "properties" in node
        and node.get("additionalProperties") is not False
    ]
    assert open_objects == list(OPEN_BY_DESIGN)


@pytest.mark.parametrize("helm_major", [3, 4])
def test_an_umbrella_chart_s_other_globals_are_accepted(helm_major: int) -> None:
    values = {"global": {"imageRegistry": "", "storageClass": "fast", "postgresql": {"auth": {}}}}
    proc = helm_template(helm_major, CHART, values)
    assert proc.returncode == 0, proc.stderr


def test_every_property_is_typed_and_described(schema: dict[str, Any]) -> None:
    for path, node in walk_schemas(schema):
        if not path or path.startswith("#") or "$ref" in node or path.endswith(("*", "[]")):
            continue
        assert node.get("description"), f"{path} has no description"
        assert "type" in node, f"{path} has no type"


@pytest.mark.parametrize("scenario", ["defaults", *SCENARIOS])
def test_values_and_every_scenario_validate(schema: dict[str, Any], scenario: str) -> None:
    values = default_values()
    if scenario != "defaults":
        values = deep_merge(values, scenario_values(scenario))
    errors = [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(values)]
    assert errors == []


@pytest.mark.parametrize("scenario", ["defaults", *SCENARIOS])
def test_every_key_in_use_is_declared_in_the_schema(schema: dict[str, Any], scenario: str) -> None:
    """Belt and braces to additionalProperties: look up each key of the document in the schema.
    Below a free-form map (labels, resource requests) or a $ref, validation does the checking."""
    values = default_values() if scenario == "defaults" else scenario_values(scenario)
    nodes = dict(walk_schemas(schema))
    for key in walk_values(values):
        parent = key.rpartition(".")[0]
        parent_node = nodes.get(parent, {})
        free_form = "$ref" in parent_node or isinstance(
            parent_node.get("additionalProperties"), dict
        )
        assert key in nodes or free_form or parent not in nodes, (
            f"{key} ({scenario}) is not in the schema"
        )


def helm_template(
    helm_major: int, chart: Path, values: dict[str, Any]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm_binary(helm_major), "template", "vineyard", str(chart), "-f", "-"],
        input=json.dumps(values),
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("helm_major", [3, 4])
def test_chart_schema_file_is_the_one_helm_reads(helm_major: int, tmp_path: Path) -> None:
    """helm refuses what only SCHEMA_PATH refuses (the templates ignore an unknown key); without
    that file the same values render; and an edit to that file alone changes what helm refuses."""
    unknown_key = {"vineyard": {"sise": "1Gi"}}
    refused = helm_template(helm_major, CHART, unknown_key)
    assert refused.returncode != 0
    assert "schema" in refused.stderr, refused.stderr
    assert "sise" in refused.stderr, refused.stderr

    copy = tmp_path / "vineyard"
    shutil.copytree(CHART, copy)
    (copy / SCHEMA_PATH.relative_to(CHART)).unlink()
    without = helm_template(helm_major, copy, unknown_key)
    assert without.returncode == 0, without.stderr

    edited = json.loads(SCHEMA_PATH.read_text())
    edited["properties"]["vineyard"]["properties"]["size"]["enum"] = ["7Gi"]
    (copy / SCHEMA_PATH.relative_to(CHART)).write_text(json.dumps(edited))
    assert helm_template(helm_major, CHART, {}).returncode == 0
    narrowed = helm_template(helm_major, copy, {})
    assert narrowed.returncode != 0
    assert "size" in narrowed.stderr, narrowed.stderr
    assert "7Gi" in narrowed.stderr, narrowed.stderr
