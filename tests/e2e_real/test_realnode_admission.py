"""Admission on the real node (chart README, "Who may use the socket"). With admission.enabled,
a worker the policy allows connects to vineyardd through the socket and puts an object; the
same pod without the allowed service account is refused by the API server and never starts,
alone or through a Job. Without the policy, a pod with neither the group nor the directory
mounts the socket file itself and connects (the kubelet bind-mounts it as root, so the
directory's mode is not in the way): the route admission closes."""
from __future__ import annotations

import json

from localcluster import Cluster, wait_until
from tests.support.kube import kube

from .conftest import CHART, CONNECT_PROBE, SOCKET_GID, Helm, hostpath_socket, run_pod, worker_pod
from .test_realnode_chart import PUT

CLIENT_SA = "vineyard-client"


def _create(cluster: Cluster, ns: str, obj: dict, *, dry_run: bool = False) -> tuple[bool, str]:
    """kubectl create (the API server's whole refusal is in stderr); (created, stderr)."""
    args = ["create", "-n", ns, "-f", "-"]
    if dry_run:
        args.append("--dry-run=server")
    res = cluster.kubectl(*args, input=json.dumps(obj), check=False)
    return res.returncode == 0, res.stderr


def _refused(cluster: Cluster, ns: str, obj: dict) -> bool:
    """A server-side dry run is refused: the policy has reached the API server's admission."""
    return not _create(cluster, ns, obj, dry_run=True)[0]


def _failed_create(cluster: Cluster, ns: str, name: str) -> str | None:
    events = kube(cluster).get(f"/api/v1/namespaces/{ns}/events")["items"]
    return next((e["message"] for e in events if e.get("reason") == "FailedCreate"
                 and e["involvedObject"].get("name") == name), None)


def test_an_allowed_worker_connects_and_a_refused_one_never_starts(
        real_cluster: Cluster, namespace: str) -> None:
    real_cluster.kubectl("create", "serviceaccount", CLIENT_SA, "-n", namespace)
    Helm(real_cluster, namespace).install("vy", values={"admission": {
        "enabled": True, "allowed": {"serviceAccounts": [f"{namespace}/{CLIENT_SA}"]}}})
    host_dir = f"/var/run/vineyard/{namespace}/vy"
    sock = hostpath_socket(host_dir)
    assert wait_until(lambda: _refused(real_cluster, namespace, worker_pod(
        "probe", "pass", groups=[SOCKET_GID], **sock)), 60, 0.5), "the policy is not in force"

    allowed = worker_pod("allowed", PUT, groups=[SOCKET_GID], **sock)
    allowed["spec"]["serviceAccountName"] = CLIENT_SA
    phase, out = run_pod(real_cluster, namespace, allowed)
    assert phase == "Succeeded", out
    assert "ID" in out, out

    # The same pod under the namespace's default service account.
    refused = worker_pod("refused", PUT, groups=[SOCKET_GID], **sock)
    created, stderr = _create(real_cluster, namespace, refused)
    assert not created
    assert (f'vineyard release "vy" (namespace "{namespace}") refused pod "{namespace}/refused": '
            f"it mounts the release's socket directory {host_dir} (hostPath volume "
            f'"vineyard-socket" at {host_dir}), and only allowed pods may. Allowed: the '
            f"release's own pods, and pods running as service account {namespace}/{CLIENT_SA}."
            ) in stderr, stderr
    assert kube(real_cluster).get_or_none(f"/api/v1/namespaces/{namespace}/pods/refused") is None

    # Through a controller: every pod the Job tries to create is refused, so none ever runs.
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "refused-job"},
           "spec": {"backoffLimit": 0, "template": {"spec": refused["spec"]}}}
    created, stderr = _create(real_cluster, namespace, job)
    assert created, stderr
    assert wait_until(lambda: _failed_create(real_cluster, namespace, "refused-job"), 60, 0.5)
    assert "it mounts the release's socket directory" in (
        _failed_create(real_cluster, namespace, "refused-job") or "")
    job_pods = kube(real_cluster).get(
        f"/api/v1/namespaces/{namespace}/pods?labelSelector=job-name=refused-job")["items"]
    assert job_pods == []


def test_the_socket_file_mount_skips_the_directory_until_admission_refuses_it(
        real_cluster: Cluster, namespace: str) -> None:
    helm = Helm(real_cluster, namespace)
    helm.install("vy")
    host_dir = f"/var/run/vineyard/{namespace}/vy"
    # Neither the group nor the directory: the socket file itself as the volume.
    bypass = worker_pod(
        "bypass", CONNECT_PROBE,
        volumes=[{"name": "sock", "hostPath": {"path": f"{host_dir}/vineyard.sock",
                                               "type": "Socket"}}],
        mounts=[{"name": "sock", "mountPath": "/sock/vineyard.sock"}],
        env=[{"name": "VINEYARD_IPC_SOCKET", "value": "/sock/vineyard.sock"}])
    _, out = run_pod(real_cluster, namespace, bypass)
    assert "CONNECTED" in out, out
    # The same worker through the directory: the kernel refuses it (EACCES), layer 1 works.
    _, out = run_pod(real_cluster, namespace,
                     worker_pod("through-dir", CONNECT_PROBE, **hostpath_socket(host_dir)))
    assert "REFUSED 13" in out, out

    helm("upgrade", "vy", str(CHART), "--reuse-values", "--set", "admission.enabled=true",
         "--wait", "--timeout", "4m")
    bypass["metadata"]["name"] = "bypass-after"
    assert wait_until(lambda: _refused(real_cluster, namespace, bypass), 60, 0.5), (
        "the socket file mount is still admitted")
    created, stderr = _create(real_cluster, namespace, bypass)
    assert not created
    assert (f"it mounts the release's socket directory {host_dir} "
            f'(hostPath volume "sock" at {host_dir}/vineyard.sock)') in stderr, stderr
