"""Command lines of the cluster's components. Every listener is on 127.0.0.1."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ETCD = "/usr/bin/etcd"
SERVICE_CIDR = "10.96.0.0/12"
POD_CIDR = "10.244.0.0/16"
# kwok manages exactly the nodes carrying this annotation (as kwokctl does).
KWOK_NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")

# The default StorageClass and its provisioner (tools/provisioner): claims that name no class
# (the chart's etcd volumes) get a `local` PV, a directory in <state dir>/volumes, pinned to the
# node the scheduler chose. Every node is this machine (kwok's never mount; the real node's
# kubelet runs here), so one host directory serves any of them.
PROVISIONER_NAME = "localcluster.io/local-path"
STORAGE_CLASS = "local-path"
# Its identity: a client cert bound to Kubernetes' own role for external provisioners (PVs,
# claims, classes, events), so it can do nothing else.
PROVISIONER_USER = "localcluster:local-path-provisioner"

# Control-plane client limits, as large clusters set them: Kubernetes' own 5,000-node validation
# runs controller-manager with --kube-api-qps=100 --kube-api-burst=100 and the scheduler with
# --kube-api-qps=100 (kubernetes/sig-release, releases/release-1.9/scalability_validation_report.md,
# "Any non-default config used"; the same flags as test-infra's gce-scale jobs). The defaults are
# 20/30 (controller-manager) and 50/100 (scheduler): at 1,000 nodes the DaemonSet controller spent
# most of a rollout waiting in its own rate limiter (bench/results.md, "Scale").
CONTROLLER_MANAGER_QPS, CONTROLLER_MANAGER_BURST = 100, 100
SCHEDULER_QPS, SCHEDULER_BURST = 100, 100

# Fake nodes' heartbeats. kwok renews each node's lease every duration/4 with 4 workers: at the
# kubelet's 40 s that is 100 lease updates/s for 1,000 nodes, which this 2-core machine cannot keep
# up beside an install, and nodes went NotReady. 120 s (a renewal every 30 s, 33/s at 1,000
# nodes) with 16 workers, and a node-monitor grace period of 100 s (kubelet default 50 s; the real
# node's kubelet still renews every 10 s, so its margin is 10 renewals instead of 5) keep 1,000
# fake nodes Ready. The price: a node that dies is marked NotReady after 100 s instead of 50 s.
KWOK_LEASE_SECONDS = 120
KWOK_LEASE_WORKERS = 16
NODE_MONITOR_GRACE = "100s"


@dataclass(frozen=True)
class Ports:
    etcd: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int
    # 0 in the cluster.json of a cluster started before the provisioner existed.
    provisioner: int = 0


def etcd(_bin_dir: Path, state: Path, ports: Ports) -> list[str]:
    """etcd comes from Debian's etcd-server package, not from bin_dir."""
    client, peer = f"http://127.0.0.1:{ports.etcd}", f"http://127.0.0.1:{ports.etcd_peer}"
    return [ETCD, "--name=localcluster", f"--data-dir={state / 'etcd'}",
            f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=localcluster={peer}", "--initial-cluster-state=new",
            "--quota-backend-bytes=4294967296", "--logger=zap", "--log-outputs=stderr"]


