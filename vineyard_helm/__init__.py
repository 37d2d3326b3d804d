"""Deploy vineyard (v6d) on Kubernetes from Python by driving its Helm chart.

>>> import vineyard_helm
>>> manifests = vineyard_helm.render({"vineyard": {"size": "1Gi"}})   # no cluster needed
>>> release = vineyard_helm.install({"vineyard": {"size": "1Gi"}})     # waits until ready
>>> release = vineyard_helm.upgrade(set_values=["etcd.replicaCount=3"],
...                                 progress=vineyard_helm.ProgressDisplay())  # pods per node
>>> vineyard_helm.status().ready
True
>>> vineyard_helm.uninstall()

Every verb has an ``*_async`` twin for async code. Errors derive from
:class:`VineyardHelmError`. Upstream's ``vineyard.deploy.kubernetes`` functions are in
:mod:`vineyard_helm.deploy.kubernetes`.
"""

from .api import (
    DEFAULT_NAMESPACE,
    DEFAULT_RELEASE,
    DEFAULT_TIMEOUT,
    install,
    install_async,
    render,
    render_async,
    status,
    status_async,
    uninstall,
    uninstall_async,
    upgrade,
    upgrade_async,
    validate,
    validate_async,
)
from .bundled import chart_path
from .errors import (
    ChartNotFoundError,
    ClusterUnreachableError,
    HelmError,
    HelmNotFoundError,
    InvalidValuesError,
    ReleaseExistsError,
    ReleaseNotFoundError,
    VineyardHelmError,
    WaitTimeoutError,
)
from .helm import HELM_ENV_VAR
from .progress import ProgressDisplay
from .records import (
    PodStatus,
    Release,
    ReleaseStatus,
    Resource,
    ServiceStatus,
    SocketLocation,
    WorkloadStatus,
)
from .values import merge_values, parse_set


def __getattr__(name: str) -> str:
    # One version for package and chart: the bundled Chart.yaml's (what the wheel was built
    # from). Reading it is cheaper than importlib.metadata.
    if name == "__version__":
        from .bundled import chart_version

        try:
            return chart_version()
        except VineyardHelmError:
            from importlib.metadata import version

            return version("vineyard-helm")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_NAMESPACE",
    "DEFAULT_RELEASE",
    "DEFAULT_TIMEOUT",
    "HELM_ENV_VAR",
    "ChartNotFoundError",
    "ClusterUnreachableError",
    "HelmError",
    "HelmNotFoundError",
    "InvalidValuesError",
    "PodStatus",
    "ProgressDisplay",
    "Release",
    "ReleaseExistsError",
    "ReleaseNotFoundError",
    "ReleaseStatus",
    "Resource",
    "ServiceStatus",
    "SocketLocation",
    "VineyardHelmError",
    "WaitTimeoutError",
    "WorkloadStatus",
    "chart_path",
    "install",
    "install_async",
    "merge_values",
    "parse_set",
    "render",
    "render_async",
    "status",
    "status_async",
    "uninstall",
    "uninstall_async",
    "upgrade",
    "upgrade_async",
    "validate",
    "validate_async",
]
