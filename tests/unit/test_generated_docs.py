"""The generated documents are what their generators make of the committed data: bench/results.md
from bench/results.json (bench/report.py), docs/reliability.md from docs/reliability.json
(hack/gen_reliability_table.py). Each is regenerated into a temporary file and compared."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def regenerate(script: str, *args: str) -> None:
    proc = subprocess.run([sys.executable, str(REPO / script), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_bench_results_md_is_generated_from_results_json(tmp_path: Path) -> None:
    out = tmp_path / "results.md"
    regenerate("bench/report.py", "--no-plots", "--out", str(out))
    assert out.read_text() == (REPO / "bench" / "results.md").read_text(), (
        "bench/results.md is not what bench/report.py makes of bench/results.json: "
        "run `.cache/venv/bin/python bench/report.py` (make bench does)"
    )


def test_every_plot_the_bench_results_link_is_committed() -> None:
    linked = re.findall(r"!\[[^]]*\]\((plots/[^)]+)\)", (REPO / "bench" / "results.md").read_text())
    assert linked
    for plot in linked:
        assert (REPO / "bench" / plot).is_file(), plot


def test_reliability_md_is_generated_from_reliability_json(tmp_path: Path) -> None:
    out = tmp_path / "reliability.md"
    regenerate("hack/gen_reliability_table.py", "--render-only", "--out", str(out))
    assert out.read_text() == (REPO / "docs" / "reliability.md").read_text(), (
        "docs/reliability.md is not what hack/gen_reliability_table.py makes of "
        "docs/reliability.json: run `make reliability` (or the script with --render-only)"
    )


def test_every_reliability_row_names_a_test_that_exists() -> None:
    rows = json.loads((REPO / "docs" / "reliability.json").read_text())
    assert rows
    for row in rows:
        path, _, name = row["test"].partition("::")
        source = REPO / path
        assert source.is_file(), row["test"]
        function = name.split("[", 1)[0].rsplit("::", 1)[-1]
        assert re.search(rf"^\s*def {re.escape(function)}\(", source.read_text(), re.M), (
            f"{row['check']}: {row['test']} names no test in {path}"
        )
