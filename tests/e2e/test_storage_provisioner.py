"""The cluster's default StorageClass (`local-path`, tools/provisioner): a claim that names no
class gets a `local` volume, a directory under <state dir>/volumes pinned to its pod's node, and
loses it when the claim goes. The chart's etcd claims rely on exactly this."""
from __future__ import annotations

import shutil
import stat
import time
import uuid

from localcluster import Cluster
from localcluster.cluster import PROVISIONER
from localcluster.components import PROVISIONER_NAME, STORAGE_CLASS
from tests.support.figures import record_timing
from tests.support.kube import kube
from tests.support.wait import wait_for

PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"


def _claim(name: str, *, size: str = "64Mi", **spec: object) -> dict:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}},
                     **spec}}


def _pod_with_claim(name: str, claim: str) -> dict:
    # kwok runs no container: the image is never pulled.
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                                     "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                     "volumes": [{"name": "data",
                                  "persistentVolumeClaim": {"claimName": claim}}]}}


def _claim_path(namespace: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{namespace}/persistentvolumeclaims" + (f"/{name}" if name else "")


def _events_about(cluster: Cluster, name: str, namespace: str = "") -> list[dict]:
    """Events about object `name` in `namespace` (a PV's, in any: they are cluster-scoped)."""
    where = f"/namespaces/{namespace}" if namespace else ""
    return kube(cluster).get(f"/api/v1{where}/events?fieldSelector=involvedObject.name={name}")[
        "items"]


def test_local_path_is_the_only_default_class_and_its_provisioner_is_healthy(
        cluster: Cluster) -> None:
    classes = kube(cluster).get("/apis/storage.k8s.io/v1/storageclasses")["items"]
    defaults = [c for c in classes if c["metadata"].get("annotations", {}).get(
        "storageclass.kubernetes.io/is-default-class") == "true"]
    assert [c["metadata"]["name"] for c in defaults] == [STORAGE_CLASS]
    [local_path] = defaults
    assert (local_path["provisioner"], local_path["volumeBindingMode"],
            local_path["reclaimPolicy"]) == (PROVISIONER_NAME, "WaitForFirstConsumer", "Delete")
    assert cluster.status()[PROVISIONER]["healthy"]


def test_claim_without_class_gets_a_local_volume_on_its_pods_node_and_loses_it_with_the_claim(
        cluster: Cluster, namespace: str) -> None:
    api = kube(cluster)
    api.create(_claim_path(namespace), _claim("data"))
    # The DefaultStorageClass admission plugin writes the default class into the claim.
    assert api.get(_claim_path(namespace, "data"))["spec"]["storageClassName"] == STORAGE_CLASS
    start = time.monotonic()
    api.create(f"/api/v1/namespaces/{namespace}/pods", _pod_with_claim("user", "data"))

    claim = wait_for(lambda: (c := api.get(_claim_path(namespace, "data")))["status"].get(
        "phase") == "Bound" and c, "claim Bound", timeout=60,
        describe=lambda: [e["message"] for e in _events_about(cluster, "data", namespace)])
    bound = time.monotonic() - start
    pod = wait_for(lambda: (p := api.get(f"/api/v1/namespaces/{namespace}/pods/user"))[
        "status"].get("phase") == "Running" and p, "pod Running", timeout=60)
    record_timing("local-path: pod created to claim Bound", bound,
                  running=round(time.monotonic() - start, 2))

    node, pv_name = pod["spec"]["nodeName"], claim["spec"]["volumeName"]
    assert node in cluster.node_names()
    pv = api.get(f"/api/v1/persistentvolumes/{pv_name}")
    directory = cluster.state_dir / "volumes" / pv_name
    assert pv["metadata"]["annotations"][PROVISIONED_BY] == PROVISIONER_NAME
    assert pv["spec"]["local"] == {"path": str(directory)}
    assert pv["spec"]["nodeAffinity"] == {"required": {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}
    assert pv["spec"]["capacity"] == {"storage": "64Mi"}
    assert pv["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert pv["spec"]["volumeMode"] == "Filesystem"
    assert pv["spec"]["storageClassName"] == STORAGE_CLASS
    mode = directory.stat().st_mode
    # 0777: the chart's pods run as uid 65532 and need not set an fsGroup to write.
    assert stat.S_ISDIR(mode)
    assert stat.S_IMODE(mode) == 0o777, oct(mode)

    api.delete(f"/api/v1/namespaces/{namespace}/pods/user")
    wait_for(lambda: kube(cluster).get_or_none(f"/api/v1/namespaces/{namespace}/pods/user") is None,
             "pod deleted", timeout=60)
    start = time.monotonic()
    api.delete(_claim_path(namespace, "data"))
    wait_for(lambda: kube(cluster).get_or_none(f"/api/v1/persistentvolumes/{pv_name}") is None,
             "PV deleted after its claim", timeout=60,
             describe=lambda: [e["message"] for e in _events_about(cluster, pv_name)])
    record_timing("local-path: claim deleted to PV deleted", time.monotonic() - start)
    assert not directory.exists()


def test_a_volume_outside_the_root_is_never_deleted(cluster: Cluster, namespace: str) -> None:
    """A PV that claims to be ours but points outside <state dir>/volumes (made by hand here)
    is released like any other, and the provisioner refuses to remove its directory."""
    outside = cluster.state_dir / f"not-a-volume-{uuid.uuid4().hex[:8]}"
    outside.mkdir()
    (outside / "keep").write_text("precious\n")
    pv_name = f"e2e-outside-{uuid.uuid4().hex[:8]}"
    node = cluster.node_names()[0]
    try:
        kube(cluster).create("/api/v1/persistentvolumes", {
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": pv_name, "annotations": {PROVISIONED_BY: PROVISIONER_NAME}},
            "spec": {"capacity": {"storage": "64Mi"}, "accessModes": ["ReadWriteOnce"],
                     "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "",
                     "local": {"path": str(outside)},
                     "claimRef": {"namespace": namespace, "name": "data"},
                     "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                         {"key": "kubernetes.io/hostname", "operator": "In",
                          "values": [node]}]}]}}}})
        kube(cluster).create(_claim_path(namespace),
                             _claim("data", storageClassName="", volumeName=pv_name))
        wait_for(lambda: kube(cluster).get(_claim_path(namespace, "data"))["status"].get(
            "phase") == "Bound", "hand-made PV bound", timeout=60)
        kube(cluster).delete(_claim_path(namespace, "data"))

        refusals = wait_for(lambda: [e["message"] for e in _events_about(cluster, pv_name)
                                     if e["reason"] == "VolumeFailedDelete"],
                            "the provisioner's refusal", timeout=60,
                            describe=lambda: _events_about(cluster, pv_name))
        assert "not a directory directly under the root" in refusals[0]
        assert (outside / "keep").read_text() == "precious\n"
        assert kube(cluster).get(f"/api/v1/persistentvolumes/{pv_name}")["status"]["phase"] in (
            "Released", "Failed")
    finally:
        kube(cluster).delete(f"/api/v1/persistentvolumes/{pv_name}")
        shutil.rmtree(outside, ignore_errors=True)


def test_a_class_without_late_binding_is_refused_with_the_reason(
        cluster: Cluster, namespace: str) -> None:
    """Without WaitForFirstConsumer no node is chosen before provisioning, and a local volume
    cannot be pinned anywhere: the claim stays Pending with an event saying why."""
    name = f"e2e-immediate-{uuid.uuid4().hex[:8]}"
    kube(cluster).create("/apis/storage.k8s.io/v1/storageclasses", {
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name},
        "provisioner": PROVISIONER_NAME, "volumeBindingMode": "Immediate"})
    try:
        kube(cluster).create(_claim_path(namespace), _claim("data", storageClassName=name))
        failures = wait_for(lambda: [e["message"] for e in _events_about(cluster, "data", namespace)
                                     if e["reason"] == "ProvisioningFailed"],
                            "ProvisioningFailed event", timeout=60)
        assert "has no selected node" in failures[0]
        assert "WaitForFirstConsumer" in failures[0]
        assert kube(cluster).get(_claim_path(namespace, "data"))["status"]["phase"] == "Pending"
    finally:
        kube(cluster).delete(_claim_path(namespace, "data"))
        kube(cluster).delete(f"/apis/storage.k8s.io/v1/storageclasses/{name}")
