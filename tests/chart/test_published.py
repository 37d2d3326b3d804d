"""What the chart publishes and decides for its callers: the socket's location as DaemonSet
annotations (true to the pod template in every scenario), never mounting a system directory
whole, and the memory limit following vineyard.size when asked (vineyard.memoryHeadroom)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.support.chart_render import HelmFailed, Manifest, find, render, run_helm_template
from tests.support.paths import CHART, SCENARIOS

PREFIX = "vineyard.v6d.io/socket-"
KEYS = {"volume-type", "mount-path", "path", "path-in-volume", "host-path", "claim"}


def published(daemonset: Manifest) -> dict[str, str]:
    annotations = daemonset["metadata"].get("annotations", {})
    return {k.removeprefix(PREFIX): v for k, v in annotations.items() if k.startswith(PREFIX)}


def vineyardd(daemonset: Manifest) -> dict[str, Any]:
    pod = daemonset["spec"]["template"]["spec"]
    return next(c for c in pod["containers"] if c["name"] == "vineyardd")


@pytest.mark.parametrize("helm_major", [3, 4])
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_published_socket_location_is_the_pod_templates(scenario: str, helm_major: int) -> None:
    manifests = render(scenario=scenario, release="rel", namespace="ns", helm_major=helm_major)
    daemonset = find(manifests, "DaemonSet")
    meta = published(daemonset)
    assert set(meta) == KEYS
    container = vineyardd(daemonset)
    socket_arg = next(a for a in container["args"] if a.startswith("--socket="))
    assert meta["path"] == socket_arg.removeprefix("--socket=").replace("$(MY_NODE_NAME)", "<node>")
    mount = next(m for m in container["volumeMounts"] if m["name"] == "vineyard-socket")
    assert meta["mount-path"] == mount["mountPath"]
    assert meta["path"] == f"{meta['mount-path']}/{meta['path-in-volume']}"
    volume = next(
        v
        for v in daemonset["spec"]["template"]["spec"]["volumes"]
        if v["name"] == "vineyard-socket"
    )
    kind = next(k for k in ("hostPath", "persistentVolumeClaim", "emptyDir") if k in volume)
    assert meta["volume-type"] == kind
    assert meta["host-path"] == (volume["hostPath"]["path"] if kind == "hostPath" else "")
    claim = volume["persistentVolumeClaim"]["claimName"] if kind == "persistentVolumeClaim" else ""
    assert meta["claim"] == claim
    if kind == "persistentVolumeClaim":
        assert meta["path-in-volume"] == "<node>/vineyard.sock"


def system_directories() -> list[str]:
    text = (CHART / "templates" / "_socket.tpl").read_text()
    body = re.search(
        r'define "vineyard.socket.systemDirectories".*?\{\{- list (.*?) \| toJson', text, re.S
    )
    assert body is not None
    return json.loads("[" + ", ".join(body.group(1).split()) + "]")


def host_path(path: str, helm_major: int = 4) -> str:
    manifests = render(
        {"socket": {"volume": {"hostPath": {"path": path}}}},
        release="rel",
        namespace="ns",
        helm_major=helm_major,
        show_only="templates/daemonset.yaml",
    )
    daemonset = find(manifests, "DaemonSet")
    volume = next(v for v in daemonset["spec"]["template"]["spec"]["volumes"] if "hostPath" in v)
    assert published(daemonset)["host-path"] == volume["hostPath"]["path"]
    return str(volume["hostPath"]["path"])


def test_no_system_directory_is_ever_mounted_whole() -> None:
    directories = system_directories()
    assert {"/", "/var/run", "/run", "/tmp", "/var/lib/kubelet", "/etc"} <= set(directories)
    for directory in directories:
        expected = f"{directory.rstrip('/')}/vineyard/ns/rel"
        assert host_path(directory) == expected, directory
        assert host_path(directory + "/") == expected, directory


@pytest.mark.parametrize("helm_major", [3, 4])
@pytest.mark.parametrize(
    ("path", "mounted"),
    [
        ("", "/var/run/vineyard/ns/rel"),
        ("/var/run", "/var/run/vineyard/ns/rel"),
        ("/var/run/vineyard", "/var/run/vineyard"),
        ("/data/v6d", "/data/v6d"),
        ("/data//v6d/./", "/data/v6d"),
        ("/var/run/../tmp", "/var/tmp/vineyard/ns/rel"),
    ],
)
def test_a_host_directory_is_used_as_given_unless_it_is_a_system_directory(
    path: str, mounted: str, helm_major: int
) -> None:
    assert host_path(path, helm_major) == mounted


def memory(values: dict[str, Any], helm_major: int = 4) -> dict[str, Any]:
    manifests = render(values, helm_major=helm_major, show_only="templates/daemonset.yaml")
    resources: dict[str, Any] = vineyardd(find(manifests, "DaemonSet"))["resources"]
    return resources


@pytest.mark.parametrize("helm_major", [3, 4])
@pytest.mark.parametrize(
    ("size", "headroom", "expected"),
    [
        ("384Mi", "256Mi", "640Mi"),
        ("8Gi", "256Mi", "8448Mi"),
        ("1G", "256Mi", "1210Mi"),
        ("1048576", "256Mi", "257Mi"),
        ("2Gi", "1Gi", "3072Mi"),
    ],
)
def test_memory_headroom_makes_request_and_limit_follow_the_size(
    size: str, headroom: str, expected: str, helm_major: int
) -> None:
    resources = memory({"vineyard": {"size": size, "memoryHeadroom": headroom}}, helm_major)
    assert resources["limits"]["memory"] == expected
    assert resources["requests"]["memory"] == expected
    assert resources["requests"]["cpu"] == "100m"


def test_memory_headroom_keeps_the_other_resources() -> None:
    resources = memory(
        {
            "vineyard": {"size": "1Gi", "memoryHeadroom": "256Mi"},
            "resources": {"limits": {"cpu": "2", "memory": "128Mi"}},
        }
    )
    assert resources["limits"] == {"cpu": "2", "memory": "1280Mi"}


def test_without_headroom_or_size_the_resources_are_as_given() -> None:
    default = {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"memory": "512Mi"}}
    assert memory({}) == default
    assert memory({"vineyard": {"size": "", "memoryHeadroom": "256Mi"}}) == default


def test_a_size_over_the_limit_is_refused_unless_the_limit_follows_it() -> None:
    with pytest.raises(HelmFailed, match=r"resources.limits.memory \(512Mi\) is below"):
        run_helm_template({"vineyard": {"size": "8Gi"}})
    run_helm_template({"vineyard": {"size": "8Gi", "memoryHeadroom": "256Mi"}})


@pytest.mark.parametrize("headroom", ["256 Mi", "0", "-1Mi", "1.5Gi"])
def test_the_schema_refuses_a_headroom_that_is_not_a_quantity(headroom: str) -> None:
    with pytest.raises(HelmFailed, match="/vineyard/memoryHeadroom"):
        run_helm_template({"vineyard": {"memoryHeadroom": headroom}})
