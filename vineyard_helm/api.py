"""install / upgrade / uninstall / status / render / validate: async implementations, sync twins.

Each public verb exists twice: ``install_async`` (a coroutine) and ``install`` (a plain
function), one implementation. The sync twin of a cluster verb runs the coroutine with
``asyncio.run``, or, when the calling thread already runs an event loop (Jupyter), on a worker
thread with its own loop. The offline verbs (``render``, ``validate``) only ever await helm, so
their sync twins run helm in the calling thread (:data:`~vineyard_helm.helm.BLOCKING`) and
drive the same coroutine to its end without an event loop.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Awaitable, Callable, Coroutine, Sequence

from .defaults import DEFAULT_NAMESPACE, DEFAULT_RELEASE, DEFAULT_TIMEOUT
from .errors import ReleaseNotFoundError, VineyardHelmError
from .helm import BLOCKING, Helm
from .values import ValuesInput, values_args

# Types only: a cold `vineyard-helm render` imports neither typing nor the records.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, ParamSpec, TypeVar

    from .records import Release, ReleaseStatus

    T = TypeVar("T")
    P = ParamSpec("P")
    ProgressCallback = Callable[[ReleaseStatus], object]

#: Seconds between status polls while waiting, when a progress callback is given.
POLL_INTERVAL = 1.0

ChartRef = str | os.PathLike[str] | None
Timeout = str | int | float


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from synchronous code, also inside a running loop."""
    import asyncio

    results: list[T] = []

    async def main() -> None:
        # The result is handed over here, not as the main task's result: on Python 3.11
        # asyncio.run formats the task's repr twice (its SIGINT bookkeeping), which for a
        # rendered manifest cost more than a millisecond per call.
        results.append(await coroutine)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(main())
        return results[0]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="vineyard-helm") as pool:
        pool.submit(asyncio.run, main()).result()
    return results[0]


def _timeout_arg(timeout: Timeout) -> str:
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
        return f"{max(int(timeout), 1)}s"
    return str(timeout)


# ---- chart references and helm's output -----------------------------------------------------


def resolve_chart(chart: ChartRef) -> str:
    """The chart reference passed to helm: ``None`` is the bundled chart; a directory, .tgz,
    ``repo/name``, URL or ``oci://`` reference goes to helm as it is (``~`` expanded)."""
    if chart is None:
        from .bundled import chart_directory

        return chart_directory()
    text = os.fspath(chart)
    return os.path.expanduser(text) if text.startswith("~") else text


def _parse_json_output(stdout: bytes) -> dict[str, Any]:
    import json

    # Helm >= 4.2.1 may print "Pulled:"/"Digest:" lines before the JSON for OCI charts.
    start = stdout.find(b"{")
    if start < 0:
        raise VineyardHelmError(f"helm printed no JSON: {stdout[:200]!r}")
    loaded: dict[str, Any] = json.loads(stdout[start:])
    return loaded


# ---- verbs -------------------------------------------------------------------------------


async def render_text_async(
    values: ValuesInput = None,
    *,
    release: str = DEFAULT_RELEASE,
    namespace: str = DEFAULT_NAMESPACE,
    chart: ChartRef = None,
    version: str | None = None,
    set_values: Sequence[str] = (),
    set_string_values: Sequence[str] = (),
    set_json_values: Sequence[str] = (),
    validate: bool = True,
    skip_tests: bool = False,
    plain_http: bool = False,
    helm: str | os.PathLike[str] | None = None,
) -> str:
    """The manifest exactly as ``helm template`` prints it (arguments as for :func:`render`)."""
    args: list[str] = ["template", release, resolve_chart(chart), "--namespace", namespace]
    if version:
        args += ["--version", version]
    if skip_tests:
        args.append("--skip-tests")
    if plain_http:
        args.append("--plain-http")
    if not validate:
        args.append("--skip-schema-validation")
    runner = Helm(helm=helm)
    with values_args(
        values,
        set_values=set_values,
        set_string_values=set_string_values,
        set_json_values=set_json_values,
    ) as (values_flags, stdin):
        stdout = await runner.run([*args, *values_flags], stdin)
    return stdout.decode()


