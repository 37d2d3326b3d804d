"""The real node keeps to this machine and to its own state dir: the chart's default images come
from the loopback mirror, any other image fails fast on loopback, the egress counter counts
(and drops) what would leave, and a second state dir starting and stopping beside the node
leaves it and its pods alone."""
from __future__ import annotations

import json
import subprocess
import urllib.request
import uuid
from pathlib import Path

import pytest

from localcluster import Cluster, images, wait_until
from localcluster.realnode import BRIDGE, CGROUP_ROOT, NODE_NAME, RealNodeError, live_owner
from tests.support.kube import kube, ready_pods

from .conftest import EXPECTED_EGRESS, Helm, worker_pod

# TEST-NET-3 (RFC 5737): never routed anywhere; the packets are dropped before they leave.
OFF_MACHINE = "203.0.113.7"


def _ctr(cluster: Cluster, *args: str) -> str:
    node = cluster.real_node()
    return subprocess.run(["ctr", "--address", str(node.sock), "-n", "k8s.io", *args],
                          capture_output=True, text=True, check=True).stdout


def _mirror(cluster: Cluster) -> str:
    ports = json.loads((cluster.real_node().dir / "ports.json").read_text())
    return f"127.0.0.1:{ports['registry']}"


def test_default_install_pulls_the_charts_images_from_the_loopback_mirror(
        real_cluster: Cluster, namespace: str) -> None:
    """`helm install` with no image values: the pods run the chart's own references, which
    containerd never had imported, so they were pulled, and the digests are the mirror's.
    Metrics on, so the exporter's image (the project's own, off by default) is pulled too."""
    Helm(real_cluster, namespace).install("seed", "metrics.enabled=true")
    pods = kube(real_cluster).get(f"/api/v1/namespaces/{namespace}/pods")["items"]
    running = {c["image"] for p in pods for c in p["status"].get("containerStatuses", [])}
    assert running == {images.VINEYARDD, images.ETCD, images.EXPORTER}, running
    listed = _ctr(real_cluster, "images", "ls")
    for ref in images.MIRRORED:
        repo, tag = images.mirror_repository(ref)
        req = urllib.request.Request(
            f"http://{_mirror(real_cluster)}/v2/{repo}/manifests/{tag}", method="HEAD",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            digest = resp.headers["Docker-Content-Digest"]
        line = next((ln for ln in listed.splitlines() if ln.startswith(ref + " ")), "")
        assert digest in line, f"{ref}: containerd has {line!r}, the mirror serves {digest}"


@pytest.mark.parametrize(("image", "expected"), [
    # A mirrored registry without that image: the mirror answers 404 (Docker Hub has it).
    ("docker.io/library/busybox:1.36", "docker.io/library/busybox:1.36: not found"),
    # A registry that is not mirrored: the refusing proxy on loopback.
    ("registry.example.org/team/app:1.0", "127.0.0.1:9"),
])
def test_any_other_image_fails_fast_on_loopback(real_cluster: Cluster, namespace: str,
                                                image: str, expected: str) -> None:
    pod = worker_pod(f"pull-{uuid.uuid4().hex[:6]}", "pass")
    pod["spec"]["containers"][0].update(image=image, imagePullPolicy="Always")
    kube(real_cluster).create(f"/api/v1/namespaces/{namespace}/pods", pod)
    path = f"/api/v1/namespaces/{namespace}/pods/{pod['metadata']['name']}"
    waiting: dict = {}

    def pull_failed() -> bool:
        nonlocal waiting
        statuses = kube(real_cluster).get(path)["status"].get("containerStatuses") or []
        waiting = statuses[0]["state"].get("waiting", {}) if statuses else {}
        return waiting.get("reason") in ("ErrImagePull", "ImagePullBackOff")

    assert wait_until(pull_failed, 30, 0.3), f"{image}: no pull failure in 30 s: {waiting}"
    assert expected in waiting.get("message", ""), waiting


def test_egress_counter_drops_and_counts(real_cluster: Cluster, namespace: str) -> None:
    """The counter the suite asserts 0 on can count: one datagram from the node's cgroup and
    one from a pod, both to an address off the machine, are dropped and counted."""
    node = real_cluster.real_node()
    before = node.egress_packets()
    procs = CGROUP_ROOT / "unified" / node.cgroup / "daemons" / "cgroup.procs"
    script = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
              f"try: s.sendto(b'x', ('{OFF_MACHINE}', 9))\n"
              "except PermissionError: print('EPERM')\n")
    res = subprocess.run(["sh", "-c", f'echo $$ > {procs} && exec python3 -c "$0"', script],
                         capture_output=True, text=True, check=True)
    assert "EPERM" in res.stdout, res   # dropped in OUTPUT: the kernel refuses the send
    EXPECTED_EGRESS.append(1)
    assert node.egress_packets() == before + 1
    pod = worker_pod("egress", script)
    kube(real_cluster).create(f"/api/v1/namespaces/{namespace}/pods", pod)
    EXPECTED_EGRESS.append(1)
    assert wait_until(lambda: node.egress_packets() == before + 2, 60, 0.5), (
        f"pod's datagram not counted: {node.egress_packets() - before} of 2")


def test_a_second_state_dir_leaves_this_node_alone(real_cluster: Cluster, namespace: str,
                                                   tmp_path: Path) -> None:
    """Another state dir that starts, refuses to take the machine's real node, and stops
    (with the leftovers of an earlier real node of its own) leaves this node, its pods and
    its host objects as they were."""
    node = real_cluster.real_node()
    pod = worker_pod("steady", "import time; time.sleep(600)")
    kube(real_cluster).create(f"/api/v1/namespaces/{namespace}/pods", pod)
    assert wait_until(lambda: ready_pods(real_cluster, namespace, "") != [], 60, 0.3)
    before = {"netns": sorted(p.name for p in Path("/run/netns").glob("cni-*")),
              "chains": _chains(node.id), "cgroups": _cgroups(node.cgroup)}

    other = Cluster(tmp_path / "other-state", bin_dir=real_cluster.bin_dir)
    try:
        other.up(nodes=1, timeout=180)
        with pytest.raises(RealNodeError, match="already runs for"):
            other.real_node().up(timeout=60)
        # As if an earlier real node of `other` had died without teardown.
        leftover = other.real_node()
        leftover.dir.mkdir(parents=True, exist_ok=True)
        leftover.host_file.write_text(json.dumps({"sysctls": {}, "ext": "eth0",
                                                  "netns_before": []}))
    finally:
        other.down()
    assert live_owner() == real_cluster.state_dir
    assert Path(f"/sys/class/net/{BRIDGE}").exists()
    after = {"netns": sorted(p.name for p in Path("/run/netns").glob("cni-*")),
             "chains": _chains(node.id), "cgroups": _cgroups(node.cgroup)}
    assert after == before
    assert node.running()
    assert node._node_ready()
    phase = kube(real_cluster).get(
        f"/api/v1/namespaces/{namespace}/pods/steady")["status"]["phase"]
    assert phase == "Running"
    assert any(n["metadata"]["name"] == NODE_NAME
               for n in kube(real_cluster).get("/api/v1/nodes")["items"])


def _chains(node_id: str) -> list[str]:
    dump = subprocess.run(["iptables-save", "-t", "filter"], capture_output=True, text=True,
                          check=True).stdout
    return sorted(line for line in dump.splitlines() if node_id in line or "KUBE-" in line)


def _cgroups(name: str) -> list[str]:
    return sorted(str(p) for p in CGROUP_ROOT.glob(f"*/{name}"))

