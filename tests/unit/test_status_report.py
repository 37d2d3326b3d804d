"""status(): release, vineyardd per node, etcd members, Service endpoints, socket location."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml

import vineyard_helm
from tests.support.paths import CHART
from tests.unit.status_fixture import METADATA, live_pod, status_document
from vineyard_helm import ReleaseStatus
from vineyard_helm.helm_json import socket_location, status_from_json
from vineyard_helm.output import format_status, summary_line
from vineyard_helm.progress import ProgressDisplay


@pytest.fixture
def report(helm4: str) -> ReleaseStatus:
    return status_from_json(status_document(helm4), metadata=METADATA)


def test_release_revision_status_and_chart(report: ReleaseStatus) -> None:
    release = report.release
    assert (release.name, release.namespace, release.revision, release.status) == (
        "vineyard",
        "vineyard",
        3,
        "deployed",
    )
    assert (release.chart, release.chart_version, release.app_version) == (
        "vineyard",
        "0.1.0",
        "0.24.2",
    )
    assert ("DaemonSet", ["vineyard"]) in release.resources_by_kind.items()


def test_vineyardd_desired_ready_updated_and_each_node(report: ReleaseStatus) -> None:
    vineyardd = report.vineyardd
    assert (vineyardd.desired, vineyardd.ready, vineyardd.updated) == (3, 2, 2)
    assert [(p.node, p.ready, p.updated) for p in vineyardd.pods] == [
        ("node-0", True, False),
        ("node-1", True, True),
        ("node-2", False, True),
    ]
    assert vineyardd.pods[2].reason == "ContainerCreating"
    assert not report.ready


def test_etcd_members_ready(report: ReleaseStatus) -> None:
    assert (report.etcd.name, report.etcd.desired, report.etcd.ready) == ("vineyard-etcd", 1, 1)
    assert [p.name for p in report.etcd.pods] == ["vineyard-etcd-0"]


def test_service_endpoints_are_the_ready_pods_behind_it(report: ReleaseStatus) -> None:
    services = {s.name: s for s in report.services}
    assert services["vineyard-rpc"].endpoints == ("10.0.0.1", "10.0.0.2")
    assert services["etcd-for-vineyard"].endpoints == ("10.0.1.1",)


def test_socket_location_on_the_host(report: ReleaseStatus) -> None:
    socket = report.socket
    assert socket.volume_type == "hostPath"
    assert socket.path_in_container == "/var/run/vineyard/vineyard.sock"
    assert socket.host_path == "/var/run/vineyard/vineyard/vineyard"
    assert (
        socket.describe()
        == "/var/run/vineyard/vineyard/vineyard/vineyard.sock on every node (hostPath)"
    )


def test_all_ready_and_updated_is_ready(helm4: str) -> None:
    document = status_document(helm4, nodes_ready=(True, True))
    document["info"]["resources"]["v1/DaemonSet"][0]["status"]["updatedNumberScheduled"] = 2
    assert status_from_json(document, metadata=METADATA).ready


def test_table_shows_what_users_ask_first(report: ReleaseStatus) -> None:
    text = format_status(report)
    for expected in (
        "release vineyard in namespace vineyard: deployed, revision 3, chart vineyard-0.1.0",
        "vineyardd: 2/3 pods ready, 2/3 updated",
        "node-2",
        "not ready: ContainerCreating",
        "etcd: 1/1 members ready",
        "vineyard-rpc",
        "10.0.0.1,10.0.0.2",
        "socket: /var/run/vineyard/vineyard/vineyard/vineyard.sock on every node (hostPath)",
        "ready: no",
    ):
        assert expected in text


def test_progress_prints_a_line_per_change_when_not_a_tty(report: ReleaseStatus) -> None:
    stream = io.StringIO()
    display = ProgressDisplay(stream)
    display(report)
    display(report)
    display.close()
    assert stream.getvalue() == f"waiting: {summary_line(report)}\n"
    assert "vineyardd 2/3 ready" in stream.getvalue()


def test_progress_redraws_in_place_on_a_tty(report: ReleaseStatus) -> None:
    stream = io.StringIO()
    display = ProgressDisplay(stream, live=True)
    display(report)
    first = stream.getvalue()
    display(report)
    block_lines = first.count("\n")
    assert stream.getvalue()[len(first) :].startswith(f"\x1b[{block_lines}F\x1b[J")
    display.close()
    assert stream.getvalue().endswith(f"\x1b[{block_lines}F\x1b[J")


def test_helm3_style_resource_keys_without_related_pods_still_report(helm4: str) -> None:
    document = status_document(helm4)
    del document["info"]["resources"]["v1/Pod(related)"]
    report = status_from_json(document, metadata=METADATA)
    assert report.vineyardd is not None
    assert report.vineyardd.pods == ()
    assert report.vineyardd.ready == 2


def owned(pod: dict, daemonset: str) -> dict:
    """The pod as the API server has it: its DaemonSet named as its controller."""
    reference = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "name": daemonset,
        "controller": True,
    }
    pod["metadata"]["ownerReferences"] = [reference]
    return pod


def pooled_document(helm4: str, *, pool_ready: bool) -> dict:
    """Two nodes of the release's own DaemonSet, one node of pool `big`; helm lists the pool's
    pod twice (the release's own DaemonSet's selector matches it too)."""
    document = status_document(helm4, nodes_ready=(True, True))
    resources = document["info"]["resources"]
    resources["v1/DaemonSet"][0]["status"]["updatedNumberScheduled"] = 2
    for pod in resources["v1/Pod(related)"]:
        if (
            pod["metadata"]["name"].startswith("vineyard-")
            and "etcd" not in pod["metadata"]["name"]
        ):
            owned(pod, "vineyard")
    values = {"pools": [{"name": "big", "nodeSelector": {"vineyard.v6d.io/pool": "big"}}]}
    manifests = vineyard_helm.render(values, helm=helm4)
    pool = next(m for m in manifests if m["metadata"]["name"] == "vineyard-big")
    pool["metadata"]["generation"] = 1
    pool["status"] = {
        "desiredNumberScheduled": 1,
        "numberReady": int(pool_ready),
        "updatedNumberScheduled": 1,
        "numberAvailable": int(pool_ready),
    }
    labels = {**pool["spec"]["template"]["metadata"]["labels"], "pod-template-generation": "1"}
    pod = owned(
        live_pod("vineyard-big-x1", "big-0", "10.0.2.1", labels, ready=pool_ready), "vineyard-big"
    )
    resources["v1/DaemonSet"].append(pool)
    resources["v1/Pod(related)"] += [pod, json.loads(json.dumps(pod))]
    return document


def test_node_pools_are_reported_each_with_its_own_pods(helm4: str) -> None:
    report = status_from_json(pooled_document(helm4, pool_ready=True), metadata=METADATA)
    assert [(p.pool, p.name, p.desired, p.ready) for p in report.pools] == [
        ("big", "vineyard-big", 1, 1)
    ]
    assert [(p.name, p.node, p.updated) for p in report.pools[0].pods] == [
        ("vineyard-big-x1", "big-0", True)
    ]
    assert report.vineyardd is not None
    assert report.vineyardd.pool == ""
    assert [p.node for p in report.vineyardd.pods] == ["node-0", "node-1"]
    assert report.socket is not None
    assert report.socket.host_path == "/var/run/vineyard/vineyard/vineyard"
    assert report.ready
    text = format_status(report)
    assert "vineyardd pool big: 1/1 pods ready, 1/1 updated (DaemonSet vineyard-big)" in text
    assert "pool big 1/1 ready" in summary_line(report)
    assert report.to_dict()["pools"][0]["pool"] == "big"


def test_a_pool_not_ready_keeps_the_release_not_ready(helm4: str) -> None:
    report = status_from_json(pooled_document(helm4, pool_ready=False), metadata=METADATA)
    assert report.vineyardd is not None
    assert report.vineyardd.is_ready
    assert not report.ready


def test_a_daemonset_without_nodes_does_not_hold_the_release_back(helm4: str) -> None:
    """With pools covering every node, the release's own DaemonSet may have none."""
    document = pooled_document(helm4, pool_ready=True)
    own = document["info"]["resources"]["v1/DaemonSet"][0]
    own["status"] = {"desiredNumberScheduled": 0, "numberReady": 0, "updatedNumberScheduled": 0}
    assert status_from_json(document, metadata=METADATA).ready
    for pool in document["info"]["resources"]["v1/DaemonSet"][1:]:
        pool["status"] = dict(own["status"])
    assert not status_from_json(document, metadata=METADATA).ready


