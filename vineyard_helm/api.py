"""install / upgrade / uninstall / status / render: async implementations, sync twins.

Each public verb exists twice: ``install_async`` (a coroutine) and ``install`` (a plain
function). The sync one runs the same coroutine with ``asyncio.run``, or, when the calling
thread already runs an event loop (Jupyter), on a worker thread with its own loop.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from .errors import InvalidValuesError, ReleaseNotFoundError, VineyardHelmError
from .helm import Helm
from .records import Release, ReleaseStatus
from .values import ValuesInput, apply_set, coalesce_with_defaults, collect_values, schema_problems

T = TypeVar("T")

DEFAULT_RELEASE = "vineyard"
DEFAULT_NAMESPACE = "vineyard"
#: helm's --timeout for waits (Go duration string or seconds).
DEFAULT_TIMEOUT = "5m"
#: Seconds between status polls while waiting, when a progress callback is given.
POLL_INTERVAL = 1.0

ChartRef = str | os.PathLike[str] | None
Timeout = str | int | float
ProgressCallback = Callable[[ReleaseStatus], object]


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from synchronous code, also inside a running loop."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="vineyard-helm") as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _timeout_arg(timeout: Timeout) -> str:
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
        return f"{max(int(timeout), 1)}s"
    return str(timeout)


# ---- chart references ----------------------------------------------------------------------


def resolve_chart(chart: ChartRef) -> tuple[str, Path | None]:
    """(reference passed to helm, local path when the chart is on disk).

    ``None`` is the bundled chart. A string naming an existing directory or file is a local
    chart (directory or .tgz); anything else (``repo/name``, ``oci://...``, a URL) goes to helm
    as it is."""
    from .bundled import chart_path

    if chart is None:
        path = chart_path()
        return str(path), path
    text = os.fspath(chart)
    if "://" not in text:
        candidate = Path(text).expanduser()
        if candidate.exists():
            return str(candidate.resolve()), candidate.resolve()
    return text, None


def _chart_schema_and_defaults(local: Path) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The schema and default values of a local chart directory or .tgz archive, read once per
    version of the files (a script rendering in a loop pays for parsing them once). Callers
    must not mutate the result (coalesce_with_defaults copies)."""
    files = [local / "values.schema.json", local / "values.yaml"] if local.is_dir() else [local]
    stamp = tuple(f.stat().st_mtime_ns if f.exists() else 0 for f in files)
    return _read_chart_schema_and_defaults(local, stamp)


@functools.lru_cache(maxsize=16)
def _read_chart_schema_and_defaults(
    local: Path, stamp: tuple[int, ...]
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    import json
    import tarfile

    from .values import load_yaml

    if local.is_dir():
        from .bundled import load_default_values, load_schema

        return load_schema(local), load_default_values(local)
    schema: dict[str, Any] | None = None
    defaults: dict[str, Any] = {}
    try:
        with tarfile.open(local) as archive:
            for member in archive.getmembers():
                parts = member.name.split("/")
                if len(parts) != 2 or parts[1] not in ("values.schema.json", "values.yaml"):
                    continue
                handle = archive.extractfile(member)
                if handle is None:
                    continue
                text = handle.read().decode("utf-8")
                if parts[1] == "values.yaml":
                    defaults = load_yaml(text) or {}
                else:
                    schema = json.loads(text)
    except (tarfile.TarError, OSError):
        return None, {}  # helm reports a broken archive itself
    return schema, defaults


def prepare_values(
    values: ValuesInput,
    *,
    set_values: Sequence[str] = (),
    set_string_values: Sequence[str] = (),
    local_chart: Path | None,
    validate: bool = True,
) -> dict[str, Any]:
    """Merge values like helm (files/dicts, then --set, then --set-string) and validate them
    against the chart's schema when the chart is local. Returns the one dict sent to helm."""
    merged = collect_values(values)
    for expression in set_values:
        apply_set(merged, expression)
    for expression in set_string_values:
        apply_set(merged, expression, as_string=True)
    if validate and local_chart is not None:
        schema, defaults = _chart_schema_and_defaults(local_chart)
        if schema is not None:
            problems = schema_problems(coalesce_with_defaults(defaults, merged), schema)
            if problems:
                raise InvalidValuesError(problems)
    return merged


def _parse_json_output(stdout: bytes) -> dict[str, Any]:
    import json

    # Helm >= 4.2.1 may print "Pulled:"/"Digest:" lines before the JSON for OCI charts.
    start = stdout.find(b"{")
    if start < 0:
        raise VineyardHelmError(f"helm printed no JSON: {stdout[:200]!r}")
    loaded: dict[str, Any] = json.loads(stdout[start:])
    return loaded


# ---- verbs -------------------------------------------------------------------------------


async def render_async(
    values: ValuesInput = None,
    *,
    release: str = DEFAULT_RELEASE,
    namespace: str = DEFAULT_NAMESPACE,
    chart: ChartRef = None,
    version: str | None = None,
    set_values: Sequence[str] = (),
    set_string_values: Sequence[str] = (),
    validate: bool = True,
    skip_tests: bool = False,
    plain_http: bool = False,
    helm: str | os.PathLike[str] | None = None,
) -> list[dict[str, Any]]:
    """Render the chart client-side (``helm template``) and return the manifests as dicts.

    Nothing contacts a cluster. Values are validated first (see :func:`validate`).
    ``skip_tests`` leaves out the chart's ``helm test`` pods (``--skip-tests``).
    ``plain_http`` fetches an ``oci://`` chart over HTTP (``--plain-http``)."""
    import json

    from .helm_json import load_manifest

    ref, local = resolve_chart(chart)
    merged = prepare_values(
        values,
        set_values=set_values,
        set_string_values=set_string_values,
        local_chart=local,
        validate=validate,
    )
    runner = Helm(helm=helm)
    args: list[str] = ["template", release, ref, "--namespace", namespace, "--values", "-"]
    if version:
        args += ["--version", version]
    if skip_tests:
        args.append("--skip-tests")
    if plain_http:
        args.append("--plain-http")
    stdout = await runner.run(args, json.dumps(merged).encode())
    return load_manifest(stdout.decode())


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
    kubeconfig: str | os.PathLike[str] | None,
    context: str | None,
    helm: str | os.PathLike[str] | None,
    progress: ProgressCallback | None,
    plain_http: bool = False,
    extra_args: Sequence[str] = (),
) -> Release:
    import json

    from .helm_json import release_from_json

    ref, local = resolve_chart(chart)
    merged = prepare_values(
        values, set_values=set_values, set_string_values=set_string_values, local_chart=local
    )
    runner = Helm(helm=helm, kubeconfig=kubeconfig, context=context)
    args: list[str] = [verb, release, ref, "--namespace", namespace, "--output", "json"]
    args += ["--values", "-", "--timeout", _timeout_arg(timeout), *extra_args]
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
    stdout = await _watch(
        runner.run(args, json.dumps(merged).encode()),
        runner,
        release=release,
        namespace=namespace,
        progress=progress if wait else None,
    )
    result = release_from_json(_parse_json_output(stdout))
    if not result.chart_version and local is not None and local.is_dir():
        from .bundled import chart_version

        result = dataclasses.replace(result, chart_version=chart_version(local))
    return result


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
    kubeconfig: str | os.PathLike[str] | None = None,
    context: str | None = None,
    helm: str | os.PathLike[str] | None = None,
    progress: ProgressCallback | None = None,
    plain_http: bool = False,
) -> Release:
    """Install the chart as a new release (``helm install``).

    ``values``: dict, YAML path, or a list of them, merged like ``helm -f`` (then
    ``set_values``/``set_string_values`` as ``--set``/``--set-string``), validated against the
    chart's schema before helm runs. ``chart``: None for the bundled chart, or a directory,
    .tgz, ``repo/name`` or ``oci://`` reference; ``version`` pins a repo chart's version.
    ``wait`` waits (up to ``timeout``, a Go duration or seconds) until every resource is ready;
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


async def _status(runner: Helm, *, release: str, namespace: str) -> ReleaseStatus:
    import asyncio

    from .helm_json import status_from_json

    base = ["--namespace", namespace, "--output", "json"]
    status_out, metadata_out = await asyncio.gather(
        runner.run(["status", release, *base, *(await runner.status_args())]),
        runner.run(["get", "metadata", release, *base]),
    )
    return status_from_json(
        _parse_json_output(status_out), metadata=_parse_json_output(metadata_out)
    )


async def status_async(
    release: str = DEFAULT_RELEASE,
    *,
    namespace: str = DEFAULT_NAMESPACE,
    kubeconfig: str | os.PathLike[str] | None = None,
    context: str | None = None,
    helm: str | os.PathLike[str] | None = None,
) -> ReleaseStatus:
    """Release revision and status, vineyardd per node (desired/ready/updated), etcd members,
    Service endpoints and the socket location."""
    runner = Helm(helm=helm, kubeconfig=kubeconfig, context=context)
    return await _status(runner, release=release, namespace=namespace)


async def validate_async(
    values: ValuesInput = None,
    *,
    chart: ChartRef = None,
    set_values: Sequence[str] = (),
    set_string_values: Sequence[str] = (),
    helm: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Merge and validate values the way an install would see them, without a cluster.

    First against the chart's values.schema.json (no helm needed); then, when the schema
    passes, by rendering the chart offline (``helm template``, which contacts no cluster) so
    that the chart's own cross-field rules run too (a memory limit below ``vineyard.size``,
    spill rates in the wrong order, ...). Returns the merged values. Raises InvalidValuesError
    listing each problem: schema problems as ``<dotted.path>: <message>``, the chart's as it
    words them (each names the values concerned). A chart that is not local (repo/OCI) is not
    checked here: helm checks it when it runs."""
    ref, local = resolve_chart(chart)
    merged = prepare_values(
        values, set_values=set_values, set_string_values=set_string_values, local_chart=local
    )
    if local is not None:
        await _check_chart_rules(ref, merged, helm=helm)
    return merged


