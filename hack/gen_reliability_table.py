#!/usr/bin/env python3
"""Writes docs/reliability.md from the figures the reliability tests recorded in
.cache/reliability/*.json (tests/reliability/conftest.py `record`). Nothing in the table is
typed by hand: run `make reliability` (the tests, then this script), or this script alone after
running some of the tests. Rows whose test did not run in the last session keep their file
from an earlier run; each row says which commit its figures come from."""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / ".cache" / "reliability"
OUT = ROOT / "docs" / "reliability.md"
AREAS = ["Static scanners", "Values fuzzing", "Concurrency", "Admission", "Least privilege",
         "Faults", "etcd TLS"]

HEADER = """# Reliability and security checks

Every row is written by a test in `tests/reliability/` (the `Test` column) when it passes;
`hack/gen_reliability_table.py` collects them. Regenerate with `make reliability`. The fault
checks run on their own local cluster (`.cache/faults-cluster`); the others on the e2e cluster.
The nodes are kwok's (simulated): pods are scheduled, admitted and reported Ready, but no
container runs, so nothing here claims what a real vineyardd or etcd would do with its data.
`Commit` is HEAD when the row was recorded; `+uncommitted` means the chart, vineyard_helm,
localcluster or tests/reliability had uncommitted changes in the working tree at that moment.

"""

NOTES = """
## Not covered

- etcd data survival after a member is deleted, checked through vineyardd on a real node:
  kwok pods run no containers. The StatefulSet behaviour (same name, new pod) is checked;
  what etcd does with its data dir is etcd's.
- The static scanners read manifests only; admission (PodSecurity) is checked on the API server.

Allow-list of the scanners, each entry with its reason: `tests/reliability/scanner-allowlist.yaml`.
"""


def cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def main() -> int:
    rows = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))]
    if not rows:
        print(f"no results in {RESULTS}: run the reliability tests first", file=sys.stderr)
        return 1
    rows.sort(key=lambda r: (AREAS.index(r["area"]) if r["area"] in AREAS else 99, r["check"]))
    lines = [HEADER, "| Area | Check | Figure | Result | Test | Commit |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        test = r["test"].replace("tests/reliability/", "")
        lines.append(f"| {cell(r['area'])} | {cell(r['check'])} | {cell(r['figure'])} | "
                     f"{cell(r['result'])} | `{cell(test)}` | {r['commit']} |")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines) + "\n" + NOTES)
    print(f"wrote {OUT} ({len(rows)} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
