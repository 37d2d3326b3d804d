"""Static scanners on every ci scenario's rendered manifests (hooks and helm-test pods
included): kube-score (built by hack/build-tools.sh) and checkov (its own venv, see
hack/install-scanners.sh). Zero findings except those in tests/reliability/scanner-allowlist.yaml,
each with its reason; an allow-list entry that matches nothing is stale and fails too."""
from __future__ import annotations

import fnmatch
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.chart_render import run_helm_template
from tests.support.paths import REPO, SCENARIOS

ALLOWLIST_PATH = Path(__file__).with_name("scanner-allowlist.yaml")
KUBE_SCORE = REPO / ".cache" / "bin" / "kube-score"
CHECKOV = REPO / ".cache" / "checkov-venv" / "bin" / "checkov"


@dataclass(frozen=True)
class Finding:
    scanner: str
    scenario: str
    check: str
    object: str      # Kind/name
    detail: str


def allowlist() -> dict[str, list[dict[str, Any]]]:
    return yaml.safe_load(ALLOWLIST_PATH.read_text()) or {}


def allowed_by(finding: Finding, entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    for entry in entries:
        if entry["check"] != finding.check:
            continue
        if not any(fnmatch.fnmatch(finding.object, p) for p in entry.get("objects", ["*"])):
            continue
        if not any(fnmatch.fnmatch(finding.scenario, p) for p in entry.get("scenarios", ["*"])):
            continue
        if "detail" in entry and entry["detail"] not in finding.detail:
            continue
        return entry
    return None


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """<dir>/<scenario>.yaml per scenario, each as a release and in a namespace named after it:
    checkov's graph checks (a pod and the NetworkPolicy selecting it) match labels across files
    and ignore namespaces, so two scenarios must never share a release label."""
    out = tmp_path_factory.mktemp("rendered")
    for scenario in SCENARIOS:
        (out / f"{scenario}.yaml").write_text(run_helm_template(
            scenario=scenario, release=scenario, namespace=scenario))
    return out


def kube_score(directory: Path) -> list[Finding]:
    if not KUBE_SCORE.exists():
        pytest.fail("kube-score not built: run `make tools` (hack/build-tools.sh)")
    findings = []
    for scenario in SCENARIOS:
        proc = subprocess.run([str(KUBE_SCORE), "score", "-o", "json",
                               str(directory / f"{scenario}.yaml")],
                              capture_output=True, text=True, check=False)
        # Exit 1 means "some check is not OK": the findings are in the JSON.
        assert proc.returncode in (0, 1), proc.stderr
        assert proc.stdout.startswith("["), proc.stderr
        for obj in json.loads(proc.stdout):
            name = f"{obj['type_meta']['kind']}/{obj['object_meta']['name']}"
            for check in obj["checks"]:
                if check["skipped"] or check["grade"] >= 10:
                    continue
                for comment in check.get("comments") or [{"path": "", "summary": ""}]:
                    findings.append(Finding(
                        "kube-score", scenario, check["check"]["id"], name,
                        f"{comment.get('path', '')}: {comment.get('summary', '')}"))
    return findings


def checkov_object(resource: str) -> str:
    """checkov's resource id, `Kind.namespace.name` (graph checks append the pod template's
    labels to the name: `...vineyard.helm.sh/chart-...`), as Kind/name."""
    kind, _, rest = resource.partition(".")
    name = rest.split(".", 1)[-1]
    for label in (".helm.sh/", ".app.kubernetes.io/"):
        name = name.split(label, 1)[0]
    return f"{kind}/{name}"


def checkov(directory: Path) -> list[Finding]:
    if not CHECKOV.exists():
        pytest.fail("checkov not installed: run `make scanners` (hack/install-scanners.sh)")
    # One run for every scenario: checkov takes most of its time starting up.
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE"}
    proc = subprocess.run([str(CHECKOV), "-d", str(directory), "--framework", "kubernetes",
                           "-o", "json", "--quiet", "--compact", "--skip-download",
                           "--skip-results-upload"],
                          capture_output=True, text=True, check=False, env=env)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    data = json.loads(proc.stdout) if proc.stdout.strip() else {}
    reports = data if isinstance(data, list) else [data]
    findings = []
    for report in reports:
        for failed in report.get("results", {}).get("failed_checks", []):
            scenario = Path(failed["file_path"]).name.removesuffix(".yaml")
            findings.append(Finding("checkov", scenario, failed["check_id"],
                                    checkov_object(failed["resource"]),
                                    failed.get("check_name", "")))
    assert findings or proc.returncode == 0, proc.stderr[-2000:]
    return findings


SCANNERS = {"kube-score": kube_score, "checkov": checkov}


@pytest.fixture(scope="module")
def findings(rendered: Path) -> dict[str, list[Finding]]:
    return {name: scan(rendered) for name, scan in SCANNERS.items()}


def test_allowlist_entries_each_have_a_reason() -> None:
    for scanner, entries in allowlist().items():
        assert scanner in SCANNERS
        for entry in entries:
            assert set(entry) <= {"check", "objects", "scenarios", "detail", "reason"}, entry
            reason = str(entry.get("reason", ""))
            assert len(reason.split()) >= 5, f"{scanner}: {entry} needs a reason"


@pytest.mark.parametrize("scanner", list(SCANNERS))
def test_scanner_finds_nothing_outside_the_allowlist(scanner: str, findings, record) -> None:
    entries = allowlist().get(scanner, [])
    found = findings[scanner]
    unexplained = [f for f in found if allowed_by(f, entries) is None]
    used = {id(allowed_by(f, entries)) for f in found}
    stale = [e["check"] for e in entries if id(e) not in used]
    assert unexplained == [], "\n".join(f"{f.scenario} {f.object} {f.check}: {f.detail}"
                                        for f in unexplained)
    assert stale == [], f"allow-list entries that match nothing: {stale}"
    checks = sorted({f.check for f in found})
    record(f"{scanner} on rendered manifests", area="Static scanners",
           figure=f"{len(SCENARIOS)} scenarios, {len(found)} raw findings of {len(checks)} checks",
           result=f"0 outside the allow-list ({len(entries)} entries, each with its reason: "
                  f"{', '.join(checks) or 'none'})")
