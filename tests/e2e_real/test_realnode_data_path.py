"""The data path `helm test` (templates/tests/test-data-path.yaml, chart README "helm test") on
the real node: `helm test` runs the writers' Job and the reader pod from the chart's exporter
image, the objects really go through the socket (the writers' logs name each object, its size and
checksum; the reader's say the bytes it read back match), and nothing is left afterwards: no test
pod or Job, no object, no name in vineyardd or in etcd. Each mode of the reader: RPC (default),
etcd (RPC off, with the admission policy on), none (metadata local to each node), and the socket
on a claim."""
from __future__ import annotations

import re
import subprocess
import time
import uuid

import pytest

from localcluster import Cluster, wait_until
from localcluster.realnode import NODE_NAME
from tests.support.kube import pods

from .conftest import (
    SOCKET_GID,
    Helm,
    etcdctl,
    hostpath_socket,
    pvc_socket,
    record,
    run_pod,
    worker_pod,
)

RELEASE = "vy"
SIZE = 1 << 20
OBJECT = (r'"(?P<name>[^"]+)": object (?P<id>o[0-9a-f]{16}) \(vineyard-helm::DataPathProbe, '
          r"(?P<size>\d+) bytes, sha256 (?P<sum>[0-9a-f]{64})\)")
PUT_LINE = re.compile("put " + OBJECT + r" on instance (?P<instance>\d+), node (?P<node>\S+):")
GOT_LINE = re.compile("got " + OBJECT + r" held by instance (?P<instance>\d+), "
                      r"node (?P<node>[^;]+); (?P<how>.*)$", re.M)
# What is left of the test objects in vineyardd, asked as a workload would (socket and group).
LEFT = """
import vineyard
c = vineyard.connect()
names = {names!r}
found = []
for n in names:
    try:
        found.append((n, repr(c.get_name(n))))
    except vineyard.ObjectNotExistsException:
        pass
probes = [repr(m.id) for m in c.list_metadatas('*', limit=10000)
          if m.typename == 'vineyard-helm::DataPathProbe']
print('LEFT', len(found), len(probes), c.status.memory_usage, found, probes)
"""
PUT_LEFTOVER = """
import numpy as np, vineyard
c = vineyard.connect()
oid = c.put(np.zeros(1000, dtype='uint8'), persist=True, name={name!r})
print('LEFTOVER', repr(oid))
"""


def names(ns: str, nodes: int = 3) -> list[str]:
    return [f"vineyard-helm-test/{ns}/{RELEASE}/data-path-{i}" for i in range(nodes)]


def helm_test(cluster: Cluster, ns: str) -> tuple[str, str, float]:
    """`helm test` (Helm 4); returns its stdout (the hooks' phases), its output with the hooks'
    logs (helm prints them, helm.sh/hook-output-log-policy, on stderr) and the seconds it took."""
    t0 = time.monotonic()
    res = Helm(cluster, ns)("test", RELEASE, "--timeout", "4m", timeout=300)
    seconds = time.monotonic() - t0
    phases = dict(re.findall(r"TEST SUITE:\s+(\S+)\n(?:.*\n){0,3}?Phase:\s+(\S+)", res.stdout))
    assert phases.get(f"{RELEASE}-vineyard-test-data-put") == "Succeeded", res.stdout
    assert all(p == "Succeeded" for p in phases.values()), res.stdout
    return res.stdout, res.stdout + hook_logs(res.stderr), seconds


# Helm 4 writes the hooks' logs through Go's `log` package, which it routes to its slog text
# handler: each chunk helm copies from a pod's log stream becomes one record, `level=INFO
# msg="..."`, its newlines and quotes escaped (Go's strconv.Quote). Helm 3 writes them raw.
SLOG_RECORD = re.compile(r'^(?:time=\S+ )?level=\w+ msg="((?:[^"\\]|\\.)*)"', re.M)