SCENARIOS = sorted((CHART / "ci").glob("*-values.yaml"))


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: p.name.removesuffix("-values.yaml"))
def test_socket_location_is_what_the_chart_publishes_for_every_scenario(
    helm4: str, scenario: Path
) -> None:
    manifests = vineyard_helm.render(scenario, release="r", namespace="ns", helm=helm4)
    daemonset = next(m for m in manifests if m["kind"] == "DaemonSet")
    location = socket_location(daemonset)
    assert location is not None
    values = yaml.safe_load(scenario.read_text()) or {}
    volume = values.get("socket", {}).get("volume", {}).get("type", "hostPath")
    assert location.volume_type == volume
    assert location.path_in_container.endswith("/vineyard.sock")
    assert location.path_in_container == f"{location.mount_path}/{location.path_in_volume}"
    assert ".sock" in location.describe()
    if volume == "hostPath":
        assert location.host_path.startswith("/")
        assert location.describe().startswith(f"{location.host_path}/vineyard.sock on every node")
    if volume == "persistentVolumeClaim":
        assert location.claim
        assert location.path_in_volume == "<node>/vineyard.sock"


def test_a_release_of_a_chart_that_publishes_nothing_has_no_socket_location(
    helm4: str,
) -> None:
    """Releases of chart 0.1.0 carry no vineyard.v6d.io/socket-* annotations: the location is
    unknown rather than guessed from the pod template."""
    document = status_document(helm4)
    daemonset = document["info"]["resources"]["v1/DaemonSet"][0]
    del daemonset["metadata"]["annotations"]
    document["manifest"] = document["manifest"].replace("vineyard.v6d.io/socket-", "x-")
    assert status_from_json(document, metadata=METADATA).socket is None