async def render_async(
    values: ValuesInput = None,
    *,
    release: str = DEFAULT_RELEASE,
    namespace: str = DEFAULT_NAMESPACE,
    chart: ChartRef = None,
    version: str | None = None,
    set_values: Sequence[str] = (),
    set_string_values: Sequence[str] = (),
    set_json_values: Sequence[str] = (),
    validate: bool = True,
    skip_tests: bool = False,
    plain_http: bool = False,
    helm: str | os.PathLike[str] | None = None,
) -> list[dict[str, Any]]:
    """Render the chart client-side (``helm template``) and return the manifests as dicts.

    Nothing contacts a cluster. ``values`` and the ``set_*`` expressions go to helm unchanged
    (see :func:`install`); helm checks them against the chart's schema and the chart's own
    rules run, so bad values raise InvalidValuesError. ``validate=False`` skips the schema
    (``--skip-schema-validation``), not the chart's rules. ``skip_tests`` leaves out the
    chart's ``helm test`` pods (``--skip-tests``). ``plain_http`` fetches an ``oci://`` chart
    over HTTP (``--plain-http``)."""
    from .helm import load_manifest

    text = await render_text_async(
        values,
        release=release,
        namespace=namespace,
        chart=chart,
        version=version,
        set_values=set_values,
        set_string_values=set_string_values,
        set_json_values=set_json_values,
        validate=validate,
        skip_tests=skip_tests,
        plain_http=plain_http,
        helm=helm,
    )
    return load_manifest(text)


async def _watch(
    work: Awaitable[T],
    runner: Helm,
    *,
    release: str,
    namespace: str,
    progress: ProgressCallback | None,
) -> T:
    """Await ``work``; meanwhile, if ``progress`` is given, poll the release's status and pass
    each snapshot to it. Status errors while polling (release not recorded yet) are ignored."""
    import asyncio

    task = asyncio.ensure_future(work)
    if progress is None:
        return await task
    try:
        while not task.done():
            done, _ = await asyncio.wait({task}, timeout=POLL_INTERVAL)
            if done:
                break
            try:
                snapshot = await _status(runner, release=release, namespace=namespace)
            except VineyardHelmError:
                continue
            if not task.done():
                progress(snapshot)
        return task.result()
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def _install_or_upgrade(
    verb: str,
    values: ValuesInput,
    *,
    release: str,
    namespace: str,
    chart: ChartRef,
    version: str | None,
    create_namespace: bool,
    wait: bool,
    timeout: Timeout,
    rollback_on_failure: bool,
    set_values: Sequence[str],
    set_string_values: Sequence[str],
    set_json_values: Sequence[str],
    kubeconfig: str | os.PathLike[str] | None,
    context: str | None,
    helm: str | os.PathLike[str] | None,
    progress: ProgressCallback | None,
    plain_http: bool,
    extra_args: Sequence[str] = (),
) -> Release:
    from .helm_json import release_from_json

    runner = Helm(helm=helm, kubeconfig=kubeconfig, context=context)
    args: list[str] = [verb, release, resolve_chart(chart), "--namespace", namespace]
    args += ["--output", "json", "--timeout", _timeout_arg(timeout), *extra_args]
    if create_namespace:
        args.append("--create-namespace")
    if version:
        args += ["--version", version]
    if plain_http:
        args.append("--plain-http")
    if wait:
        args += ["--wait", "--wait-for-jobs"]
    if rollback_on_failure:
        args.append(await runner.rollback_on_failure_flag())
    with values_args(
        values,
        set_values=set_values,
        set_string_values=set_string_values,
        set_json_values=set_json_values,
    ) as (values_flags, stdin):
        stdout = await _watch(
            runner.run([*args, *values_flags], stdin),
            runner,
            release=release,
            namespace=namespace,
            progress=progress if wait else None,
        )
    return release_from_json(_parse_json_output(stdout))


