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

# typing.TYPE_CHECKING without importing typing (mypy reads this spelling too).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .api import (
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
    from .defaults import DEFAULT_NAMESPACE, DEFAULT_RELEASE, DEFAULT_TIMEOUT
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

# Each public name and the module defining it, imported on first use (PEP 562): `import
# vineyard_helm` itself loads nothing, so the CLI's --version and a script's import stay quick.
_MODULES = {
    "api": (
        "install install_async render render_async status status_async uninstall "
        "uninstall_async upgrade upgrade_async validate validate_async"
    ),
    "bundled": "chart_path",
    "defaults": "DEFAULT_NAMESPACE DEFAULT_RELEASE DEFAULT_TIMEOUT",
    "errors": (
        "ChartNotFoundError ClusterUnreachableError HelmError HelmNotFoundError "
        "InvalidValuesError ReleaseExistsError ReleaseNotFoundError VineyardHelmError "
        "WaitTimeoutError"
    ),
    "helm": "HELM_ENV_VAR",
    "progress": "ProgressDisplay",
    "records": (
        "PodStatus Release ReleaseStatus Resource ServiceStatus SocketLocation WorkloadStatus"
    ),
}
_HOME = {name: module for module, names in _MODULES.items() for name in names.split()}


def __getattr__(name: str) -> "Any":
    if name in _HOME:
        import importlib

        value = getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
        globals()[name] = value
        return value
    # One version for package and chart: the bundled Chart.yaml's (what the wheel was built
    # from). Reading it is cheaper than importlib.metadata.
    if name == "__version__":
        from .bundled import chart_version
        from .errors import VineyardHelmError

        try:
            return chart_version()
        except VineyardHelmError:
            from importlib.metadata import version

            return version("vineyard-helm")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


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
