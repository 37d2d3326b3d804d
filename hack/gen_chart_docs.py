#!/usr/bin/env python3
"""Writes the values table of charts/vineyard/README.md from values.schema.json (descriptions,
types) and values.yaml (defaults). `--check` fails instead of writing when the file is stale."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[1] / "charts" / "vineyard"
BEGIN, END = "<!-- values-table:begin -->", "<!-- values-table:end -->"


def rows(
    schema: dict[str, Any], defaults: Any, root: dict[str, Any], path: str = ""
) -> Iterator[str]:
    if "$ref" in schema:
        definition = root["definitions"][schema["$ref"].rsplit("/", 1)[1]]
        schema = {**definition, **{k: v for k, v in schema.items() if k != "$ref"}}
    props = schema.get("properties")
    if props and isinstance(defaults, dict):
        for key, sub in props.items():
            yield from rows(sub, defaults.get(key), root, f"{path}.{key}" if path else key)
        return
    kind = schema.get("type", "")
    kind = " \\| ".join(kind) if isinstance(kind, list) else kind
    default = json.dumps(defaults) if defaults is not None else "null"
    description = " ".join(schema.get("description", "").split()).replace("|", "\\|")
    if "enum" in schema:
        description += " One of: " + ", ".join(f"`{json.dumps(v)}`" for v in schema["enum"]) + "."
    yield f"| `{path}` | {kind} | `{default}` | {description} |"


def table() -> str:
    schema = json.loads((CHART / "values.schema.json").read_text())
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    lines = [
        "| Key | Type | Default | Description |",
        "|---|---|---|---|",
        *rows(schema, defaults, schema),
    ]
    return "\n".join(lines)


def main() -> int:
    readme = CHART / "README.md"
    text = readme.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    updated = f"{head}{BEGIN}\n{table()}\n{END}{tail}"
    if "--check" in sys.argv[1:]:
        if updated != text:
            print(f"{readme} is stale: run hack/gen_chart_docs.py", file=sys.stderr)
            return 1
        return 0
    readme.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