async def install_async(
    values: ValuesInput = None,
    *,
    release: str = DEFAULT_RELEASE,
    namespace: str = DEFAULT_NAMESPACE,
    chart: ChartRef = None,
    version: str | None = None,
    create_namespace: bool = True,
    wait: bool = True,
    timeout: Timeout = DEFAULT_TIMEOUT,
    rollback_on_failure: bool = False,
    set_values: Sequence[str] = (),
    set_string_values: Sequence[str] = (),
    set_json_values: Sequence[str] = (),
    kubeconfig: str | os.PathLike[str] | None = None,
    context: str | None = None,
    helm: str | os.PathLike[str] | None = None,
    progress: ProgressCallback | None = None,
    plain_http: bool = False,
) -> Release:
    """Install the chart as a new release (``helm install``).

    ``values``: a dict, a YAML file path, or a list of them, handed to helm in that order
    (``--values``), then ``set_json_values``, ``set_values`` and ``set_string_values`` as
    ``--set-json``/``--set``/``--set-string``, all unchanged: helm merges them (later files
    win, maps merge, lists are replaced), checks them against the chart's schema, and the
    chart's own rules run before anything reaches the cluster; bad values raise
    InvalidValuesError. ``chart``: None for the bundled chart, or a directory, .tgz,
    ``repo/name`` or ``oci://`` reference; ``version`` pins a repo chart's version. ``wait``
    waits (up to ``timeout``, a Go duration or seconds) until every resource is ready;
    ``progress`` is then called with a :class:`ReleaseStatus` about once a second.
    ``rollback_on_failure`` is Helm 4's --rollback-on-failure (--atomic on Helm 3).
    ``plain_http`` fetches an ``oci://`` chart over HTTP (``--plain-http``), e.g. from a
    registry on loopback.

    Raises ReleaseExistsError if the name is taken (use :func:`upgrade`)."""
    return await _install_or_upgrade(
        "install",
        values,
        release=release,
        namespace=namespace,
        chart=chart,
        version=version,
        create_namespace=create_namespace,
        wait=wait,
        timeout=timeout,
        rollback_on_failure=rollback_on_failure,
        set_values=set_values,
        set_string_values=set_string_values,
        set_json_values=set_json_values,
        kubeconfig=kubeconfig,
        context=context,
        helm=helm,
        progress=progress,
        plain_http=plain_http,
    )


async def upgrade_async(
    values: ValuesInput = None,
    *,
    release: str = DEFAULT_RELEASE,
    namespace: str = DEFAULT_NAMESPACE,
    chart: ChartRef = None,
    version: str | None = None,
    install: bool = False,
    create_namespace: bool = True,
    wait: bool = True,
    timeout: Timeout = DEFAULT_TIMEOUT,
    rollback_on_failure: bool = False,
    reuse_values: bool = False,
    set_values: Sequence[str] = (),
    set_string_values: Sequence[str] = (),
    set_json_values: Sequence[str] = (),
    kubeconfig: str | os.PathLike[str] | None = None,
    context: str | None = None,
    helm: str | os.PathLike[str] | None = None,
    progress: ProgressCallback | None = None,
    plain_http: bool = False,
) -> Release:
    """Upgrade a release to ``values`` (``helm upgrade``); arguments as for :func:`install`.

    ``install=True`` installs when the release does not exist (``--install``); otherwise a
    missing release raises ReleaseNotFoundError. ``reuse_values`` keeps the release's previous
    values under the new ones (``--reuse-values``)."""
    extra = (["--install"] if install else []) + (["--reuse-values"] if reuse_values else [])
    return await _install_or_upgrade(
        "upgrade",
        values,
        release=release,
        namespace=namespace,
        chart=chart,
        version=version,
        create_namespace=create_namespace and install,
        wait=wait,
        timeout=timeout,
        rollback_on_failure=rollback_on_failure,
        set_values=set_values,
        set_string_values=set_string_values,
        set_json_values=set_json_values,
        kubeconfig=kubeconfig,
        context=context,
        helm=helm,
        progress=progress,
        plain_http=plain_http,
        extra_args=extra,
    )


async def uninstall_async(
    release: str = DEFAULT_RELEASE,
    *,
    namespace: str = DEFAULT_NAMESPACE,
    wait: bool = True,
    timeout: Timeout = DEFAULT_TIMEOUT,
    ignore_not_found: bool = False,
    kubeconfig: str | os.PathLike[str] | None = None,
    context: str | None = None,
    helm: str | os.PathLike[str] | None = None,
) -> None:
    """Uninstall a release (``helm uninstall``); with ``wait`` return only once its resources,
    pods included, are gone. Raises ReleaseNotFoundError unless ``ignore_not_found``."""
    runner = Helm(helm=helm, kubeconfig=kubeconfig, context=context)
    args = ["uninstall", release, "--namespace", namespace, "--timeout", _timeout_arg(timeout)]
    if wait:
        # Foreground deletion keeps each owner until its dependents (the vineyardd and etcd
        # pods) are gone, so --wait returns only when the pods have stopped too.
        args += ["--wait", "--cascade", "foreground"]
    try:
        await runner.run(args)
    except ReleaseNotFoundError:
        if not ignore_not_found:
            raise


