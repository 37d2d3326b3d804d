"""The anchors' conventions: commonAnnotations, global.imageRegistry, the RPC Service's
nodePort, internalTrafficPolicy and loadBalancerSourceRanges, etcd's topologySpreadConstraints."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.chart_render import (
    HelmFailed,
    Manifest,
    container,
    find,
    invalid_objects,
    pod_spec,
    render,
    run_helm_template,
)

ADMISSION_API = ("--api-versions", "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy")
EVERYTHING: dict[str, Any] = {
    "etcd": {"replicaCount": 3},
    "networkPolicy": {"enabled": True},
    "admission": {"enabled": True},
    "socket": {
        "volume": {
            "type": "persistentVolumeClaim",
            "persistentVolumeClaim": {"storageClass": "nfs"},
        }
    },
}


def every_object(values: dict[str, Any]) -> list[Manifest]:
    return render(values, extra_args=ADMISSION_API)


def test_common_annotations_reach_every_object_but_no_pod_template() -> None:
    manifests = every_object({**EVERYTHING, "commonAnnotations": {"team": "data"}})
    assert invalid_objects(manifests) == []
    kinds = {m["kind"] for m in manifests}
    assert {"DaemonSet", "StatefulSet", "CronJob", "PodDisruptionBudget", "NetworkPolicy",
            "ServiceAccount", "PersistentVolumeClaim", "Service", "Pod",
            "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} <= kinds  # fmt: skip
    for m in manifests:
        assert m["metadata"]["annotations"]["team"] == "data", (m["kind"], m["metadata"]["name"])
        template = m.get("spec", {}).get("template", {}).get("metadata", {})
        assert "team" not in template.get("annotations", {}), m["kind"]


def test_an_object_s_own_annotations_win_and_keep_their_place() -> None:
    common = {"team": "data", "helm.sh/hook": "pre-install", "vineyard.v6d.io/socket-path": "x"}
    manifests = render(
        {"commonAnnotations": common, "rpcService": {"annotations": {"team": "rpc"}}}
    )
    assert find(manifests, "Service", "vineyard-rpc")["metadata"]["annotations"]["team"] == "rpc"
    test_pod = find(manifests, "Pod", "vineyard-test-rpc")["metadata"]["annotations"]
    assert test_pod["helm.sh/hook"] == "test"
    daemonset = find(manifests, "DaemonSet", "vineyard")["metadata"]["annotations"]
    assert daemonset["vineyard.v6d.io/socket-path"] == "/var/run/vineyard/vineyard.sock"
    assert list(daemonset)[-1] == "team"


def images(manifests: list[Manifest]) -> set[str]:
    found = set()
    for m in manifests:
        spec = m.get("spec", {})
        spec = spec.get("jobTemplate", {}).get("spec", spec)
        spec = spec.get("template", {}).get("spec", spec)
        for c in spec.get("initContainers", []) + spec.get("containers", []):
            found.add(c["image"])
    return found


@pytest.mark.parametrize(
    ("registry", "expected"),
    [
        (
            "",
            {
                "docker.io/vineyardcloudnative/vineyardd:v0.24.2",
                "quay.io/coreos/etcd:v3.6.16",
                # the data path test's (helm test) image
                "ghcr.io/vineyard-helm/vineyard-exporter:0.1.0",
            },
        ),
        (
            "mirror.example.com:5000/cache",
            {
                "mirror.example.com:5000/cache/vineyardcloudnative/vineyardd:v0.24.2",
                "mirror.example.com:5000/cache/coreos/etcd:v3.6.16",
                "mirror.example.com:5000/cache/vineyard-helm/vineyard-exporter:0.1.0",
            },
        ),
    ],
)
def test_the_global_registry_replaces_the_registry_of_every_chart_image(
    registry: str, expected: set[str]
) -> None:
    assert images(render({"global": {"imageRegistry": registry}})) == expected


def test_the_global_registry_prefixes_a_repository_without_one_and_keeps_the_digest() -> None:
    digest = "sha256:" + "0" * 64
    manifests = render(
        {
            "global": {"imageRegistry": "mirror.example.com"},
            "image": {"repository": "vineyardcloudnative/vineyardd", "digest": digest},
        }
    )
    assert f"mirror.example.com/vineyardcloudnative/vineyardd@{digest}" in images(manifests)


@pytest.mark.parametrize("registry", ["https://mirror", "Mirror.example.com", "mirror/"])
def test_the_global_registry_is_a_host_and_path(registry: str) -> None:
    with pytest.raises(HelmFailed) as failure:
        run_helm_template({"global": {"imageRegistry": registry}})
    assert "/global/imageRegistry" in failure.value.stderr


def rpc_service(values: dict[str, Any]) -> dict[str, Any]:
    manifests = render(values)
    assert invalid_objects(manifests) == []
    return find(manifests, "Service", "vineyard-rpc")["spec"]


def test_rpc_service_node_port_traffic_policy_and_source_ranges() -> None:
    default = rpc_service({})
    assert "internalTrafficPolicy" not in default
    assert "nodePort" not in default["ports"][0]
    node_port = rpc_service({"rpcService": {"type": "NodePort", "nodePort": 30960}})
    assert node_port["ports"][0]["nodePort"] == 30960
    local = rpc_service({"rpcService": {"internalTrafficPolicy": "Local"}})
    assert local["internalTrafficPolicy"] == "Local"
    balanced = rpc_service(
        {"rpcService": {"type": "LoadBalancer", "loadBalancerSourceRanges": ["10.0.0.0/8"]}}
    )
    assert balanced["loadBalancerSourceRanges"] == ["10.0.0.0/8"]


@pytest.mark.parametrize(
    ("service", "message"),
    [
        ({"nodePort": 30960}, "rpcService.nodePort (30960) needs rpcService.type NodePort"),
        (
            {"type": "NodePort", "loadBalancerSourceRanges": ["10.0.0.0/8"]},
            "rpcService.loadBalancerSourceRanges needs rpcService.type LoadBalancer",
        ),
    ],
)
def test_rpc_service_fields_of_another_type_are_refused(
    service: dict[str, Any], message: str
) -> None:
    with pytest.raises(HelmFailed) as failure:
        run_helm_template({"rpcService": service})
    assert message in failure.value.stderr


def test_notes_explain_a_local_traffic_policy() -> None:
    from tests.support.chart_render import render_notes

    text = render_notes("--set", "rpcService.internalTrafficPolicy=Local")
    assert "a client reaches the vineyardd of its own node only" in text


ZONES = {
    "maxSkew": 1,
    "topologyKey": "topology.kubernetes.io/zone",
    "whenUnsatisfiable": "DoNotSchedule",
}


def test_etcd_spreads_its_members_as_told_counting_its_own_by_default() -> None:
    own = {"matchLabels": {"team": "etcd"}}
    manifests = render(
        {
            "etcd": {
                "replicaCount": 3,
                "topologySpreadConstraints": [ZONES, {**ZONES, "maxSkew": 2, "labelSelector": own}],
            }
        }
    )
    assert invalid_objects(manifests) == []
    spec = pod_spec(find(manifests, "StatefulSet"))
    first, second = spec["topologySpreadConstraints"]
    assert first == {
        **ZONES,
        "labelSelector": {
            "matchLabels": {
                "app.kubernetes.io/name": "vineyard",
                "app.kubernetes.io/instance": "vineyard",
                "app.kubernetes.io/component": "etcd",
            }
        },
    }
    assert second["labelSelector"] == own
    # The default anti-affinity stays: the two work together.
    assert "podAntiAffinity" in spec["affinity"]
    assert "topologySpreadConstraints" not in pod_spec(find(render({}), "StatefulSet"))
    assert "topologySpreadConstraints" not in pod_spec(find(render({}), "DaemonSet"))


def test_etcd_spread_constraints_are_typed() -> None:
    with pytest.raises(HelmFailed) as failure:
        run_helm_template({"etcd": {"topologySpreadConstraints": [{**ZONES, "maxSkew": 0}]}})
    assert "/etcd/topologySpreadConstraints/0/maxSkew" in failure.value.stderr


def test_the_vineyardd_image_follows_the_registry_in_test_pods_too() -> None:
    manifests = render({"global": {"imageRegistry": "mirror.example.com"}})
    rpc_test = find(manifests, "Pod", "vineyard-test-rpc")["spec"]
    assert container(rpc_test, "rpc-answers")["image"].startswith("mirror.example.com/")
