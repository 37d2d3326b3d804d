"""The repository's paths the suites use."""
from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "vineyard"
SCHEMA_PATH = CHART / "values.schema.json"
CI_DIR = CHART / "ci"
#: Binaries built by hack/build-tools.sh.
BIN = REPO / ".cache" / "bin"

#: Every scenario the chart supports; chart-testing lints and installs the same files.
SCENARIOS = sorted(p.name.removesuffix("-values.yaml") for p in CI_DIR.glob("*-values.yaml"))