async def _status_documents(
    runner: Helm, *, release: str, namespace: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``helm status -o json`` (with live resources) and ``helm get metadata -o json``."""
    import asyncio

    base = ["--namespace", namespace, "--output", "json"]
    status_out, metadata_out = await asyncio.gather(
        runner.run(["status", release, *base, *(await runner.status_args())]),
        runner.run(["get", "metadata", release, *base]),
    )
    return _parse_json_output(status_out), _parse_json_output(metadata_out)


async def _status(runner: Helm, *, release: str, namespace: str) -> ReleaseStatus:
    from .helm_json import status_from_json

    data, metadata = await _status_documents(runner, release=release, namespace=namespace)
    return status_from_json(data, metadata=metadata)


def _live_objects(data: dict[str, Any]) -> tuple[dict[Any, Any], dict[str, Any]]:
    """The DaemonSets and StatefulSets helm returned, by name, and the pods, by name."""
    from .helm_json import _objects

    live = (data.get("info") or {}).get("resources") or {}
    by_name = {
        (obj.get("metadata") or {}).get("name"): obj
        for kind in ("DaemonSet", "StatefulSet")
        for obj in _objects(live, kind)
    }
    pods = {
        (obj.get("metadata") or {}).get("name", ""): obj
        for obj in _objects(live, "Pod(related)") + _objects(live, "Pod")
    }
    return by_name, pods


async def _with_metrics(
    status: ReleaseStatus,
    data: dict[str, Any],
    *,
    namespace: str,
    kubeconfig: str | os.PathLike[str] | None,
    context: str | None,
) -> ReleaseStatus:
    """The status with what the pods' /metrics pages say (vineyard_helm/metrics.py), which pods
    and ports taken from the workloads helm returned."""
    import dataclasses

    from .metrics import collect

    by_name, pods = _live_objects(data)
    daemonsets = [d for d in (status.vineyardd, *status.pools) if d is not None]
    report = await collect(
        namespace=namespace,
        vineyardd=[(d, by_name.get(d.name)) for d in daemonsets],
        etcd=(status.etcd, by_name.get(status.etcd.name)) if status.etcd else None,
        kubeconfig=os.fspath(kubeconfig) if kubeconfig is not None else None,
        context=context,
        pods=pods,
    )
    return dataclasses.replace(status, metrics=report)


async def _node_gaps(
    status: ReleaseStatus,
    data: dict[str, Any],
    *,
    kubeconfig: str | os.PathLike[str] | None,
    context: str | None,
) -> dict[str, Any]:
    """The ReleaseStatus fields on the nodes its vineyardd DaemonSets select that run none of
    its vineyardd pods (vineyard_helm/nodes.py): nodes listed by each DaemonSet's nodeSelector,
    minus those running a pod helm returned."""
    from .nodes import collect

    by_name, pods = _live_objects(data)
    names = [d.name for d in (status.vineyardd, *status.pools) if d is not None]
    selected, gaps, note = await collect(
        daemonsets=[by_name[name] for name in names if name in by_name],
        pods=pods.values(),
        kubeconfig=os.fspath(kubeconfig) if kubeconfig is not None else None,
        context=context,
    )
    return {"nodes_without_vineyardd": gaps, "nodes_selected": selected, "nodes_note": note}


async def status_async(
    release: str = DEFAULT_RELEASE,
    *,
    namespace: str = DEFAULT_NAMESPACE,
    kubeconfig: str | os.PathLike[str] | None = None,
    context: str | None = None,
    helm: str | os.PathLike[str] | None = None,
    metrics: bool = True,
    nodes: bool = True,
) -> ReleaseStatus:
    """Release revision and status, vineyardd per node (desired/ready/updated), etcd members,
    Service endpoints and the socket location.

    With ``metrics`` (the default), also each vineyardd's memory used against its size and each
    etcd member's database size against its quota and its alarms, read from the pods' /metrics
    pages through the API server (``ReleaseStatus.metrics``; needs the ``status`` extra: the
    kubernetes client). vineyardd's need ``metrics.enabled``; a pod that cannot be reached is
    reported as such, never an error.

    With ``nodes`` (the default), also the nodes the vineyardd DaemonSets select (by their
    nodeSelector) that run no vineyardd pod of the release, each with its Ready condition,
    cordon and the taints the pods do not tolerate (``ReleaseStatus.nodes_without_vineyardd``;
    the ``status`` extra too, and RBAC to list nodes). ``ready`` does not count them: like
    helm's --wait it trusts the DaemonSets' desired number of pods, which leaves out a node
    that is not Ready yet; such a node gets its pod once it is, and is listed here until then."""
    import asyncio
    import dataclasses

    from .helm_json import status_from_json

    runner = Helm(helm=helm, kubeconfig=kubeconfig, context=context)
    data, metadata = await _status_documents(runner, release=release, namespace=namespace)
    status = status_from_json(data, metadata=metadata)

    async def no_metrics() -> ReleaseStatus:
        return status

    async def no_nodes() -> dict[str, Any]:
        return {}

    with_metrics, node_fields = await asyncio.gather(
        _with_metrics(status, data, namespace=namespace, kubeconfig=kubeconfig, context=context)
        if metrics
        else no_metrics(),
        _node_gaps(status, data, kubeconfig=kubeconfig, context=context) if nodes else no_nodes(),
    )
    result: ReleaseStatus = dataclasses.replace(with_metrics, **node_fields)
    return result


async def validate_async(
    values: ValuesInput = None,
    *,
    release: str = DEFAULT_RELEASE,
    namespace: str = DEFAULT_NAMESPACE,
    chart: ChartRef = None,
    version: str | None = None,
    set_values: Sequence[str] = (),
    set_string_values: Sequence[str] = (),
    set_json_values: Sequence[str] = (),
    plain_http: bool = False,
    helm: str | os.PathLike[str] | None = None,
) -> None:
    """Check values the way an install of ``release`` into ``namespace`` would, offline.

    This is ``helm template`` of the chart with the values, its output discarded: it needs a
    helm binary and contacts no cluster. helm reads the values (files, dicts, the ``set_*``
    expressions), checks them against the chart's values.schema.json, and the chart's own
    cross-field rules run (a memory limit below ``vineyard.size``, spill rates in the wrong
    order, ...). Returns None when the values are valid; raises InvalidValuesError listing
    every problem: schema problems as ``<dotted.path>: <message>``, the chart's as it words
    them (each names the values concerned). A repo or ``oci://`` chart is fetched first."""
    await render_text_async(
        values,
        release=release,
        namespace=namespace,
        chart=chart,
        version=version,
        set_values=set_values,
        set_string_values=set_string_values,
        set_json_values=set_json_values,
        plain_http=plain_http,
        helm=helm,
    )


# ---- sync twins ------------------------------------------------------------------------------


def _twin(
    function: Callable[P, Coroutine[Any, Any, T]], run: Callable[[Coroutine[Any, Any, T]], T]
) -> Callable[P, T]:
    """The blocking twin of a coroutine function: same signature, same implementation."""

    @functools.wraps(function)
    def blocking(*args: P.args, **kwargs: P.kwargs) -> T:
        return run(function(*args, **kwargs))

    blocking.__name__ = blocking.__qualname__ = function.__name__.removesuffix("_async")
    blocking.__doc__ = (function.__doc__ or "") + (
        f"\n\n(Blocking; the coroutine version is ``{function.__name__}``.)"
    )
    return blocking


def run_offline(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run an offline verb's coroutine to its end in the calling thread, without an event loop:
    it only awaits helm runs, which block under BLOCKING, so it never suspends."""
    token = BLOCKING.set(True)
    try:
        coroutine.send(None)
    except StopIteration as finished:
        result: T = finished.value
        return result
    finally:
        BLOCKING.reset(token)
    coroutine.close()
    raise RuntimeError(f"{coroutine!r} waited on something other than helm")


install = _twin(install_async, run_sync)
upgrade = _twin(upgrade_async, run_sync)
uninstall = _twin(uninstall_async, run_sync)
status = _twin(status_async, run_sync)
render = _twin(render_async, run_offline)
render_text = _twin(render_text_async, run_offline)
validate = _twin(validate_async, run_offline)