def hook_logs(stderr: str) -> str:
    """The hooks' logs as the pods wrote them: Helm 4's records unquoted (the logs are ASCII, so
    Python's unicode_escape reads Go's escapes), anything else (Helm 3) as it is."""
    records = SLOG_RECORD.findall(stderr)
    if not records:
        return stderr
    return "\n".join(r.encode("ascii", "backslashreplace").decode("unicode_escape")
                     for r in records)


def puts(logs: str) -> dict[str, dict[str, str]]:
    return {m["name"]: m.groupdict() for m in PUT_LINE.finditer(logs)}


def assert_nothing_left(cluster: Cluster, ns: str, sock: dict) -> None:
    """No test pod or Job (helm deletes them once they succeed; the Job's pods go in the
    background), no test object or name in vineyardd, no name under the release's etcd prefix."""
    assert wait_until(lambda: not pods(cluster, ns, "app.kubernetes.io/component=test"), 60, 0.5), \
        [p["metadata"]["name"] for p in pods(cluster, ns, "app.kubernetes.io/component=test")]
    jobs = cluster.api.get(f"/apis/batch/v1/namespaces/{ns}/jobs")["items"]
    assert [j["metadata"]["name"] for j in jobs] == []
    phase, out = run_pod(cluster, ns, worker_pod(
        f"left-{uuid.uuid4().hex[:6]}", LEFT.format(names=names(ns)),
        groups=[SOCKET_GID], **sock))
    assert phase == "Succeeded", out
    # No name, no probe object, and no memory in use: the release's vineyardd held nothing else.
    assert "LEFT 0 0 0 " in out, out


def etcd_names(cluster: Cluster, ns: str) -> str:
    res = etcdctl(cluster, ns, f"{RELEASE}-vineyard-etcd-0", "get", "--prefix", "--keys-only",
                  "/vineyard/S0000000000000000/names/")
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_helm_test_puts_through_the_socket_reads_back_through_rpc_and_deletes(
        real_cluster: Cluster, namespace: str) -> None:
    helm = Helm(real_cluster, namespace)
    helm.install(RELEASE)
    stdout, logs, seconds = helm_test(real_cluster, namespace)
    record("helm test with the data path (3 writers, 1 MiB each, RPC reader, real node), s",
           round(seconds, 1))
    for hook in ("test-rpc", "test-etcd", "test-data-put", "test-data-get"):
        assert f"{RELEASE}-vineyard-{hook}" in stdout, stdout
    written = puts(logs)
    assert set(written) == set(names(namespace)), logs
    for put in written.values():
        assert (put["size"], put["node"]) == (str(SIZE), NODE_NAME), put
    got = {m["name"]: m.groupdict() for m in GOT_LINE.finditer(logs)}
    assert set(got) == set(written), logs
    for name, read in got.items():
        # The reader found the very object each writer put, with the same bytes.
        assert (read["id"], read["size"], read["sum"], read["instance"]) == (
            written[name]["id"], written[name]["size"], written[name]["sum"],
            written[name]["instance"]), (read, written[name])
        assert read["how"].startswith("metadata through RPC, bytes read from instance"), read
        assert read["how"].endswith("match; deleted"), read
    assert (f"data path OK: 3 objects from 1 vineyardd instances (nodes {NODE_NAME}), metadata "
            "and bytes read back through RPC, all deleted") in logs, logs
    sock = hostpath_socket(f"/var/run/vineyard/{namespace}/{RELEASE}")
    assert_nothing_left(real_cluster, namespace, sock)
    assert "vineyard-helm-test" not in etcd_names(real_cluster, namespace)

    # A run that failed before its reader left an object under a writer's name: the next run's
    # writer deletes it first, and the run passes.
    leftover = names(namespace)[0]
    phase, out = run_pod(real_cluster, namespace, worker_pod(
        "leftover", PUT_LEFTOVER.format(name=leftover), groups=[SOCKET_GID], **sock))
    assert phase == "Succeeded", out
    # repr(ObjectID) is `o…` in the pinned vineyard wheel, `ObjectID <"o…">` in older ones.
    oid = re.search(r'LEFTOVER (?:ObjectID <")?(o[0-9a-f]{16})', out)
    assert oid, out
    _, logs, _ = helm_test(real_cluster, namespace)
    assert f'removed {oid[1]}, left under "{leftover}" by an earlier run' in logs, logs
    assert "data path OK: 3 objects" in logs, logs
    assert_nothing_left(real_cluster, namespace, sock)


