"""render() runs the real helm (3 and 4) client-side and returns the manifests as dicts."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

import vineyard_helm
from vineyard_helm import ChartNotFoundError, HelmNotFoundError

EXPECTED_INVENTORY = {
    ("DaemonSet", "vineyard"),
    ("Service", "vineyard-rpc"),
    ("Service", "etcd-for-vineyard"),
    ("StatefulSet", "vineyard-etcd"),
}


def inventory(manifests: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(m["kind"], m["metadata"]["name"]) for m in manifests}


def find(manifests: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name)


def test_default_render_has_the_contracted_objects(helm: str) -> None:
    manifests = vineyard_helm.render(helm=helm)
    assert inventory(manifests) >= EXPECTED_INVENTORY
    assert all(m["metadata"].get("namespace") in (None, "vineyard") for m in manifests)


def test_render_equals_helm_template_output(helm: str) -> None:
    stdout = subprocess.run(
        [helm, "template", "vineyard", str(vineyard_helm.chart_path()), "-n", "vineyard"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    expected = [d for d in yaml.safe_load_all(stdout) if d]
    assert vineyard_helm.render(helm=helm) == expected


def test_release_and_namespace_reach_the_manifests(helm: str) -> None:
    manifests = vineyard_helm.render(release="v6d", namespace="data", helm=helm)
    daemonset = find(manifests, "DaemonSet", "v6d-vineyard")
    assert daemonset["metadata"]["namespace"] == "data"
    selector = daemonset["spec"]["selector"]["matchLabels"]
    assert selector == {
        "app.kubernetes.io/name": "vineyard",
        "app.kubernetes.io/instance": "v6d",
        "app.kubernetes.io/component": "vineyardd",
    }


def test_values_files_dicts_and_set_are_layered_like_helm(helm: str, tmp_path: Path) -> None:
    file = tmp_path / "v.yaml"
    file.write_text("vineyard:\n  size: 128Mi\n  extraArgs: [--a=1]\n")
    manifests = vineyard_helm.render(
        [file, {"vineyard": {"extraArgs": ["--b=2"]}}],
        set_values=["vineyard.size=200Mi"],
        helm=helm,
    )
    args = find(manifests, "DaemonSet", "vineyard")["spec"]["template"]["spec"]["containers"][0][
        "args"
    ]
    assert "--size=200Mi" in args
    assert "--b=2" in args
    assert "--a=1" not in args  # lists are replaced, not concatenated


def test_a_chart_directory_or_archive_can_be_given(helm: str, tmp_path: Path) -> None:
    subprocess.run(
        [helm, "package", str(vineyard_helm.chart_path()), "-d", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    (archive,) = tmp_path.glob("vineyard-*.tgz")
    from_archive = vineyard_helm.render(chart=archive, helm=helm)
    from_directory = vineyard_helm.render(chart=str(vineyard_helm.chart_path()), helm=helm)
    assert inventory(from_archive) == inventory(from_directory)


def test_a_missing_chart_is_chart_not_found(helm: str, tmp_path: Path) -> None:
    with pytest.raises(ChartNotFoundError):
        vineyard_helm.render(chart=tmp_path / "nothing-here", helm=helm)
    with pytest.raises(ChartNotFoundError):
        vineyard_helm.render(chart="no-such-repo/vineyard", helm=helm)


def test_render_async_is_the_same(helm: str) -> None:
    assert asyncio.run(vineyard_helm.render_async(helm=helm)) == vineyard_helm.render(helm=helm)


def test_sync_render_works_inside_a_running_event_loop(helm: str) -> None:
    """As in a notebook: a sync call while the thread's loop is running."""

    async def notebook_cell() -> list[dict[str, Any]]:
        return vineyard_helm.render(helm=helm)

    assert inventory(asyncio.run(notebook_cell())) >= EXPECTED_INVENTORY


def test_missing_helm_is_helm_not_found_with_an_install_hint(tmp_path: Path) -> None:
    with pytest.raises(HelmNotFoundError, match=r"helm\.sh/docs/intro/install"):
        vineyard_helm.render(helm=tmp_path / "helm")


def test_skip_tests_leaves_out_only_the_test_hooks(helm: str) -> None:
    def is_test(m: dict[str, Any]) -> bool:
        return "test" in m["metadata"].get("annotations", {}).get("helm.sh/hook", "")

    everything = vineyard_helm.render(helm=helm)
    without_tests = vineyard_helm.render(skip_tests=True, helm=helm)
    assert any(is_test(m) for m in everything)
    assert without_tests == [m for m in everything if not is_test(m)]


def test_the_offline_verbs_need_no_event_loop(helm: str) -> None:
    """render() and validate() run helm in the calling thread and never start asyncio (a fifth
    of a cold `vineyard-helm render`); the async twins give the same results."""
    import subprocess
    import sys

    code = (
        "import sys, vineyard_helm\n"
        f"manifests = vineyard_helm.render(helm={helm!r})\n"
        f"vineyard_helm.validate({{'vineyard': {{'size': '64Mi'}}}}, helm={helm!r})\n"
        "print(len(manifests), 'asyncio' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.split() == [str(len(vineyard_helm.render(helm=helm))), "False"]
    assert asyncio.run(vineyard_helm.validate_async(helm=helm)) is None


TRICKY_YAML = """\
# Source: a comment
apiVersion: v1
kind: ConfigMap
metadata: &meta
  name: "x"
  labels: {a: "1", b: 2, c: true, d: null, e: 1.5, f: 0o17, g: ~, h: "yes", i: yes}
data:
  when: 2026-11-30
  list: [1, "2", [3, {four: 4}], []]
  empty: {}
  block: |
    line one
    line two
  merged:
    <<: *meta
    extra: e
  7: seven
  shared: *meta
---
---
just a string
---
- a list
---
kind: Last
"""


def test_manifests_load_as_safe_load_all_would() -> None:
    from vineyard_helm.helm import load_manifest

    expected = [d for d in yaml.safe_load_all(TRICKY_YAML) if isinstance(d, dict)]
    assert load_manifest(TRICKY_YAML) == expected
    assert [d["kind"] for d in load_manifest(TRICKY_YAML)] == ["ConfigMap", "Last"]


@pytest.mark.parametrize(
    "scenario",
    sorted((Path(vineyard_helm.chart_path()) / "ci").glob("*-values.yaml")),
    ids=lambda p: p.name.removesuffix("-values.yaml"),
)
def test_every_scenario_renders_to_what_safe_load_all_reads(helm4: str, scenario: Path) -> None:
    text = vineyard_helm.api.render_text(scenario, helm=helm4)
    assert vineyard_helm.render(scenario, helm=helm4) == [
        d for d in yaml.safe_load_all(text) if isinstance(d, dict)
    ]
