"""vineyard.extraArgs cannot override a flag the chart manages, in any spelling gflags accepts;
free flags still pass. The list lives once, in the chart (vineyard.vineyardd.managedFlags)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from tests.support.chart_render import HelmFailed, find, render, run_helm_template
from tests.support.paths import CHART, SCENARIOS

TEMPLATE = CHART / "templates" / "_vineyardd.tpl"
DEFINE = re.compile(
    r'\{\{- define "vineyard\.vineyardd\.managedFlags" -\}\}\n(?P<body>.*?)\n\{\{- end \}\}', re.S
)
# Issue 13's minimum: what the chart sets, and what would undo its guarantees.
REQUIRED = {
    "socket", "size", "meta", "etcd_endpoint", "etcd_prefix", "etcd_cmd", "rpc",
    "rpc_socket_port", "reserve_memory", "spill_path", "spill_lower_rate", "spill_upper_rate",
    "compression", "meta_timeout", "logtostderr",
    "stream_threshold",  # issue 17: vineyard.streamThreshold
}  # fmt: skip


def managed_flags(template: Path = TEMPLATE) -> dict[str, str]:
    match = DEFINE.search(template.read_text())
    assert match, "vineyard.vineyardd.managedFlags not found"
    return yaml.safe_load(match["body"])


def spellings(flag: str) -> list[list[str]]:
    """Every way gflags reads the flag from argv, as extraArgs items."""
    return [[f"--{flag}=x"], [f"-{flag}=x"], [f"--{flag}", "x"], [f"-{flag}"], [f"--no{flag}"]]


def vineyardd_args(manifests: list[dict]) -> list[str]:
    spec = find(manifests, "DaemonSet")["spec"]["template"]["spec"]
    return next(c for c in spec["containers"] if c["name"] == "vineyardd")["args"]


def test_the_issue_s_flags_are_all_managed() -> None:
    assert managed_flags().keys() >= REQUIRED


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_flag_the_chart_renders_is_in_the_list(
    scenario: str, rendered_scenarios: dict
) -> None:
    names = {
        a.split("=", 1)[0].removeprefix("--") for a in vineyardd_args(rendered_scenarios[scenario])
    }
    assert names <= managed_flags().keys()


def test_a_rendered_flag_missing_from_the_list_fails_the_render(tmp_path: Path) -> None:
    """The renderer reads the same list: a flag the templates write but the list lacks is a
    chart bug, caught by every render rather than by a reviewer."""
    copy = tmp_path / "vineyard"
    shutil.copytree(CHART, copy)
    template = copy / "templates" / "_vineyardd.tpl"
    text = template.read_text()
    line = next(x for x in text.splitlines() if x.startswith("compression: "))
    template.write_text(text.replace(line + "\n", ""))
    assert "compression" not in managed_flags(template)
    with pytest.raises(HelmFailed) as failure:
        run_helm_template(chart=copy)
    assert "--compression is rendered but missing from vineyard.vineyardd.managedFlags" in (
        failure.value.stderr
    )


@pytest.mark.parametrize("helm_major", [3, 4])
def test_every_managed_flag_in_every_spelling_is_refused_naming_it(helm_major: int) -> None:
    """One render with all of them: the chart reports every problem at once."""
    items = [
        item for flag in sorted(managed_flags()) for group in spellings(flag) for item in group
    ]
    with pytest.raises(HelmFailed) as failure:
        run_helm_template({"vineyard": {"extraArgs": items}}, helm_major=helm_major)
    stderr = failure.value.stderr
    for index, item in enumerate(items):
        if item == "x":
            continue  # the value item after a bare flag: not itself a flag
        flag = item.lstrip("-").split("=", 1)[0]
        flag = flag.removeprefix("no") if flag.removeprefix("no") in managed_flags() else flag
        assert f'vineyard.extraArgs[{index}] ("{item}") sets --{flag}, which the chart manages' in (
            stderr
        ), item


@pytest.mark.parametrize("helm_major", [3, 4])
@pytest.mark.parametrize(
    ("items", "flag", "hint"),
    [
        (["--etcd_cmd=etcd"], "etcd_cmd", "never launches an etcd of its own"),
        (["--size=64Gi"], "size", "vineyard.size"),
        (["-socket=/tmp/v.sock"], "socket", "socket.mountPath"),
        (["--meta", "local"], "meta", "vineyard.meta"),
        (["--norpc"], "rpc", "vineyard.rpc.enabled"),
        (["--rpc_socket_port=9700"], "rpc_socket_port", "vineyard.rpc.port"),
        (["--etcd_endpoint=http://elsewhere:2379"], "etcd_endpoint", "etcd.external.endpoints"),
        (["--nologtostderr"], "logtostderr", "stderr only"),
        (["--tryfromenv=size"], "tryfromenv", "environment"),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v) if isinstance(v, list) else None,
)
def test_a_managed_flag_is_refused_with_the_value_to_set_instead(
    helm_major: int, items: list[str], flag: str, hint: str
) -> None:
    with pytest.raises(HelmFailed) as failure:
        run_helm_template(
            {"vineyard": {"extraArgs": ["--allocator=mimalloc", *items]}}, helm_major=helm_major
        )
    stderr = failure.value.stderr
    assert f'vineyard.extraArgs[1] ("{items[0]}") sets --{flag}' in stderr, stderr
    assert hint in stderr, stderr
    assert "extraArgs[0]" not in stderr, stderr


@pytest.mark.parametrize("helm_major", [3, 4])
@pytest.mark.parametrize(
    "items",
    [
        ["--allocator=mimalloc"],
        ["-allocator=mimalloc"],
        ["--allocator", "mimalloc"],
        ["--coredump", "--noprometheus", "--allocator=mimalloc"],
    ],
    ids=" ".join,
)
def test_free_flags_pass_verbatim(helm_major: int, items: list[str]) -> None:
    args = vineyardd_args(render({"vineyard": {"extraArgs": items}}, helm_major=helm_major))
    assert args[-len(items) :] == items


def test_a_value_item_after_no_flag_is_refused() -> None:
    with pytest.raises(HelmFailed) as failure:
        run_helm_template({"vineyard": {"extraArgs": ["--allocator=mimalloc", "60"]}})
    assert 'vineyard.extraArgs[1] ("60") is not a flag' in failure.value.stderr


@pytest.mark.parametrize("item", ["--size 8Gi", "--etcd-cmd=etcd", "--", "- x", "\tx"])
def test_items_gflags_would_misread_are_refused_by_the_schema(item: str) -> None:
    with pytest.raises(HelmFailed) as failure:
        run_helm_template({"vineyard": {"extraArgs": [item]}})
    assert "/vineyard/extraArgs/0" in failure.value.stderr, failure.value.stderr


def test_the_chart_readme_names_every_managed_flag() -> None:
    readme = (CHART / "README.md").read_text()
    missing = [flag for flag in managed_flags() if f"`--{flag}`" not in readme]
    assert missing == []
