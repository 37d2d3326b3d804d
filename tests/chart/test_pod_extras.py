"""What users add to vineyardd's pod (extraEnv, extraVolumes, extraVolumeMounts,
extraInitContainers), vineyard.streamThreshold and hostNetwork: rendered where they belong, valid
Kubernetes, and refused with the value named where they would collide with the chart's own pod."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.chart_render import (
    HelmFailed,
    container,
    find,
    invalid_objects,
    pod_spec,
    refusal,
    render,
    run_helm_template,
)
from tests.support.chart_render import render_notes as notes

EXTRAS: dict[str, Any] = {
    "extraEnv": [
        {"name": "GLOG_v", "value": "1"},
        {"name": "NODE_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
    ],
    "extraVolumes": [
        {"name": "certs", "secret": {"secretName": "vineyard-certs"}},
        {"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}},
    ],
    "extraVolumeMounts": [
        {"name": "certs", "mountPath": "/etc/vineyard/certs", "readOnly": True},
        {"name": "scratch", "mountPath": "/scratch"},
    ],
    "extraInitContainers": [
        {
            "name": "fetch",
            "image": "busybox:1.36",
            "command": ["sh", "-c", "echo ready > /scratch/ready"],
            "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
        }
    ],
}


def spec_of(values: dict[str, Any]) -> dict[str, Any]:
    return pod_spec(find(render(values), "DaemonSet", "vineyard"))


def test_extras_land_in_vineyardd_s_pod_after_the_chart_s_own() -> None:
    manifests = render(EXTRAS)
    assert invalid_objects(manifests) == []
    spec = pod_spec(find(manifests, "DaemonSet", "vineyard"))
    vineyardd = container(spec)
    names = [e["name"] for e in vineyardd["env"]]
    assert names == ["MY_NODE_NAME", "MY_POD_NAME", "MY_POD_NAMESPACE", "MY_HOST_NAME"] + [
        e["name"] for e in EXTRAS["extraEnv"]
    ]
    assert vineyardd["env"][-1] == EXTRAS["extraEnv"][-1]
    assert vineyardd["volumeMounts"][-2:] == EXTRAS["extraVolumeMounts"]
    assert spec["volumes"][-2:] == EXTRAS["extraVolumes"]
    assert [c["name"] for c in spec["initContainers"]] == [
        "prepare-socket-dir",
        "wait-for-etcd",
        "fetch",
    ]
    # Images of the user's containers are used as written, whatever global.imageRegistry says.
    with_registry = spec_of({**EXTRAS, "global": {"imageRegistry": "mirror.example.com"}})
    assert container(with_registry, "fetch")["image"] == "busybox:1.36"


def test_extra_mounts_may_use_the_chart_s_volumes() -> None:
    mount = {"name": "vineyard-socket", "mountPath": "/socket-again", "readOnly": True}
    assert container(spec_of({"extraVolumeMounts": [mount]}))["volumeMounts"][-1] == mount


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"extraEnv": [{"name": "MY_NODE_NAME", "value": "x"}]},
            "extraEnv[0] (MY_NODE_NAME) is set by the chart",
        ),
        (
            {"extraVolumes": [{"name": "tmp", "emptyDir": {}}]},
            "extraVolumes[0] (tmp) is the name of one of the chart's volumes",
        ),
        (
            {"extraVolumes": [{"name": "a", "emptyDir": {}}, {"name": "a", "emptyDir": {}}]},
            "extraVolumes[1] (a) is named like an earlier extra volume",
        ),
        (
            {
                "vineyard": {"spill": {"path": "/spill"}},
                "extraVolumes": [{"name": "spill", "emptyDir": {}}],
            },
            "extraVolumes[0] (spill) is the name of one of the chart's volumes",
        ),
        (
            {"extraVolumeMounts": [{"name": "nowhere", "mountPath": "/x"}]},
            'extraVolumeMounts[0] mounts volume "nowhere", which is neither in extraVolumes',
        ),
        (
            {"extraVolumeMounts": [{"name": "tmp", "mountPath": "/var/run/vineyard/"}]},
            "extraVolumeMounts[0] mounts at /var/run/vineyard/, where vineyardd already has",
        ),
        (
            {"extraInitContainers": [{"name": "wait-for-etcd", "image": "busybox:1.36"}]},
            "extraInitContainers[0] (wait-for-etcd) is named like a container of the chart",
        ),
        (
            {
                "extraInitContainers": [{"name": "worker", "image": "busybox:1.36"}],
                "socket": {"volume": {"type": "emptyDir"}},
                "sidecars": [{"name": "worker", "image": "python:3.11"}],
            },
            "extraInitContainers[0] (worker) is named like a container of the chart or a sidecar",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_extras_colliding_with_the_chart_s_pod_are_refused(
    values: dict[str, Any], message: str
) -> None:
    assert message in refusal(values)


@pytest.mark.parametrize(
    ("values", "path"),
    [
        ({"extraEnv": [{"name": "A", "value": 1}]}, "/extraEnv/0/value"),
        ({"extraEnv": [{"name": "A", "valueFrom": {"fieldRef": {"path": "x"}}}]}, "/extraEnv/0"),
        ({"extraVolumes": [{"name": "a"}]}, "/extraVolumes/0"),
        ({"extraVolumes": [{"name": "a", "emptyDir": {}, "secret": {}}]}, "/extraVolumes/0"),
        ({"extraVolumes": [{"name": "a", "emptyDirr": {}}]}, "/extraVolumes/0"),
        ({"extraVolumeMounts": [{"name": "a", "mountPath": "relative"}]}, "/extraVolumeMounts/0"),
        ({"extraInitContainers": [{"name": "a"}]}, "/extraInitContainers/0"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_the_schema_types_the_extras(values: dict[str, Any], path: str) -> None:
    with pytest.raises(HelmFailed) as failure:
        run_helm_template(values)
    assert path in failure.value.stderr, failure.value.stderr


def test_stream_threshold_renders_its_flag_only_when_set() -> None:
    assert not any(a.startswith("--stream_threshold") for a in container(spec_of({}))["args"])
    args = container(spec_of({"vineyard": {"streamThreshold": 60}}))["args"]
    assert "--stream_threshold=60" in args


def test_stream_threshold_in_extra_args_is_refused_naming_the_value() -> None:
    assert "set vineyard.streamThreshold instead" in refusal(
        {"vineyard": {"extraArgs": ["--stream_threshold=60"]}}
    )


@pytest.mark.parametrize("threshold", [0, 101, "60"])
def test_stream_threshold_is_a_percentage(threshold: object) -> None:
    with pytest.raises(HelmFailed) as failure:
        run_helm_template({"vineyard": {"streamThreshold": threshold}})
    assert "/vineyard/streamThreshold" in failure.value.stderr


def test_host_network_keeps_cluster_dns_and_names_the_host_port() -> None:
    manifests = render({"hostNetwork": True})
    assert invalid_objects(manifests) == []
    spec = pod_spec(find(manifests, "DaemonSet", "vineyard"))
    assert spec["hostNetwork"] is True
    assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert container(spec)["ports"] == [
        {"name": "vineyard-rpc", "containerPort": 9600, "hostPort": 9600, "protocol": "TCP"}
    ]
    # Off by default, and the etcd and test pods never join the node's network.
    assert "hostNetwork" not in spec_of({})
    for m in manifests:
        if m["kind"] in ("StatefulSet", "Pod"):
            assert "hostNetwork" not in (m["spec"].get("template", {}).get("spec") or m["spec"])


def test_host_network_follows_the_rpc_port_and_has_none_without_rpc() -> None:
    port = container(spec_of({"hostNetwork": True, "vineyard": {"rpc": {"port": 9700}}}))["ports"]
    assert port[0]["hostPort"] == port[0]["containerPort"] == 9700
    assert "ports" not in container(
        spec_of({"hostNetwork": True, "vineyard": {"rpc": {"enabled": False}}})
    )


def test_notes_tell_what_the_host_network_exposes() -> None:
    text = notes("--set", "hostNetwork=true")
    assert "The RPC port 9600 is open on every vineyardd node's" in text
    assert "PodSecurity privileged" in text
    assert "networkPolicy.etcdFrom" not in text
    with_policy = notes("--set", "hostNetwork=true", "--set", "networkPolicy.enabled=true")
    assert "networkPolicy.etcdFrom" in with_policy
    assert "Network:" not in notes()
