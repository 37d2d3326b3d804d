"""Node pools: one DaemonSet per pool beside the release's own, each on its own nodes with its own
size and resources, all with the same socket, etcd and RPC Service; pools that could share a node
refused; the release's own DaemonSet kept off every pool's nodes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.chart_render import (
    HelmFailed,
    Manifest,
    container,
    find,
    invalid_objects,
    pod_spec,
    refusal,
    render,
    run_helm_template,
)
from tests.support.chart_render import render_notes as notes

POOL_KEY = "vineyard.v6d.io/pool"
BIGMEM = {
    "name": "bigmem",
    "nodeSelector": {POOL_KEY: "bigmem"},
    "size": "2Gi",
    "memoryHeadroom": "256Mi",
    "tolerations": [
        {"key": "dedicated", "operator": "Equal", "value": "bigmem", "effect": "NoSchedule"}
    ],
    "podLabels": {"tier": "big"},
}
GPU = {"name": "gpu", "nodeSelector": {POOL_KEY: "gpu"}, "resources": {"limits": {"memory": "1Gi"}}}
POOLS = {"pools": [BIGMEM, GPU]}


def daemonsets(manifests: list[Manifest]) -> dict[str, Manifest]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == "DaemonSet"}


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.fixture(scope="module")
def pooled() -> dict[str, Manifest]:
    manifests = render({**POOLS, "nodeSelector": {"kubernetes.io/os": "linux"}})
    assert invalid_objects(manifests) == []
    return daemonsets(manifests)


def test_one_daemonset_per_pool_beside_the_release_s_own(pooled: dict[str, Manifest]) -> None:
    assert set(pooled) == {"vineyard", "vineyard-bigmem", "vineyard-gpu"}
    assert set(daemonsets(render({}))) == {"vineyard"}


def test_each_pool_runs_on_its_nodes_with_its_own_size_and_resources(
    pooled: dict[str, Manifest],
) -> None:
    big = pod_spec(pooled["vineyard-bigmem"])
    assert big["nodeSelector"] == {"kubernetes.io/os": "linux", POOL_KEY: "bigmem"}
    assert big["tolerations"] == BIGMEM["tolerations"]
    vineyardd = container(big)
    assert "--size=2Gi" in vineyardd["args"]
    assert vineyardd["resources"]["limits"]["memory"] == "2304Mi"
    assert vineyardd["resources"]["requests"] == {"cpu": "100m", "memory": "2304Mi"}
    gpu = container(pod_spec(pooled["vineyard-gpu"]))
    assert "--size=256Mi" in gpu["args"]
    # Resources merge into the top-level ones the way helm merges values files.
    assert gpu["resources"] == {
        "requests": {"cpu": "100m", "memory": "512Mi"},
        "limits": {"memory": "1Gi"},
    }
    own = pod_spec(pooled["vineyard"])
    assert "tolerations" not in own
    assert own["nodeSelector"] == {"kubernetes.io/os": "linux"}
    labels = pooled["vineyard-bigmem"]["spec"]["template"]["metadata"]["labels"]
    assert labels["tier"] == "big"
    assert labels[POOL_KEY] == "bigmem"


def test_selectors_give_each_daemonset_its_own_pods_and_the_service_all_of_them(
    pooled: dict[str, Manifest],
) -> None:
    service = find(render(POOLS), "Service", "vineyard-rpc")["spec"]["selector"]
    for name, ds in pooled.items():
        labels = ds["spec"]["template"]["metadata"]["labels"]
        assert matches(service, labels), name
        for other_name, other in pooled.items():
            if other_name not in (name, "vineyard"):
                assert not matches(other["spec"]["selector"]["matchLabels"], labels)
    # The release's own selector is unchanged (immutable on upgrade) and so also matches pool
    # pods: the DaemonSet controller adopts only the pods it created (owner references).
    assert (
        pooled["vineyard"]["spec"]["selector"] == find(render({}), "DaemonSet")["spec"]["selector"]
    )


def test_every_daemonset_publishes_the_same_socket_and_pools_their_name(
    pooled: dict[str, Manifest],
) -> None:
    published = {
        name: {k: v for k, v in ds["metadata"]["annotations"].items() if "socket-" in k}
        for name, ds in pooled.items()
    }
    assert published["vineyard-bigmem"] == published["vineyard-gpu"] == published["vineyard"]
    assert pooled["vineyard-gpu"]["metadata"]["annotations"][POOL_KEY] == "gpu"
    assert POOL_KEY not in pooled["vineyard"]["metadata"]["annotations"]
    sockets = {
        next(a for a in container(pod_spec(ds))["args"] if a.startswith("--socket="))
        for ds in pooled.values()
    }
    assert sockets == {"--socket=/var/run/vineyard/vineyard.sock"}


def required_terms(ds: Manifest) -> list[dict[str, Any]]:
    affinity = pod_spec(ds).get("affinity", {})
    node = affinity.get("nodeAffinity", {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution", {}
    )
    return node.get("nodeSelectorTerms", [])


def test_the_release_s_own_daemonset_keeps_off_every_pool_s_nodes(
    pooled: dict[str, Manifest],
) -> None:
    assert required_terms(pooled["vineyard"]) == [
        {"matchExpressions": [{"key": POOL_KEY, "operator": "NotIn", "values": ["bigmem", "gpu"]}]}
    ]
    assert "affinity" not in pod_spec(find(render({}), "DaemonSet"))


def test_exclusions_are_anded_into_the_user_s_own_required_node_affinity() -> None:
    zone = {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["a"]}
    rack = {"key": "rack", "operator": "Exists"}
    preferred = [{"weight": 1, "preference": {"matchExpressions": [rack]}}]
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [zone]}, {"matchExpressions": [rack]}]
            },
            "preferredDuringSchedulingIgnoredDuringExecution": preferred,
        }
    }
    two_labels = {"name": "gpu", "nodeSelector": {"gpu": "true", "vendor": "nvidia"}}
    manifests = render({"affinity": affinity, "pools": [two_labels]})
    assert invalid_objects(manifests) == []
    own = daemonsets(manifests)["vineyard"]
    terms = required_terms(own)
    # (zone or rack) and not (gpu=true and vendor=nvidia): 2 x 2 terms.
    assert terms == [
        {"matchExpressions": [zone, {"key": "gpu", "operator": "NotIn", "values": ["true"]}]},
        {"matchExpressions": [zone, {"key": "vendor", "operator": "NotIn", "values": ["nvidia"]}]},
        {"matchExpressions": [rack, {"key": "gpu", "operator": "NotIn", "values": ["true"]}]},
        {"matchExpressions": [rack, {"key": "vendor", "operator": "NotIn", "values": ["nvidia"]}]},
    ]
    node_affinity = pod_spec(own)["affinity"]["nodeAffinity"]
    assert node_affinity["preferredDuringSchedulingIgnoredDuringExecution"] == preferred
    # The pool's DaemonSet keeps the top-level affinity as it is.
    assert required_terms(daemonsets(manifests)["vineyard-gpu"]) == [
        {"matchExpressions": [zone]},
        {"matchExpressions": [rack]},
    ]


def test_a_pool_the_top_level_node_selector_already_excludes_needs_no_exclusion() -> None:
    values = {
        "nodeSelector": {POOL_KEY: "standard"},
        "pools": [{"name": "big", "nodeSelector": {POOL_KEY: "big"}}],
    }
    manifests = daemonsets(render(values))
    assert "affinity" not in pod_spec(manifests["vineyard"])
    assert pod_spec(manifests["vineyard-big"])["nodeSelector"] == {POOL_KEY: "big"}


def test_labels_the_top_level_selector_requires_are_not_excluded() -> None:
    values = {
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "pools": [{"name": "gpu", "nodeSelector": {"kubernetes.io/os": "linux", "gpu": "true"}}],
    }
    assert required_terms(daemonsets(render(values))["vineyard"]) == [
        {"matchExpressions": [{"key": "gpu", "operator": "NotIn", "values": ["true"]}]}
    ]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"pools": [GPU, {**GPU, "nodeSelector": {POOL_KEY: "other"}}]},
            "pools[1] (gpu): the name is also pools[0]'s",
        ),
        (
            {"pools": [GPU, {"name": "fast", "nodeSelector": {"disk": "nvme"}}]},
            "pools[1] (fast) and pools[0] (gpu) can select the same node (one labelled "
            '{"disk":"nvme","vineyard.v6d.io/pool":"gpu"} would run both',
        ),
        (
            {"pools": [GPU, {"name": "gpu2", "nodeSelector": {POOL_KEY: "gpu", "x": "y"}}]},
            "pools[1] (gpu2) and pools[0] (gpu) can select the same node",
        ),
        (
            {
                "nodeSelector": {"kubernetes.io/os": "linux"},
                "pools": [{"name": "all", "nodeSelector": {"kubernetes.io/os": "linux"}}],
            },
            'pools[0] (all): its nodeSelector {"kubernetes.io/os":"linux"} is part of the '
            "top-level nodeSelector",
        ),
        (
            {"pools": [{**GPU, "size": "4Gi", "resources": {}}]},
            "pools[0] (gpu): resources.limits.memory (512Mi) is below its size (4Gi)",
        ),
        (
            {
                "pools": [
                    {"name": f"p{i}", "nodeSelector": {f"a{i}": "x", f"b{i}": "x"}}
                    for i in range(7)
                ]
            },
            "takes 128 node selector terms",
        ),
    ],
    ids=["duplicate name", "may overlap", "subset", "covers the rest", "memory", "explosion"],
)
def test_pools_that_cannot_work_are_refused_naming_them(
    values: dict[str, Any], message: str
) -> None:
    assert message in refusal(values)


def test_disjoint_pools_with_other_keys_are_accepted() -> None:
    values = {
        "pools": [
            {"name": "a", "nodeSelector": {POOL_KEY: "a", "disk": "nvme"}},
            {"name": "b", "nodeSelector": {POOL_KEY: "b", "disk": "nvme"}},
        ]
    }
    assert set(daemonsets(render(values))) == {"vineyard", "vineyard-a", "vineyard-b"}


@pytest.mark.parametrize(
    ("pool", "path"),
    [
        ({"name": "Big", "nodeSelector": {"a": "b"}}, "/pools/0/name"),
        ({"name": "big"}, "/pools/0"),
        ({"name": "big", "nodeSelector": {}}, "/pools/0/nodeSelector"),
        ({"name": "big", "nodeSelector": {"a": "b"}, "replicas": 2}, "/pools/0"),
    ],
    ids=["not a DNS label", "no nodeSelector", "empty nodeSelector", "unknown key"],
)
def test_the_schema_types_pools(pool: dict[str, Any], path: str) -> None:
    with pytest.raises(HelmFailed) as failure:
        run_helm_template({"pools": [pool]})
    assert path in failure.value.stderr, failure.value.stderr


def test_a_long_release_name_keeps_the_pool_suffix() -> None:
    release = "a-release-name-that-is-long-enough-to-be-cut-vineyard"
    names = set(daemonsets(render(POOLS, release=release)))
    assert release in names
    assert all(len(n) <= 63 for n in names)
    assert {n.rsplit("-", 1)[1] for n in names - {release}} == {"bigmem", "gpu"}


@pytest.mark.parametrize("socket_type", ["hostPath", "persistentVolumeClaim"])
def test_with_pools_a_new_vineyardd_waits_for_the_old_one_s_socket_to_go(socket_type: str) -> None:
    values = {
        **POOLS,
        "socket": {
            "volume": {"type": socket_type, "persistentVolumeClaim": {"storageClass": "nfs"}}
        },
    }
    for name, ds in daemonsets(render(values)).items():
        script = container(pod_spec(ds), "prepare-socket-dir")["command"][-1]
        assert "timeout 75 sh -c 'while [ -S \"$0\" ]; do sleep 1; done'" in script, name
        assert script.index("timeout 75") < script.index("rm -f"), name
    plain = container(pod_spec(find(render({}), "DaemonSet")), "prepare-socket-dir")
    assert "timeout" not in plain["command"][-1]


def test_managed_flags_stay_refused_and_each_pool_s_checksum_follows_its_own_flags() -> None:
    assert "which the chart manages" in refusal(
        {**POOLS, "vineyard": {"extraArgs": ["--size=1Gi"]}}
    )
    checksums = {
        name: ds["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        for name, ds in daemonsets(render(POOLS)).items()
    }
    # gpu keeps the top-level size: its flags, and so its checksum, are the release's own.
    assert checksums["vineyard-gpu"] == checksums["vineyard"] != checksums["vineyard-bigmem"]


def test_pools_share_everything_else_of_the_release() -> None:
    plain = {(m["kind"], m["metadata"]["name"]) for m in render({})}
    pooled = {(m["kind"], m["metadata"]["name"]) for m in render(POOLS)}
    assert pooled - plain == {("DaemonSet", "vineyard-bigmem"), ("DaemonSet", "vineyard-gpu")}


def test_notes_show_each_pool() -> None:
    text = notes("--set-json", f"pools={json.dumps(POOLS['pools'])}")
    assert "vineyardd runs on every node of no pool (DaemonSet vineyard) with 256Mi" in text
    assert (
        "Pool bigmem: DaemonSet vineyard-bigmem on the nodes matching "
        '{"vineyard.v6d.io/pool":"bigmem"}, 2Gi of shared memory' in text
    )
    assert "(memory limit 2304Mi)" in text
    assert "Pool gpu: DaemonSet vineyard-gpu" in text
    selector = "app.kubernetes.io/instance=vineyard,app.kubernetes.io/component=vineyardd"
    assert f"get daemonsets -l {selector}" in text
    assert "Pool " not in notes()
