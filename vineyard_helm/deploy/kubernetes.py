"""Drop-in replacements for upstream ``vineyard.deploy.kubernetes``.

Upstream built the objects by hand (and got the Service selector, the namespace, the RPC port
and readiness wrong). These functions install and uninstall the vineyard chart instead:

>>> from vineyard_helm.deploy.kubernetes import start_vineyardd, delete_kubernetes_objects
>>> resources = start_vineyardd(namespace="vineyard", size="1Gi")   # waits until ready
>>> delete_kubernetes_objects(resources, wait=True)                 # returns once all is gone
"""

from __future__ import annotations

import contextlib
import logging
import posixpath
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from ..api import install, run_sync, uninstall_async
from ..defaults import DEFAULT_RELEASE, DEFAULT_TIMEOUT
from ..errors import InvalidValuesError, WaitTimeoutError
from ..kubeconfig import kubeconfig_file
from ..records import Resource

logger = logging.getLogger(__name__)

#: Keyword arguments of start_vineyardd that are options, not chart values.
START_OPTIONS = ("release", "wait", "timeout", "kubeconfig", "context", "helm", "chart", "version")
#: Upstream's delete_kubernetes_objects passed these to the kubernetes delete calls; uninstalling
#: a release deletes every object with helm's own propagation, so they are accepted and ignored.
IGNORED_DELETE_OPTIONS = ("grace_period_seconds", "propagation_policy", "body", "dry_run")
#: The chart's vineyard.memoryHeadroom: memory vineyardd gets beside the shared memory (idle
#: RSS is about 55 MB), so the container's memory request and limit are size + this.
MEMORY_HEADROOM = "256Mi"


def image_values(image: str) -> dict[str, Any]:
    """``repo[:tag][@digest]`` -> ``image.repository/tag/digest``. A registry port
    (``host:5000/repo``) is not mistaken for a tag; without a tag the chart's pinned tag stays."""
    reference, _, digest = image.partition("@")
    last_segment_start = reference.rfind("/") + 1
    repository, tag = reference, ""
    colon = reference.rfind(":")
    if colon >= last_segment_start and colon != -1:
        repository, tag = reference[:colon], reference[colon + 1 :]
    if not repository:
        raise InvalidValuesError([f"vineyard_image: not an image reference: {image!r}"])
    values: dict[str, Any] = {"repository": repository}
    if tag:
        values["tag"] = tag
    if digest:
        values["digest"] = digest
    return values


def pull_secret_names(secrets: str | Iterable[str]) -> list[dict[str, str]]:
    """A list of secret names or a comma-separated string -> ``imagePullSecrets`` items."""
    names = secrets.split(",") if isinstance(secrets, str) else list(secrets)
    return [{"name": n.strip()} for n in names if n and n.strip()]


def chart_values(
    *,
    size: str,
    socket: str,
    rpc_socket_port: int,
    vineyard_image: str | None,
    vineyard_image_pull_policy: str,
    vineyard_image_pull_secrets: str | Sequence[str] | None,
    memory_follows_size: bool,
) -> dict[str, Any]:
    """Upstream's arguments as chart values, one for one. Checking them is helm's and the
    chart's job: a bad size, a relative socket path or a socket in a system directory are
    handled by the chart's schema and helpers, as for `helm install` users."""
    values: dict[str, Any] = {
        "vineyard": {"size": size, "rpc": {"enabled": True, "port": rpc_socket_port}},
        "rpcService": {"port": rpc_socket_port},
        "socket": {
            "fileName": posixpath.basename(socket),
            # A bare file name keeps its relative path, which the schema refuses.
            "volume": {
                "type": "hostPath",
                "hostPath": {"path": posixpath.dirname(socket) or socket},
            },
        },
        "image": {"pullPolicy": vineyard_image_pull_policy},
        # Upstream's delete_kubernetes_objects() left nothing behind: etcd's claims go with the
        # release here too (the chart keeps them by default).
        "etcd": {"persistence": {"whenDeleted": "Delete"}},
    }
    if memory_follows_size:
        values["vineyard"]["memoryHeadroom"] = MEMORY_HEADROOM
    if vineyard_image:
        values["image"].update(image_values(vineyard_image))
    if vineyard_image_pull_secrets is not None:
        values["imagePullSecrets"] = pull_secret_names(vineyard_image_pull_secrets)
    return values


