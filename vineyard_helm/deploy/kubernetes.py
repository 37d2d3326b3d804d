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
import math
import posixpath
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from ..api import DEFAULT_RELEASE, DEFAULT_TIMEOUT, install, run_sync, uninstall_async
from ..errors import InvalidValuesError, WaitTimeoutError
from ..kubeconfig import kubeconfig_file
from ..records import Resource
from ..values import merge_values

logger = logging.getLogger(__name__)

#: Directories too broad to mount into a pod: a socket path directly inside one of them gets a
#: dedicated subdirectory instead (see :func:`socket_values`).
BROAD_DIRECTORIES = frozenset(
    {
        "/",
        "/run",
        "/var",
        "/var/run",
        "/var/lib",
        "/var/tmp",
        "/var/log",
        "/tmp",
        "/dev",
        "/dev/shm",
        "/etc",
        "/home",
        "/root",
        "/usr",
        "/usr/local",
        "/usr/lib",
        "/usr/share",
        "/opt",
        "/mnt",
        "/media",
        "/srv",
        "/boot",
        "/proc",
        "/sys",
        "/bin",
        "/sbin",
        "/lib",
        "/lib64",
        "/run/user",
        "/run/containerd",
        "/var/lib/kubelet",
        "/etc/kubernetes",
    }
)

#: Keyword arguments of start_vineyardd that are options, not chart values.
START_OPTIONS = ("release", "wait", "timeout", "kubeconfig", "context", "helm", "chart", "version")
#: Upstream's delete_kubernetes_objects passed these to the kubernetes delete calls; uninstalling
#: a release deletes every object with helm's own propagation, so they are accepted and ignored.
IGNORED_DELETE_OPTIONS = ("grace_period_seconds", "propagation_policy", "body", "dry_run")


def socket_values(socket: str, *, namespace: str, release: str) -> dict[str, Any]:
    """Chart values for upstream's ``socket`` argument (the socket file's path on each node).

    ``/path/to/dir/name.sock`` becomes a hostPath volume of ``/path/to/dir`` and socket file
    ``name.sock``. When the directory is a broad system directory (``/var/run``, ``/run``,
    ``/tmp``, ``/`` ...: see :data:`BROAD_DIRECTORIES`), mounting it would expose the node's
    other sockets to the pod, so a dedicated ``<dir>/vineyard/<namespace>/<release>``
    subdirectory is used instead: the default ``/var/run/vineyard.sock`` ends up at
    ``/var/run/vineyard/<namespace>/<release>/vineyard.sock`` on every node.
    """
    if not socket or not posixpath.isabs(socket) or socket.endswith("/"):
        raise InvalidValuesError(
            [f"socket: must be an absolute path to a socket file, got {socket!r}"]
        )
    normalized = posixpath.normpath(socket)
    directory, name = posixpath.split(normalized)
    if directory in BROAD_DIRECTORIES:
        directory = posixpath.join(directory, "vineyard", namespace, release)
    return {
        "socket": {
            "fileName": name,
            "volume": {"type": "hostPath", "hostPath": {"path": directory}},
        }
    }


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
    return {"image": values}


#: Memory the vineyardd container needs beside the shared memory (idle RSS is about 55 MB).
MEMORY_HEADROOM_MI = 256

_QUANTITY = re.compile(r"^(?P<number>[0-9]+(?:\.[0-9]+)?)(?P<unit>Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_UNIT_BYTES = {
    None: 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}


def memory_values(size: object) -> dict[str, Any]:
    """Container memory for a shared-memory ``size``: the chart charges the shared memory to
    the pod, so request and limit are ``size`` plus :data:`MEMORY_HEADROOM_MI`. Nothing when
    ``size`` is not a plain quantity (the schema then reports it)."""
    match = _QUANTITY.match(size) if isinstance(size, str) else None
    if match is None:
        return {}
    size_bytes = float(match["number"]) * _UNIT_BYTES[match["unit"]]
    memory = f"{math.ceil(size_bytes / 2**20) + MEMORY_HEADROOM_MI}Mi"
    return {"resources": {"requests": {"memory": memory}, "limits": {"memory": memory}}}


def pull_secret_values(secrets: str | Iterable[str] | None) -> dict[str, Any]:
    """A list of secret names or a comma-separated string -> ``imagePullSecrets``."""
    if secrets is None:
        return {}
    names = secrets.split(",") if isinstance(secrets, str) else list(secrets)
    return {"imagePullSecrets": [{"name": n.strip()} for n in names if n and n.strip()]}


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

    Every argument reaches the chart:

    - ``namespace``: the release's namespace (created if missing).
    - ``size``: ``vineyard.size``, vineyardd's ``--size`` shared memory; the container's memory
      request and limit become ``size`` + 256Mi (see :func:`memory_values`), since the shared
      memory is charged to the pod. Passing ``resources=...`` turns that off.
    - ``socket``: the socket file's path on each node: hostPath directory ``dirname(socket)``
      and ``socket.fileName`` ``basename(socket)``; a broad system directory such as
      ``/var/run`` is replaced by ``<dir>/vineyard/<namespace>/<release>`` (see
      :func:`socket_values`).
    - ``rpc_socket_port``: ``vineyard.rpc.port`` (vineyardd's RPC port) and ``rpcService.port``.
    - ``vineyard_image``: ``repo:tag`` / ``repo@digest`` -> ``image.repository/tag/digest``;
      None keeps the chart's pinned image (upstream defaulted to ``:latest``).
    - ``vineyard_image_pull_policy``: ``image.pullPolicy``.
    - ``vineyard_image_pull_secrets``: names (list, or comma-separated string) ->
      ``imagePullSecrets``.
    - ``k8s_client``: a ``kubernetes.client.ApiClient``; helm is pointed at the same API server
      and credentials (server, CA, client certificate or token of its configuration). When
      nothing can be derived from it, the default kubeconfig is used.
    - ``**extra_values``: more chart values, deep-merged last (``etcd={"replicaCount": 3}``).
      The names ``release``, ``wait``, ``timeout``, ``kubeconfig``, ``context``, ``helm``,
      ``chart`` and ``version`` are options of the install instead (release name, default
      ``vineyard``; wait for readiness, default True; timeout, default ``5m``).

    Values are validated against the chart schema before anything is created: unlike
    upstream, a bad argument never leaves a half deployment behind.

    Returns the created resources, to pass to :func:`delete_kubernetes_objects`.
    """
    options = {key: extra_values.pop(key) for key in START_OPTIONS if key in extra_values}
    release = str(options.pop("release", DEFAULT_RELEASE))
    layers: list[Mapping[str, Any]] = [
        {"vineyard": {"size": size, "rpc": {"enabled": True, "port": rpc_socket_port}}},
        {} if "resources" in extra_values else memory_values(size),
        {"rpcService": {"port": rpc_socket_port}},
        socket_values(socket, namespace=namespace, release=release),
        {"image": {"pullPolicy": vineyard_image_pull_policy}},
        image_values(vineyard_image) if vineyard_image else {},
        pull_secret_values(vineyard_image_pull_secrets),
        extra_values,
    ]
    options.setdefault("wait", True)
    options.setdefault("timeout", DEFAULT_TIMEOUT)
    with _cluster_of(k8s_client, options):
        result = install(merge_values(*layers), release=release, namespace=namespace, **options)
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
