"""Measurements the suites record: JSON objects under .cache/ that notes and tables are made
from. Nothing asserts on a duration: the machine is shared, so one says little about the code."""
from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.support.paths import REPO


def record_figures(path: Path, figures: Mapping[str, Any]) -> None:
    """Sets `figures` in the JSON object at `path` (made if missing), keeping its other keys."""
    data = json.loads(path.read_text()) if path.exists() else {}
    data.update(figures)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


TIMINGS_FILE = REPO / ".cache" / "e2e-timings.json"
#: This session's timings, printed in pytest's terminal summary (tests/e2e/conftest.py).
SESSION_TIMINGS: dict[str, dict[str, Any]] = {}


def record_timing(name: str, seconds: float, **details: Any) -> None:
    """Keeps a measurement for the session summary and in .cache/e2e-timings.json."""
    entry = {"seconds": round(seconds, 2), **details, "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    SESSION_TIMINGS[name] = entry
    record_figures(TIMINGS_FILE, {name: entry})