RECORDED = Path(__file__).resolve().parent / "helm_json"


@pytest.mark.parametrize("major", ["helm3", "helm4"])
def test_status_from_a_real_cluster(major: str) -> None:
    """`helm status -o json` recorded from the local cluster (helm_json/record.py): 3 nodes."""
    document = json.loads((RECORDED / f"{major}-status.json").read_text())
    metadata = json.loads((RECORDED / f"{major}-metadata.json").read_text())
    report = status_from_json(document, metadata=metadata)
    assert (report.release.name, report.release.status, report.release.revision) == (
        "rec",
        "deployed",
        1,
    )
    assert report.release.chart_version == vineyard_helm.__version__
    assert report.vineyardd is not None
    assert (report.vineyardd.desired, report.vineyardd.ready, report.vineyardd.updated) == (3, 3, 3)
    assert len({pod.node for pod in report.vineyardd.pods}) == 3
    assert all(pod.ready and pod.updated for pod in report.vineyardd.pods)
    assert report.etcd is not None
    assert (report.etcd.desired, report.etcd.ready) == (1, 1)
    services = {s.name: s for s in report.services}
    rpc = services["rec-vineyard-rpc"]
    assert sorted(rpc.endpoints) == sorted(pod.ip for pod in report.vineyardd.pods)
    assert services["etcd-for-rec-vineyard"].endpoints == tuple(pod.ip for pod in report.etcd.pods)
    assert report.socket is not None
    assert report.socket.describe().startswith(
        f"/var/run/vineyard/{document['namespace']}/rec/vineyard.sock"
    )
    assert report.ready


def test_release_from_a_real_install_output() -> None:
    from vineyard_helm.helm_json import release_from_json

    release = release_from_json(json.loads((RECORDED / "helm4-install.json").read_text()))
    assert (release.name, release.revision, release.status) == ("rec", 1, "deployed")
    assert release.resources_by_kind["DaemonSet"] == ["rec-vineyard"]
    assert release.resources_by_kind["StatefulSet"] == ["rec-vineyard-etcd"]
    assert "rec-vineyard-rpc" in release.resources_by_kind["Service"]
    assert "Vineyard" in release.notes
