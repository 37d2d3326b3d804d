"""Deploy vineyard (v6d) on Kubernetes from Python by driving its Helm chart.

>>> import vineyard_helm
>>> manifests = vineyard_helm.render({"vineyard": {"size": "1Gi"}})   # no cluster needed
>>> release = vineyard_helm.install({"vineyard": {"size": "1Gi"}})     # waits until ready
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
    # The version is the chart's version (Chart.yaml); read lazily from package metadata.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("vineyard-helm")
        except PackageNotFoundError:
            from .bundled import chart_version

            return chart_version()
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
]
