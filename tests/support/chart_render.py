"""Renders charts/vineyard with the real helm binaries (`helm template`), no cluster involved."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.helm import helm_binary
from tests.support.paths import CHART, CI_DIR

Manifest = dict[str, Any]


class HelmFailed(Exception):
    def __init__(self, stderr: str) -> None:
        super().__init__(stderr)
        self.stderr = stderr


def run_helm_template(
    values: dict[str, Any] | None = None,
    *,
    scenario: str | None = None,
    release: str = "vineyard",
    namespace: str = "vineyard",
    helm_major: int = 4,
    kube_version: str | None = None,
    show_only: str | None = None,
    chart: Path = CHART,
    extra_args: tuple[str, ...] = (),
) -> str:
    """Runs `helm template` and returns its stdout; raises HelmFailed with stderr on failure.
    `chart` renders a copy instead (tests that edit a template); `extra_args` go to helm as is."""
    cmd = [helm_binary(helm_major), "template", release, str(chart), "--namespace", namespace]
    cmd += extra_args
    if scenario:
        cmd += ["-f", str(CI_DIR / f"{scenario}-values.yaml")]
    if values is not None:
        # A JSON document is valid YAML and keeps types exact (no --set coercion).
        cmd += ["-f", "-"]
    if kube_version:
        cmd += ["--kube-version", kube_version]
    if show_only:
        cmd += ["--show-only", show_only]
    proc = subprocess.run(
        cmd,
        input=json.dumps(values, ensure_ascii=False) if values is not None else None,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise HelmFailed(proc.stderr)
    return proc.stdout


def render(values: dict[str, Any] | None = None, **kwargs: Any) -> list[Manifest]:
    """The rendered objects of the chart, as dicts, hooks included."""
    return [doc for doc in yaml.safe_load_all(run_helm_template(values, **kwargs)) if doc]


def find(manifests: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    matches = [
        m
        for m in manifests
        if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)
    ]
    assert len(matches) == 1, (
        f"expected one {kind} {name or ''}, found {[m['metadata']['name'] for m in matches]}"
    )
    return matches[0]


def scenario_values(scenario: str) -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((CI_DIR / f"{scenario}-values.yaml").read_text())
    return values or {}


def default_values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return values


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """helm's -f merge: maps merge key by key, everything else (lists too) is replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def render_notes(*args: str, release: str = "vineyard", namespace: str = "vineyard") -> str:
    """NOTES.txt as `helm install --dry-run=client` prints it (offline: no cluster is contacted)."""
    proc = subprocess.run(
        [
            helm_binary(4),
            "install",
            release,
            str(CHART),
            "-n",
            namespace,
            "--dry-run=client",
            *args,
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "KUBECONFIG": os.devnull},
    )
    return proc.stdout.split("NOTES:\n", 1)[1]


def pod_spec(workload: Manifest) -> dict[str, Any]:
    """The pod template's spec of a DaemonSet or StatefulSet."""
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def container(spec: dict[str, Any], name: str = "vineyardd") -> dict[str, Any]:
    """A container or init container of a pod spec, by name."""
    return next(c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == name)


def invalid_objects(manifests: list[Manifest]) -> list[str]:
    """Objects the Kubernetes OpenAPI schema (newest version known) refuses, with the reason."""
    import kubernetes_validate  # type: ignore[import-untyped]

    problems = []
    for manifest in manifests:
        try:
            kubernetes_validate.validate(
                manifest, kubernetes_validate.latest_version(), strict=True
            )
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{manifest['kind']} {manifest['metadata']['name']}: {error.message}")
    return problems


def refusal(values: dict[str, Any], **kwargs: Any) -> str:
    """The chart's own refusal (validateValues' INVALID VALUES) of values, as helm prints it."""
    with pytest.raises(HelmFailed) as failure:
        run_helm_template(values, **kwargs)
    assert "INVALID VALUES" in failure.value.stderr, failure.value.stderr
    return failure.value.stderr