async def _check_chart_rules(
    ref: str, values: dict[str, Any], *, helm: str | os.PathLike[str] | None
) -> None:
    """Render ``ref`` with ``values`` client-side; the chart's ``fail`` calls surface as
    InvalidValuesError (see errors.from_helm_failure). Other helm failures propagate."""
    import json

    runner = Helm(helm=helm)
    args = ["template", DEFAULT_RELEASE, ref, "--namespace", DEFAULT_NAMESPACE, "--values", "-"]
    await runner.run(args, json.dumps(values).encode())


# ---- sync twins ------------------------------------------------------------------------------

P = ParamSpec("P")


def _synchronous(function: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, T]:
    """The blocking twin of a coroutine function: same signature, same implementation."""

    @functools.wraps(function)
    def blocking(*args: P.args, **kwargs: P.kwargs) -> T:
        return run_sync(function(*args, **kwargs))

    blocking.__name__ = blocking.__qualname__ = function.__name__.removesuffix("_async")
    blocking.__doc__ = (function.__doc__ or "") + (
        f"\n\n(Blocking; the coroutine version is ``{function.__name__}``.)"
    )
    return blocking


install = _synchronous(install_async)
upgrade = _synchronous(upgrade_async)
uninstall = _synchronous(uninstall_async)
status = _synchronous(status_async)
render = _synchronous(render_async)
validate = _synchronous(validate_async)
