#!/usr/bin/env bash
# Installs checkov, pinned in pyproject.toml's `scan` extra, into its own venv
# (.cache/checkov-venv): checkov pins packaging==23.2, which pytest, build and hatchling in the
# test extra refuse, so the two cannot share one environment. Idempotent (a stamp file).
# kube-score, the other scanner, is a Go tool: hack/build-tools.sh builds it.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="$ROOT/.cache/checkov-venv"
SPEC="$(python3 - "$ROOT/pyproject.toml" <<'PY'
import sys, tomllib
extra = tomllib.load(open(sys.argv[1], "rb"))["project"]["optional-dependencies"]["scan"]
print(" ".join(extra))
PY
)"
if [[ -x "$VENV/bin/checkov" && "$(cat "$VENV/.installed" 2>/dev/null)" == "$SPEC" ]]; then
  echo "install-scanners: $SPEC up to date" >&2
  exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
# shellcheck disable=SC2086
"$VENV/bin/python" -m pip install -q $SPEC
echo "$SPEC" >"$VENV/.installed"
echo "install-scanners: $SPEC installed in $VENV" >&2
