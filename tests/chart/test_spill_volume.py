"""vineyard.spill.volume: an emptyDir (as before), a directory on each node, a directory per node
in an existing claim, or a claim per pod; the kept directories prepared and emptied by a root
container with CHOWN alone, and never a directory a value names."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.chart_render import (
    HelmFailed,
    container,
    deep_merge,
    find,
    invalid_objects,
    pod_spec,
    render,
    run_helm_template,
)
from tests.support.chart_render import render_notes as notes

SPILL = {"vineyard": {"spill": {"path": "/spill"}}}


def spill(volume: dict[str, Any], **values: Any) -> dict[str, Any]:
    return deep_merge({"vineyard": {"spill": {"path": "/spill", "volume": volume}}}, values)


def rendered(values: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    manifests = render(values, **kwargs)
    assert invalid_objects(manifests) == []
    return pod_spec(find(manifests, "DaemonSet"))


def spill_volume(spec: dict[str, Any]) -> dict[str, Any]:
    return next(v for v in spec["volumes"] if v["name"] == "spill")


def spill_mount(spec: dict[str, Any], name: str = "vineyardd") -> dict[str, Any]:
    return next(m for m in container(spec, name)["volumeMounts"] if m["name"] == "spill")


def init_names(spec: dict[str, Any]) -> list[str]:
    return [c["name"] for c in spec["initContainers"]]


def test_emptydir_is_the_default_and_renders_as_before() -> None:
    spec = rendered(SPILL)
    assert spill_volume(spec) == {"name": "spill", "emptyDir": {"sizeLimit": "1Gi"}}
    assert spill_mount(spec) == {"name": "spill", "mountPath": "/spill"}
    assert "prepare-spill-dir" not in init_names(spec)
    assert "--spill_path=/spill" in container(spec)["args"]


def test_off_by_default_with_no_volume_at_all() -> None:
    spec = rendered({})
    assert all(v["name"] != "spill" for v in spec["volumes"])
    assert "prepare-spill-dir" not in init_names(spec)


def test_host_path_is_the_chart_s_own_directory_below_the_base() -> None:
    spec = rendered(spill({"type": "hostPath"}), release="rel", namespace="ns")
    assert spill_volume(spec)["hostPath"] == {
        "path": "/var/lib/vineyard-spill/ns/rel",
        "type": "DirectoryOrCreate",
    }
    based = rendered(spill({"type": "hostPath", "hostPath": {"path": "/mnt/nvme0/"}}))
    assert spill_volume(based)["hostPath"]["path"] == "/mnt/nvme0/vineyard-spill/vineyard/vineyard"


def test_an_existing_claim_holds_one_directory_per_node() -> None:
    spec = rendered(
        spill(
            {"type": "persistentVolumeClaim", "persistentVolumeClaim": {"existingClaim": "spill"}}
        )
    )
    assert spill_volume(spec) == {"name": "spill", "persistentVolumeClaim": {"claimName": "spill"}}
    expected = {
        "name": "spill",
        "mountPath": "/spill",
        "subPathExpr": "vineyard-spill/vineyard/$(MY_NODE_NAME)",
    }
    assert spill_mount(spec) == expected
    assert spill_mount(spec, "prepare-spill-dir") == expected
    # subPathExpr expands the container's own variables: both containers define MY_NODE_NAME.
    for name in ("vineyardd", "prepare-spill-dir"):
        assert any(e["name"] == "MY_NODE_NAME" for e in container(spec, name)["env"])


def test_a_claim_type_without_the_claim_is_refused() -> None:
    with pytest.raises(HelmFailed) as failure:
        run_helm_template(spill({"type": "persistentVolumeClaim"}))
    assert (
        "vineyard.spill.volume.type persistentVolumeClaim needs "
        "vineyard.spill.volume.persistentVolumeClaim.existingClaim" in failure.value.stderr
    )


@pytest.mark.parametrize("socket_type", ["hostPath", "persistentVolumeClaim"])
def test_ephemeral_gives_each_pod_a_claim_owned_through_fs_group(socket_type: str) -> None:
    values = spill(
        {"type": "ephemeral", "ephemeral": {"storageClass": "local-nvme", "size": "50Gi"}},
        socket={"volume": {"type": socket_type, "persistentVolumeClaim": {"storageClass": "nfs"}}},
    )
    spec = rendered(values)
    template = spill_volume(spec)["ephemeral"]["volumeClaimTemplate"]
    assert template["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": "local-nvme",
        "resources": {"requests": {"storage": "50Gi"}},
    }
    assert template["metadata"]["labels"]["app.kubernetes.io/component"] == "vineyardd"
    # A new volume with each pod: fsGroup hands it to vineyardd, no root container needed.
    assert "prepare-spill-dir" not in init_names(spec)
    expected_group = 65532 if socket_type == "hostPath" else 2000
    assert spec["securityContext"]["fsGroup"] == expected_group
    default_class = rendered(spill({"type": "ephemeral"}))
    assert (
        "storageClassName"
        not in spill_volume(default_class)["ephemeral"]["volumeClaimTemplate"]["spec"]
    )


@pytest.mark.parametrize(
    "volume",
    [
        {"type": "hostPath"},
        {"type": "persistentVolumeClaim", "persistentVolumeClaim": {"existingClaim": "spill"}},
    ],
    ids=lambda v: v["type"],
)
def test_a_kept_directory_is_emptied_and_handed_over_by_a_root_container_with_chown_alone(
    volume: dict[str, Any],
) -> None:
    spec = rendered(spill(volume))
    assert init_names(spec)[-1] == "prepare-spill-dir"
    prepare = container(spec, "prepare-spill-dir")
    assert prepare["securityContext"] == {
        "runAsUser": 0,
        "runAsNonRoot": False,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"], "add": ["CHOWN"]},
    }
    script = prepare["command"][-1]
    assert 'rm -rf "/spill"/*' in script
    assert script.index("chown 0") < script.index("rm -rf") < script.index("chown 65532:65532")
    assert "fsGroup" not in spec["securityContext"]


@pytest.mark.parametrize(
    ("socket_path", "spill_base"),
    [("/data/vineyard-spill/vineyard/vineyard", "/data"), ("/data", "/data/vineyard-spill/x/..")],
)
def test_spill_and_socket_host_directories_may_not_overlap(
    socket_path: str, spill_base: str
) -> None:
    with pytest.raises(HelmFailed) as failure:
        run_helm_template(
            spill(
                {"type": "hostPath", "hostPath": {"path": spill_base}},
                socket={"volume": {"hostPath": {"path": socket_path}}},
            )
        )
    assert "overlap: emptying one would delete the other's files" in failure.value.stderr


@pytest.mark.parametrize("path", ["/tmp", "/var/run/vineyard"])
def test_the_spill_path_may_not_be_another_mount(path: str) -> None:
    with pytest.raises(HelmFailed) as failure:
        run_helm_template({"vineyard": {"spill": {"path": path}}})
    assert f"vineyard.spill.path ({path}) is where vineyardd already has a volume" in (
        failure.value.stderr
    )


@pytest.mark.parametrize(
    ("volume", "where"),
    [
        ({}, "on an emptyDir of at most 1Gi"),
        ({"type": "hostPath"}, "on /var/lib/vineyard-spill/vineyard/vineyard on each node"),
        (
            {"type": "persistentVolumeClaim", "persistentVolumeClaim": {"existingClaim": "c"}},
            "on claim c, in vineyard-spill/vineyard/<node>",
        ),
        ({"type": "ephemeral"}, "on a claim of 10Gi per vineyardd pod"),
    ],
)
def test_notes_say_where_spilled_objects_go(volume: dict[str, Any], where: str) -> None:
    args = ["--set", "vineyard.spill.path=/spill"]
    for key, value in volume.items():
        if key == "type":
            args += ["--set", f"vineyard.spill.volume.type={value}"]
    if "persistentVolumeClaim" in volume:
        args += ["--set", "vineyard.spill.volume.persistentVolumeClaim.existingClaim=c"]
    text = notes(*args)
    assert "Spill:    /spill above 0.8 x size, down to 0.3 x size, " + where in text
    assert ("prepare-spill-dir empties it" in text) == (
        volume.get("type") in ("hostPath", "persistentVolumeClaim")
    )