def start_vineyardd(
    namespace: str = "vineyard",
    size: str = "512Mi",
    socket: str = "/var/run/vineyard.sock",
    rpc_socket_port: int = 9600,
    vineyard_image: str | None = None,
    vineyard_image_pull_policy: str = "IfNotPresent",
    vineyard_image_pull_secrets: str | Sequence[str] | None = None,
    k8s_client: Any = None,
    **extra_values: Any,
) -> list[Resource]:
    """Launch vineyard on Kubernetes: install the vineyard chart and wait until it is ready.

    Every argument reaches the chart as a value (:func:`chart_values`):

    ==============================  =========================================================
    ``namespace``                   the release's namespace (created if missing)
    ``size``                        ``vineyard.size`` (vineyardd's ``--size``), and
                                    ``vineyard.memoryHeadroom`` 256Mi: the container's memory
                                    request and limit are size + 256Mi, since the shared
                                    memory is charged to the pod (``resources=...`` instead
                                    sets them yourself)
    ``socket``                      the socket file's path on each node:
                                    ``socket.volume.hostPath.path`` its directory,
                                    ``socket.fileName`` its name. The chart never mounts a
                                    system directory such as ``/var/run`` whole: the default
                                    ``/var/run/vineyard.sock`` lands in
                                    ``/var/run/vineyard/<namespace>/<release>/vineyard.sock``
                                    (``status().socket`` says where)
    ``rpc_socket_port``             ``vineyard.rpc.port`` and ``rpcService.port``
    ``vineyard_image``              ``repo:tag`` / ``repo@digest`` ->
                                    ``image.repository/tag/digest``; None keeps the chart's
                                    pinned image (upstream defaulted to ``:latest``)
    ``vineyard_image_pull_policy``  ``image.pullPolicy``
    ``vineyard_image_pull_secrets`` ``imagePullSecrets`` (names: a list, or a
                                    comma-separated string)
    (etcd's claims)                 ``etcd.persistence.whenDeleted`` Delete: uninstalling
                                    removes them, as upstream's delete left nothing behind
    ``**extra_values``              more chart values, merged over these by helm
                                    (``etcd={"replicaCount": 3}``)
    ==============================  =========================================================

    The names ``release``, ``wait``, ``timeout``, ``kubeconfig``, ``context``, ``helm``,
    ``chart`` and ``version`` are options of the install instead (release name, default
    ``vineyard``; wait for readiness, default True; timeout, default ``5m``). ``k8s_client``
    (a ``kubernetes.client.ApiClient``) points helm at the same API server and credentials
    (server, CA, client certificate or token of its configuration); when nothing can be
    derived from it, the default kubeconfig is used.

    helm and the chart check the values before anything is created: unlike upstream, a bad
    argument raises InvalidValuesError and never leaves a half deployment behind.

    Returns the created resources, to pass to :func:`delete_kubernetes_objects`.
    """
    options = {key: extra_values.pop(key) for key in START_OPTIONS if key in extra_values}
    release = str(options.pop("release", DEFAULT_RELEASE))
    values: list[Mapping[str, Any]] = [
        chart_values(
            size=size,
            socket=socket,
            rpc_socket_port=rpc_socket_port,
            vineyard_image=vineyard_image,
            vineyard_image_pull_policy=vineyard_image_pull_policy,
            vineyard_image_pull_secrets=vineyard_image_pull_secrets,
            memory_follows_size="resources" not in extra_values,
        ),
        extra_values,
    ]
    options.setdefault("wait", True)
    options.setdefault("timeout", DEFAULT_TIMEOUT)
    with _cluster_of(k8s_client, options):
        result = install(values, release=release, namespace=namespace, **options)
    return list(result.resources)


@contextlib.contextmanager
def _cluster_of(k8s_client: Any, options: dict[str, Any]) -> Iterator[None]:
    """Point ``options`` at the API server of ``k8s_client`` (a temporary kubeconfig that lives
    as long as the block), unless a kubeconfig was given explicitly."""
    with kubeconfig_file(k8s_client) as derived:
        if derived is not None and options.get("kubeconfig") is None:
            options["kubeconfig"] = derived
            options.pop("context", None)
        yield


def _release_of(target: Any) -> tuple[str, str]:
    if isinstance(target, Resource):
        return target.namespace, target.release
    raise TypeError(
        "delete_kubernetes_objects() takes the resources returned by start_vineyardd() "
        f"(vineyard_helm.Resource records), not {type(target).__name__}"
    )


def delete_kubernetes_objects(
    targets: Iterable[Resource],
    k8s_client: Any = None,
    verbose: bool = False,
    wait: bool = False,
    timeout_seconds: int = 60,
    **kwargs: Any,
) -> None:
    """Delete what :func:`start_vineyardd` created, by uninstalling the owning release(s).

    Releases already gone are skipped. With ``wait=True`` this returns once every object is
    deleted, or raises :class:`~vineyard_helm.WaitTimeoutError` after ``timeout_seconds``
    (upstream's version never returned). ``k8s_client`` selects the cluster as in
    :func:`start_vineyardd`. ``kwargs``: ``kubeconfig``, ``context`` and ``helm`` are honoured;
    upstream's per-object delete options (``grace_period_seconds``, ``propagation_policy``,
    ``body``, ``dry_run``) are accepted and ignored.
    """
    options: dict[str, Any] = {
        key: kwargs.pop(key) for key in ("kubeconfig", "context", "helm") if key in kwargs
    }
    unknown = sorted(set(kwargs) - set(IGNORED_DELETE_OPTIONS))
    if unknown:
        raise TypeError(f"delete_kubernetes_objects() got unexpected keyword arguments: {unknown}")
    releases = sorted({_release_of(target) for target in targets})
    with _cluster_of(k8s_client, options):
        run_sync(
            _delete_releases(
                releases,
                wait=wait,
                timeout_seconds=timeout_seconds,
                verbose=verbose,
                options=options,
            )
        )


async def _delete_releases(
    releases: Sequence[tuple[str, str]],
    *,
    wait: bool,
    timeout_seconds: int,
    verbose: bool,
    options: Mapping[str, Any],
) -> None:
    import asyncio
    import time

    deadline = time.monotonic() + timeout_seconds
    for namespace, release in releases:
        remaining = max(deadline - time.monotonic(), 1.0)
        if verbose:
            logger.info("uninstalling release %s in namespace %s", release, namespace)
        work = uninstall_async(
            release,
            namespace=namespace,
            wait=wait,
            timeout=int(remaining) or 1,
            ignore_not_found=True,
            **options,
        )
        try:
            # helm enforces the timeout itself; this bound only guards against a helm that hangs.
            await asyncio.wait_for(work, timeout=remaining + 30)
        except asyncio.TimeoutError:
            raise WaitTimeoutError(
                f"release {release} in namespace {namespace} was not deleted within "
                f"{timeout_seconds} s"
            ) from None
        if verbose:
            logger.info("release %s in namespace %s deleted", release, namespace)
