#!/usr/bin/env python3
"""Writes docs/reliability.md from docs/reliability.json, the committed figures of
tests/reliability. Nothing in the table is typed by hand.

    python hack/gen_reliability_table.py                # what `make reliability` runs
    python hack/gen_reliability_table.py --render-only  # docs/reliability.md from the json alone

By default it first merges what the reliability tests recorded in .cache/reliability/*.json
(tests/reliability/conftest.py `record`, one file per check) into docs/reliability.json: a check
recorded in the last session replaces its row, the others keep theirs from an earlier run (each
row says which commit its figures come from). A check no test records any more stays until its
row is deleted from the json. `--render-only` reads the json alone (no .cache needed):
tests/unit/test_generated_docs.py renders it into a temporary file and compares it with the
committed docs/reliability.md.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / ".cache" / "reliability"
DATA = ROOT / "docs" / "reliability.json"
OUT = ROOT / "docs" / "reliability.md"
AREAS = ["Static scanners", "Values fuzzing", "Concurrency", "Admission", "Least privilege",
         "Faults", "etcd TLS"]

HEADER = """# Reliability and security checks

Every row is written by a test in `tests/reliability/` (the `Test` column) when it passes;
`hack/gen_reliability_table.py` collects them. Regenerate with `make reliability`. The fault
checks run on a local cluster of their run alone (`.cache/faults-cluster-<pid>`); the others on
the e2e cluster (`.cache/e2e-cluster`).
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

Row = dict[str, Any]


def cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table_order(rows: list[Row]) -> list[Row]:
    return sorted(rows, key=lambda r: (AREAS.index(r["area"]) if r["area"] in AREAS else 99,
                                       r["check"]))


def merge(committed: list[Row], recorded: list[Row]) -> list[Row]:
    """The committed rows, each replaced by the one recorded for the same check."""
    by_check = {r["check"]: r for r in committed}
    by_check.update({r["check"]: r for r in recorded})
    return table_order(list(by_check.values()))


def render(rows: list[Row]) -> str:
    lines = [HEADER, "| Area | Check | Figure | Result | Test | Commit |",
             "|---|---|---|---|---|---|"]
    for r in table_order(rows):
        test = r["test"].replace("tests/reliability/", "")
        lines.append(f"| {cell(r['area'])} | {cell(r['check'])} | {cell(r['figure'])} | "
                     f"{cell(r['result'])} | `{cell(test)}` | {r['commit']} |")
    return "\n".join(lines) + "\n" + NOTES


def load(path: Path) -> list[Row]:
    rows: list[Row] = json.loads(path.read_text()) if path.exists() else []
    return rows


def dump(rows: list[Row]) -> str:
    return json.dumps(rows, indent=2, ensure_ascii=False, default=str) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--render-only", action="store_true",
                        help=f"render {DATA.relative_to(ROOT)} alone, merge nothing from "
                             f"{RESULTS.relative_to(ROOT)}")
    parser.add_argument("--data", type=Path, default=DATA, help="%(default)s")
    parser.add_argument("--out", type=Path, default=OUT, help="%(default)s")
    args = parser.parse_args(argv)
    rows = load(args.data)
    if not args.render_only:
        recorded = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))]
        if not recorded:
            print(f"no results in {RESULTS}: run the reliability tests first", file=sys.stderr)
            return 1
        rows = merge(rows, recorded)
        args.data.parent.mkdir(parents=True, exist_ok=True)
        args.data.write_text(dump(rows))
        print(f"merged {len(recorded)} recorded rows into {args.data} ({len(rows)} rows)")
    if not rows:
        print(f"no rows in {args.data}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(rows))
    print(f"wrote {args.out} ({len(rows)} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