def apiserver(bin_dir: Path, state: Path, ports: Ports) -> list[str]:
    pki = state / "pki"
    return [str(bin_dir / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{ports.etcd}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--secure-port={ports.apiserver}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            # Front-proxy settings, so controller-manager and scheduler find the request-header
            # CA they look for. No front-proxy-client cert is ever issued.
            f"--requestheader-client-ca-file={pki / 'ca.crt'}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            # PodSecurity is on by default; namespaces opt in with pod-security labels.
            "--enable-admission-plugins=NodeRestriction",
            # The `kubernetes` Service must not advertise a loopback endpoint to pods.
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true", "--profiling=false",
            # A real node (realnode.py) is reached at its InternalIP (its name does not resolve),
            # for logs, exec and port-forward, as cluster-admin.
            "--kubelet-preferred-address-types=InternalIP",
            f"--kubelet-client-certificate={pki / 'admin.crt'}",
            f"--kubelet-client-key={pki / 'admin.key'}",
            f"--kubelet-certificate-authority={pki / 'ca.crt'}",
            # With WatchList on, the apiserver turns every watch from resourceVersion 0 into a
            # watch-list, which needs RequestWatchProgress from etcd; Debian's etcd 3.4 lacks
            # it, so such watches fail again and again and kwok's informers fall behind by tens
            # of seconds (pods stay Pending, lease updates conflict).
            "--feature-gates=WatchList=false"]


def controller_manager(bin_dir: Path, state: Path, ports: Ports) -> list[str]:
    pki, kubeconfig = state / "pki", state / "kubeconfigs" / "controller-manager.kubeconfig"
    return [str(bin_dir / "kube-controller-manager"),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1", f"--secure-port={ports.controller_manager}",
            "--leader-elect=false", "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}", "--profiling=false",
            f"--kube-api-qps={CONTROLLER_MANAGER_QPS}",
            f"--kube-api-burst={CONTROLLER_MANAGER_BURST}",
            f"--node-monitor-grace-period={NODE_MONITOR_GRACE}"]


def scheduler(bin_dir: Path, state: Path, ports: Ports) -> list[str]:
    kubeconfig = state / "kubeconfigs" / "scheduler.kubeconfig"
    return [str(bin_dir / "kube-scheduler"),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1", f"--secure-port={ports.scheduler}",
            "--leader-elect=false", "--profiling=false",
            # Deprecated flags, but this scheduler has no --config file for them to yield to.
            f"--kube-api-qps={SCHEDULER_QPS}", f"--kube-api-burst={SCHEDULER_BURST}"]


def kwok_options() -> str:
    """kwok's own options (a KwokConfiguration, read beside the stages). A configuration file
    is not defaulted field by field: the other workers' counts are kwok's defaults, written out."""
    return ("apiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokConfiguration\noptions:\n"
            f"  nodeLeaseParallelism: {KWOK_LEASE_WORKERS}\n"
            "  nodePlayStageParallelism: 4\n  podPlayStageParallelism: 4\n"
            "  podsOnNodeSyncParallelism: 1\n")


def kwok(bin_dir: Path, state: Path, ports: Ports) -> list[str]:
    """kwok's command line; writes its options file into the state dir on the way."""
    key, value = KWOK_NODE_ANNOTATION
    (state / "kwok-options.yaml").write_text(kwok_options())
    return [str(bin_dir / "kwok"),
            f"--kubeconfig={state / 'kubeconfigs' / 'kwok.kubeconfig'}",
            f"--config={bin_dir / 'kwok-stages.yaml'}",
            f"--config={state / 'kwok-options.yaml'}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={key}={value}",
            f"--node-lease-duration-seconds={KWOK_LEASE_SECONDS}",
            "--cidr=10.244.0.1/16", "--node-ip=10.244.0.1",
            f"--server-address=127.0.0.1:{ports.kwok}"]


def provisioner(bin_dir: Path, state: Path, ports: Ports) -> list[str]:
    return [str(bin_dir / "local-path-provisioner"),
            f"--kubeconfig={state / 'kubeconfigs' / 'provisioner.kubeconfig'}",
            f"--root={state / 'volumes'}",
            f"--http-address=127.0.0.1:{ports.provisioner}"]


def storage_objects() -> list[tuple[str, dict]]:
    """(collection path, object) for the provisioner's RBAC and the default StorageClass."""
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": PROVISIONER_USER},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "system:persistent-volume-provisioner"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                      "name": PROVISIONER_USER}],
    }
    storage_class = {
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": STORAGE_CLASS, "annotations": {
            "storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": PROVISIONER_NAME,
        # The PV is pinned to a node, so it is made once the scheduler has picked the pod's.
        "volumeBindingMode": "WaitForFirstConsumer",
        "reclaimPolicy": "Delete",
    }
    return [("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", binding),
            ("/apis/storage.k8s.io/v1/storageclasses", storage_class)]
