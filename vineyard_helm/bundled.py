"""Where the vineyard chart and its schema are.

The wheel carries the chart at ``vineyard_helm/chart/`` (hatch force-includes
``charts/vineyard/`` there at build time; nothing is committed twice). In a repo checkout or an
editable install that directory does not exist, and ``charts/vineyard/`` next to the package is
used instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import VineyardHelmError

_PACKAGE_DIR = Path(__file__).resolve().parent
_CANDIDATES = (
    _PACKAGE_DIR / "chart",
    _PACKAGE_DIR.parent / "charts" / "vineyard",
)


def chart_path() -> Path:
    """Directory of the chart bundled with this package (or of the repo checkout)."""
    for candidate in _CANDIDATES:
        if (candidate / "Chart.yaml").is_file():
            return candidate
    raise VineyardHelmError(
        "the vineyard chart is not bundled with this installation (looked in "
        + ", ".join(str(c) for c in _CANDIDATES)
        + "); pass chart= a directory, .tgz, repo or OCI reference"
    )


def schema_path(chart: Path | None = None) -> Path:
    """Path of values.schema.json of ``chart`` (default: the bundled chart)."""
    return (chart or chart_path()) / "values.schema.json"


def load_schema(chart: Path | None = None) -> dict[str, Any] | None:
    """The chart's JSON schema, or None when the chart has none."""
    import json

    path = schema_path(chart)
    if not path.is_file():
        return None
    with path.open(encoding="utf-8") as handle:
        schema: dict[str, Any] = json.load(handle)
    return schema


def load_default_values(chart: Path | None = None) -> dict[str, Any]:
    """The chart's values.yaml (empty when absent)."""
    from .values import load_yaml

    path = (chart or chart_path()) / "values.yaml"
    if not path.is_file():
        return {}
    loaded = load_yaml(path.read_text(encoding="utf-8"))
    return loaded if isinstance(loaded, dict) else {}


def chart_version(chart: Path | None = None) -> str:
    """The ``version:`` of Chart.yaml: the single version of this project."""
    import re

    text = ((chart or chart_path()) / "Chart.yaml").read_text(encoding="utf-8")
    match = re.search(r"(?m)^version: *[\"']?(?P<version>[^\s\"']+)", text)
    return match.group("version") if match else "0+unknown"
