"""A local Kubernetes for tests and demos: etcd, kube-apiserver, controller-manager, scheduler
and kwok-managed fake nodes on 127.0.0.1. See `cluster.Cluster` and `python -m localcluster`."""
from .cluster import DEFAULT_STATE_DIR, Cluster, ClusterError
from .kubeapi import ApiError, KubeApi
from .procs import ComponentError, wait_until

__all__ = ["DEFAULT_STATE_DIR", "ApiError", "Cluster", "ClusterError", "ComponentError", "KubeApi",
           "wait_until"]
