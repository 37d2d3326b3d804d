"""Render-level fixtures: real `helm template` runs of charts/vineyard, no cluster involved."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.chart_render import Manifest, render
from tests.support.paths import SCENARIOS, SCHEMA_PATH


@pytest.fixture(scope="session")
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


@pytest.fixture(scope="session")
def rendered_scenarios() -> dict[str, list[Manifest]]:
    """Each scenario rendered once per session (helm takes ~0.1 s a run)."""
    return {name: render(scenario=name) for name in SCENARIOS}
