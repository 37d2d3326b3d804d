"""The helm binary: finding it, its major version, running it, reading its YAML output.

Every helm invocation goes through :meth:`Helm.run`: ``asyncio.create_subprocess_exec`` (helm
terminated when the awaiting task is cancelled), or, for the blocking twins of the offline verbs
(:data:`BLOCKING`), ``subprocess`` in the calling thread; stdout is returned and a failure turned
into our own exception hierarchy by :func:`~vineyard_helm.errors.from_helm_failure`.

Why not pyhelm3
---------------
The design named pyhelm3 (0.5.8) as the way to drive helm. Each of its calls was weighed against
what vineyard_helm has to do; none fits, so the package no longer depends on it:

- ``Command.template`` (for ``render``/``validate``): takes one values dict, sent on stdin; it
  cannot pass values files, ``--set``/``--set-string``/``--set-json``, ``--skip-tests``,
  ``--plain-http`` or ``--skip-schema-validation``, so helm could not be the one to merge and
  parse values. It parses helm's output with a pure-Python YAML loader: 19 ms for the default
  manifest, against 2.5 ms for ``yaml.safe_load_all`` with libyaml's C loader and 1.6 ms for
  :func:`load_manifest`; the 5% a ``render()`` may add to ``helm template`` is 2.7 ms.
- ``Command.install_or_upgrade`` / ``Client.install_or_upgrade_release`` (``install``,
  ``upgrade``): always ``helm upgrade --install``, so ``install`` could not refuse a name in use
  (ReleaseExistsError); values again one dict on stdin (``Client`` deep-merges several by
  concatenating lists, unlike helm); no ``--set`` family, no ``--plain-http``;
  ``disable_validation=True`` passes the flag split into characters.
- ``Command.uninstall`` / ``Client.uninstall_release``: no ``--cascade foreground``, without which
  ``--wait`` returns while the vineyardd and etcd pods are still terminating.
- ``Command.status``: no ``--show-resources``, without which Helm 3 reports no live objects
  (``status()`` reads every pod's readiness from them).
- ``Client()`` / ``Command.client_version`` (the Helm 3/4 flag differences): runs ``helm
  version`` through a shell in the constructor, raises a bare AssertionError for a missing
  binary and ValueError for a development build's version. :meth:`Helm.version` asks
  ``helm version --template`` once per :class:`Helm`.
- ``Command.run``, the subprocess core of all of the above: a ``/bin/sh -c`` around every helm
  run, stdin inherited when there is no input, and importing it imports the whole package with
  its pydantic models: 120 to 160 ms measured here, more than the whole budget of a cold
  ``vineyard-helm render`` (2 x ``helm template``, about 110 ms). :meth:`Helm.run` does the same
  job (exec, capture, terminate on cancellation) in twenty lines with no import cost.
- ``pyhelm3.errors``: chosen by substrings anywhere in stderr; a schema refusal and an
  unreachable cluster are both the base ``Error``, and there is no class for a name in use, a
  timed-out wait or a missing chart directory. errors.from_helm_failure reads helm's headline.
- Its handling of OCI output (``Pulled:``/``Digest:`` lines before the JSON of ``install -o
  json``) is one ``find`` in api._parse_json_output.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from contextvars import ContextVar

from .errors import HelmNotFoundError, VineyardHelmError, from_helm_failure

# Only what a cold `vineyard-helm render` needs is imported up front (no pathlib, dataclasses,
# typing or logging): it must stay within twice a bare `helm template`.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: When set (api's blocking twins of render and validate), :meth:`Helm.run` runs helm with
#: subprocess in the calling thread: no event loop, and no asyncio import (a fifth of a cold
#: `vineyard-helm render`).
BLOCKING: ContextVar[bool] = ContextVar("vineyard_helm.helm.BLOCKING", default=False)

#: Environment variable naming the helm binary (used when ``helm=`` is not given).
HELM_ENV_VAR = "VINEYARD_HELM_BINARY"
#: Logger of every helm command run (INFO) and failed (the CLI's ``-v`` shows it).
LOGGER = "vineyard_helm.helm"

#: Where a helm binary can come from, in the order they are tried (:func:`helm_candidates`).
FROM_ARGUMENT = "helm="
FROM_ENVIRONMENT = f"${HELM_ENV_VAR}"
FROM_BUNDLE = "bundled"
FROM_PATH = "PATH"


def helm_candidates(helm: str | os.PathLike[str] | None = None) -> list[tuple[str, str | None]]:
    """Where helm is looked for, in order, as ``(origin, candidate)``; the candidate is None
    where that place names nothing. The first one named is used (:func:`locate_helm`):

    1. ``helm=`` (the CLI's ``--helm``): a path, or a bare name looked up on PATH;
    2. ``$VINEYARD_HELM_BINARY``, likewise (``VINEYARD_HELM_BINARY=helm`` picks PATH's helm);
    3. the helm a platform wheel carries (vineyard_helm/_helm/);
    4. ``helm`` on PATH.

    The bundled helm comes before PATH's: it is the version this release of the chart and
    package was tested with, so an installation behaves the same whatever else is on PATH (a
    Helm 3.10 there would not run this chart's Helm 4 flags and templates alike). What a user's
    own helm brings besides its version is not lost: repositories, registry logins and plugins
    live in helm's config and data directories, which every helm binary reads. Whoever wants
    PATH's helm says so once, with ``VINEYARD_HELM_BINARY=helm``."""
    from .bundled import bundled_helm

    named = os.environ.get(HELM_ENV_VAR) or None
    return [
        (FROM_ARGUMENT, os.fspath(helm) if helm is not None else None),
        (FROM_ENVIRONMENT, named),
        (FROM_BUNDLE, bundled_helm()),
        (FROM_PATH, "helm"),
    ]


class HelmBinary:
    """The helm binary to run: its absolute ``path`` and the ``origin`` it was found by (one
    of the FROM_* names)."""

    __slots__ = ("origin", "path")

    def __init__(self, path: str, origin: str) -> None:
        self.path = path
        self.origin = origin

    def __repr__(self) -> str:
        return f"HelmBinary({self.path!r}, origin={self.origin!r})"


def locate_helm(helm: str | os.PathLike[str] | None = None) -> HelmBinary:
    """The helm binary to run and where it came from: the first of :func:`helm_candidates`
    that names one. A bare name is looked up on PATH; a path must be an executable file.
    Raises HelmNotFoundError naming the place it looked."""
    origin, candidate = next((o, c) for o, c in helm_candidates(helm) if c is not None)
    assert candidate is not None  # FROM_PATH always names "helm"
    return HelmBinary(check_candidate(candidate, origin), origin)


def check_candidate(candidate: str, origin: str) -> str:
    """Absolute path of the executable ``candidate`` names (a path, or a bare name on PATH);
    HelmNotFoundError, naming ``origin``, if there is none."""
    if os.sep in candidate or (os.altsep and os.altsep in candidate):
        path = os.path.expanduser(candidate)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return os.path.realpath(path)
        raise HelmNotFoundError(
            f"helm binary {candidate!r} (from {origin}) is not an executable file"
        )
    import shutil  # only for a bare name: shutil imports the compression modules

    found = shutil.which(candidate)
    if found is None:
        where = "on PATH" if origin == FROM_PATH else f"on PATH (named by {origin})"
        raise HelmNotFoundError(f"no {candidate!r} binary found {where}")
    return found


def resolve_helm(helm: str | os.PathLike[str] | None = None) -> str:
    """Absolute path of the helm binary: ``helm`` argument, then $VINEYARD_HELM_BINARY, then
    the bundled helm, then ``helm`` on PATH (:func:`helm_candidates` says why)."""
    return locate_helm(helm).path


class HelmVersion(tuple[int, int, int]):
    """(major, minor, patch), ordered like a tuple."""

    __slots__ = ()

    def __new__(cls, major: int, minor: int, patch: int) -> HelmVersion:
        return super().__new__(cls, (major, minor, patch))

    @property
    def major(self) -> int:
        return self[0]

    @classmethod
    def parse(cls, text: str) -> HelmVersion:
        import re

        match = re.search(r"v?(\d+)\.(\d+)(?:\.(\d+))?", text)
        if match is None:
            raise ValueError(f"not a helm version: {text!r}")
        return cls(int(match.group(1)), int(match.group(2)), int(match.group(3) or 0))

    def __str__(self) -> str:
        return ".".join(map(str, self))


def load_manifest(text: str) -> list[dict[str, Any]]:
    """The objects of helm's multi-document YAML output: what ``yaml.safe_load_all`` gives,
    in about 60% of its time.

    libyaml's C parser composes the nodes and resolves their tags; the plain maps, lists and
    strings that make up a manifest are then built here directly, and anything else (numbers,
    booleans, nulls, merge keys, non-string keys, other tags) by PyYAML's SafeConstructor.
    SafeConstructor alone builds every map and list through a generator, which is most of a
    ``render()``'s own time (the budget is 5% of ``helm template``)."""
    import yaml
    from yaml.nodes import MappingNode, ScalarNode, SequenceNode

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    built: dict[int, Any] = {}  # maps and lists by node id, within one document (anchors)

    def build(node: Any) -> Any:
        kind, tag = type(node), node.tag
        if kind is ScalarNode and tag == _STR:
            return node.value
        done = built.get(id(node))
        if done is not None:
            return done
        if kind is MappingNode and tag == _MAP:
            mapping: dict[Any, Any] = {}
            built[id(node)] = mapping
            for key, value in node.value:
                if type(key) is not ScalarNode or key.tag != _STR:
                    del built[id(node)]
                    return loader.construct_object(node, deep=True)
                mapping[key.value] = build(value)
            return mapping
        if kind is SequenceNode and tag == _SEQ:
            sequence: list[Any] = []
            built[id(node)] = sequence
            sequence.extend(build(item) for item in node.value)
            return sequence
        return loader.construct_object(node, deep=True)

    documents = []
    try:
        while loader.check_node():
            document = build(loader.get_node())
            built.clear()
            if isinstance(document, dict):
                documents.append(document)
    finally:
        loader.dispose()
    return documents


_STR, _MAP, _SEQ = ("tag:yaml.org,2002:" + name for name in ("str", "map", "seq"))


class _Shell:
    """A command line, quoted for a shell only if a log record is actually formatted."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv

    def __str__(self) -> str:
        import shlex

        return shlex.join(self.argv)


def _log(message: str, *args: object) -> None:
    """INFO on the vineyard_helm.helm logger. When nothing has imported logging, no handler
    can exist, so the record would go nowhere: skip importing it (the CLI's -v imports it)."""
    logging = sys.modules.get("logging")
    if logging is not None:
        logging.getLogger(LOGGER).info(message, *args)


class Helm:
    """One helm binary plus the cluster to talk to (kubeconfig file and context).

    Cheap to create; the version is asked once, on first need.
    """

    def __init__(
        self,
        *,
        helm: str | os.PathLike[str] | None = None,
        kubeconfig: str | os.PathLike[str] | None = None,
        context: str | None = None,
    ) -> None:
        binary = locate_helm(helm)
        self.executable = binary.path
        #: Where the binary was found (FROM_ARGUMENT, FROM_ENVIRONMENT, FROM_BUNDLE, FROM_PATH).
        self.origin = binary.origin
        self.kubeconfig = os.fspath(kubeconfig) if kubeconfig is not None else None
        self.context = context
        self._version: HelmVersion | None = None
        #: What ``helm version`` printed, once :meth:`version` has asked.
        self.version_text = ""

    def command(self, args: Sequence[Any]) -> list[str]:
        """The full command line of ``helm <args>``, cluster flags included."""
        argv = [self.executable, *map(str, args)]
        if self.kubeconfig:
            argv += ["--kubeconfig", self.kubeconfig]
        if self.context:
            argv += ["--kube-context", self.context]
        return argv

    async def run(self, args: Sequence[Any], input: bytes | None = None) -> bytes:
        """Run ``helm <args>`` (plus --kubeconfig/--kube-context) and return stdout; ``input``
        goes to helm's stdin. Raises the matching :class:`VineyardHelmError` subclass when helm
        fails. Cancelling the awaiting task terminates helm and waits for it to exit.

        Under :data:`BLOCKING` helm runs in the calling thread and this coroutine completes
        without ever suspending (api's blocking twins of the offline verbs drive it so)."""
        argv = self.command(args)
        _log("running command: %s", _Shell(argv))
        if BLOCKING.get():
            returncode, stdout, stderr = self._run_blocking(argv, input)
        else:
            returncode, stdout, stderr = await self._run_async(argv, input)
        if returncode != 0:
            _log("command failed (exit %s): %s", returncode, _Shell(argv))
            raise from_helm_failure(returncode, stderr.decode(errors="replace"), argv)
        return stdout

    def _run_blocking(self, argv: list[str], input: bytes | None) -> tuple[int, bytes, bytes]:
        import subprocess

        try:
            # helm never reads the caller's terminal: /dev/null when there is no input.
            process = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except OSError as error:
            raise HelmNotFoundError(f"cannot run {self.executable!r}: {error}") from None
        with process:
            try:
                stdout, stderr = process.communicate(input)
            except BaseException:  # Ctrl-C: helm is stopped too, as subprocess.run does
                process.kill()
                raise
        return process.returncode, stdout, stderr

    async def _run_async(self, argv: list[str], input: bytes | None) -> tuple[int, bytes, bytes]:
        import asyncio
        import contextlib

        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as error:
            raise HelmNotFoundError(f"cannot run {self.executable!r}: {error}") from None
        try:
            stdout, stderr = await process.communicate(input)
        except asyncio.CancelledError:
            # helm is told to stop and given the time to do so (it may be mid-install).
            with contextlib.suppress(ProcessLookupError):  # helm may have exited meanwhile
                process.terminate()
                await process.communicate()
            raise
        return process.returncode or 0, stdout, stderr

    async def version(self) -> HelmVersion:
        """helm's version (asked once)."""
        if self._version is None:
            try:
                text = (await self.run(["version", "--template", "{{ .Version }}"])).decode()
            except VineyardHelmError as error:
                raise HelmNotFoundError(
                    f"{self.executable!r} does not answer `helm version` ({error})"
                ) from None
            self.version_text = text.strip()
            try:
                self._version = HelmVersion.parse(text)
            except ValueError:
                raise HelmNotFoundError(
                    f"{self.executable!r} reports an unreadable version {text!r}"
                ) from None
        return self._version

    # Flags that differ between Helm 3 and Helm 4 --------------------------------------------

    async def rollback_on_failure_flag(self) -> str:
        """Helm 4 renamed --atomic to --rollback-on-failure."""
        return "--atomic" if (await self.version()).major < 4 else "--rollback-on-failure"

    async def status_args(self) -> list[str]:
        """Helm 3 only reports live resources with --show-resources; Helm 4 always does and
        rejects the flag."""
        return ["--show-resources"] if (await self.version()).major < 4 else []