def test_without_rpc_the_reader_reads_etcd_with_the_admission_policy_on(
        real_cluster: Cluster, namespace: str) -> None:
    helm = Helm(real_cluster, namespace)
    # The policy admits the test's hooks as the release's own; the check of what is left runs
    # as the namespace's default service account, which is allowed explicitly.
    helm.install(RELEASE, "vineyard.rpc.enabled=false", "admission.enabled=true",
                 f"admission.allowed.serviceAccounts={{{namespace}/default}}",
                 "tests.dataPath.nodes=2")
    _, logs, _ = helm_test(real_cluster, namespace)
    written = puts(logs)
    assert set(written) == set(names(namespace, 2)), logs
    got = {m["name"]: m.groupdict() for m in GOT_LINE.finditer(logs)}
    assert set(got) == set(written), logs
    for name, read in got.items():
        assert (read["id"], read["sum"]) == (written[name]["id"], written[name]["sum"])
        assert read["how"].startswith("metadata read from etcd; deleted through instance"), read
        assert read["how"].endswith("gone from etcd"), read
    assert "metadata read back from etcd (RPC is off: bytes not read), all deleted" in logs, logs
    assert_nothing_left(real_cluster, namespace,
                        hostpath_socket(f"/var/run/vineyard/{namespace}/{RELEASE}"))
    assert "vineyard-helm-test" not in etcd_names(real_cluster, namespace)


def test_with_local_metadata_each_writer_reads_back_itself(
        real_cluster: Cluster, namespace: str) -> None:
    helm = Helm(real_cluster, namespace)
    helm.install(RELEASE, "vineyard.meta=local", "tests.dataPath.nodes=1")
    stdout, logs, _ = helm_test(real_cluster, namespace)
    assert f"{RELEASE}-vineyard-test-data-get" not in stdout, stdout
    [name] = names(namespace, 1)
    assert name in puts(logs), logs
    assert f'read back "{name}" over a second connection: metadata and bytes match; deleted' \
        in logs, logs
    assert_nothing_left(real_cluster, namespace,
                        hostpath_socket(f"/var/run/vineyard/{namespace}/{RELEASE}"))


def test_a_claim_socket(real_cluster: Cluster, namespace: str, local_pvs) -> None:
    local_pvs(namespace, f"{RELEASE}-vineyard-socket", ["ReadWriteMany"])
    helm = Helm(real_cluster, namespace)
    helm.install(RELEASE, "socket.volume.type=persistentVolumeClaim",
                 "socket.volume.persistentVolumeClaim.storageClass=")
    _, logs, _ = helm_test(real_cluster, namespace)
    assert set(puts(logs)) == set(names(namespace)), logs
    assert "data path OK: 3 objects" in logs, logs
    assert_nothing_left(real_cluster, namespace, pvc_socket(f"{RELEASE}-vineyard-socket"))


@pytest.fixture(autouse=True)
def _exporter_image_is_current() -> None:
    """The exporter image the node pulls must carry `selftest` (an image built before it would
    fail every writer with an unknown flag): rebuilt by `python -m localcluster images` from
    .cache/bin/vineyard-exporter, which hack/build-tools.sh rebuilds when tools/exporter
    changes."""
    from localcluster.images import EXPORTER_BIN
    res = subprocess.run([str(EXPORTER_BIN), "selftest"], capture_output=True, text=True,
                         check=False)
    assert "usage: vineyard-exporter selftest put|get" in res.stderr, (
        f"{EXPORTER_BIN} has no selftest: run hack/build-tools.sh exporter and "
        f"python -m localcluster images\n{res.stderr}")
