"""What real helm makes of ``--set`` expressions: the oracle for the parser tests.

A throwaway chart whose only template prints ``.Values`` as JSON; ``helm template --set ...``
then shows exactly the values helm parsed (the chart has no defaults to coalesce with).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

_TEMPLATE = """apiVersion: v1
kind: ConfigMap
metadata:
  name: oracle
data:
  values: {{ .Values | toJson | quote }}
"""


def make_oracle_chart(directory: Path) -> Path:
    chart = directory / "oracle"
    (chart / "templates").mkdir(parents=True, exist_ok=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: oracle\nversion: 0.1.0\n")
    (chart / "templates" / "values.yaml").write_text(_TEMPLATE)
    return chart


def helm_set(
    helm: str, chart: Path, *expressions: str, flag: str = "--set"
) -> dict[str, Any] | None:
    """The values helm builds from the expressions, or None when helm rejects them."""
    args = [helm, "template", "oracle", str(chart)]
    for expression in expressions:
        args += [flag, expression]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        return None
    document = yaml.safe_load(result.stdout)
    values: dict[str, Any] = json.loads(document["data"]["values"])
    return values
