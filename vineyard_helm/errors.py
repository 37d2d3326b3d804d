"""One exception hierarchy for everything vineyard_helm raises.

:func:`from_helm_failure` turns a failed helm run into one of the classes below from the
headline of helm's stderr, keeping helm's return code and stderr. Bad values are found by helm
alone (values.schema.json, the ``--set`` syntax, unreadable files) and by the chart's own
checks (its ``fail``); both become one :class:`InvalidValuesError` listing every problem.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

HELM_INSTALL_HINT = (
    "install Helm 3.x or 4.x (https://helm.sh/docs/intro/install/), then put it on PATH, "
    "set VINEYARD_HELM_BINARY to its path, or pass helm=/path/to/helm"
)


class VineyardHelmError(Exception):
    """Base class of every error raised by vineyard_helm."""


class HelmNotFoundError(VineyardHelmError):
    """No usable helm binary: not on PATH, not executable, or it does not answer `helm version`."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"{detail}; {HELM_INSTALL_HINT}")
        self.detail = detail


class InvalidValuesError(VineyardHelmError, ValueError):
    """helm or the chart refused the values: values.schema.json (each problem as
    ``<dotted.path>: <message>``), the chart's own cross-field checks (each naming the values
    concerned), a values file helm cannot read or parse, or a ``--set`` it cannot parse.

    ``problems`` lists every problem.
    """

    def __init__(self, problems: Sequence[str], *, source: str = "values") -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        count = len(self.problems)
        heading = f"invalid {source}: {count} problem{'s' if count != 1 else ''}"
        super().__init__("\n  ".join([heading, *self.problems]))


class HelmError(VineyardHelmError):
    """helm ran and failed. Keeps the command, its return code and its stderr."""

    def __init__(
        self,
        message: str,
        *,
        returncode: int | None = None,
        stderr: str = "",
        command: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.stderr = stderr
        self.command: tuple[str, ...] = tuple(command)


class ClusterUnreachableError(HelmError):
    """The Kubernetes API server could not be reached (bad kubeconfig, context, or network)."""


class ReleaseExistsError(HelmError):
    """`install` of a release name that is already in use in that namespace."""


class ReleaseNotFoundError(HelmError):
    """The release does not exist in that namespace."""


class ChartNotFoundError(HelmError):
    """The chart reference (repo, OCI, directory or archive) or the pinned version was not found."""


class WaitTimeoutError(HelmError, TimeoutError):
    """Waiting for resources (helm --wait, or a deletion) did not finish before the deadline."""


# Patterns are plain strings, compiled on first use (re caches them): importing this module,
# which every CLI start does, compiles nothing.
_RELEASE_NOT_FOUND = (
    r"release: not found|release not loaded|not found: release|has no deployed releases"
)
_CHART_NOT_FOUND = (
    r"chart \"[^\"]*\" (version \"[^\"]*\" )?not found"
    r"|no chart (name|version) found"
    r"|path \"[^\"]*\" not found"
    r"|repo [^ ]+ not found"
    r"|failed to fetch .* : 404"
    r"|\b404\b.*not found"
    r"|could not find protocol handler"
    r"|not a valid chart repository"
    r"|file '.*' does not appear to be a gzipped archive"
    r"|chart.yaml file is missing"
    r"|invalid_reference"
    r"|non-absolute URLs should be in form of repo_name/path_to_chart"
)
_UNREACHABLE = (
    r"kubernetes cluster unreachable"
    r"|connect: connection refused"
    r"|dial tcp"
    r"|no such host"
    r"|i/o timeout"
    r"|tls: failed to verify certificate"
    r"|x509: certificate"
    r"|etcdserver"
    r"|the server has asked for the client to provide credentials"
    r"|context \"[^\"]*\" does not exist"
    r"|no configuration has been provided"
    r"|invalid configuration"
)
_TIMEOUT = (
    r"context deadline exceeded|timed out waiting for the condition|timed out waiting"
    r"|not ready\. status: "
    r"|resource not ready.*timeout|client rate limiter wait"
)
_SCHEMA = "values don't meet the specifications of the schema"
# Helm 3.18+ and Helm 4 list each problem as "- at '/socket/volume/type': value must be one of
# ...", nested under its parent ("- at '': 'allOf' failed") by two spaces; Helm 3 before 3.18 as
# "- socket.volume.type: socket.volume.type must be one of ...".
_SCHEMA_POINTER = r"^(?P<indent>\s*)-\s*at '(?P<pointer>[^']*)':\s*(?P<message>.*)$"
_SCHEMA_DOTTED = r"^(?P<indent>\s*)-\s*(?P<path>[^\s:][^:]*):\s*(?P<message>.*)$"
# A values file helm could not read or parse (a dict passed as values never fails here: it is
# written as JSON by vineyard_helm itself).
_VALUES_FILE = (
    r"^(?:open|read) (?P<path>.+?): (?P<reason>.+)$"
    r"|^failed to parse (?P<file>.+?): (?P<error>.+)$"
)
# A --set, --set-string or --set-json expression helm could not parse.
_SET_SYNTAX = r"^failed parsing (?P<flag>--set(?:-string|-json)?) data:?\s*(?P<detail>.*)$"
# What install and upgrade put before the reason.
_VERB_FAILED = r"^(?:INSTALLATION|UPGRADE) FAILED:\s*"


def _dotted(pointer: str) -> str:
    """``/socket/volume/type`` -> ``socket.volume.type``; list indexes as ``[0]``."""
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/") if p]
    path = ""
    for part in parts:
        path += f"[{part}]" if part.isdigit() else ("." if path else "") + part
    return path or "(root)"


def schema_problems(stderr: str) -> list[str]:
    """Every problem of helm's schema refusal as ``<dotted.path>: <message>``, sorted by path.

    Only the innermost problems are kept: a line whose next line is indented deeper only says
    that its children failed (``'allOf' failed``, ``validation failed``)."""
    entries: list[tuple[int, str, str]] = []
    for line in stderr.splitlines():
        if match := re.match(_SCHEMA_POINTER, line):
            path = _dotted(match["pointer"])
        elif match := re.match(_SCHEMA_DOTTED, line):
            path = match["path"].strip()
        else:
            continue
        entries.append((len(match["indent"]), path, match["message"].strip()))
    leaves = [
        f"{path}: {message}"
        for index, (indent, path, message) in enumerate(entries)
        if index + 1 == len(entries) or entries[index + 1][0] <= indent
    ]
    return sorted(leaves, key=lambda problem: problem.split(": ", 1)[0])


def headline(stderr: str) -> str:
    """The line of helm's stderr that says what failed.

    helm may print warnings first (for example about a group-readable kubeconfig), so this is
    the first line starting with ``Error:``, else the first non-empty line. The details after
    it are worded differently by Helm 3 and Helm 4, so only this line is matched on.
    """
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("Error:"):
            return line
    return lines[0] if lines else ""


def _details(stderr: str, headline_line: str) -> list[str]:
    """The non-empty lines after the headline, without helm's --debug advice."""
    lines = [text.strip() for text in stderr.splitlines()]
    try:
        start = lines.index(headline_line) + 1
    except ValueError:
        return []
    return [text for text in lines[start:] if text and not text.startswith("Use --debug flag")]


def from_helm_failure(
    returncode: int | None,
    stderr: str,
    command: Sequence[str] = (),
) -> VineyardHelmError:
    """Choose the exception for a failed helm run from the headline of its stderr."""
    line = headline(stderr)
    message = line.removeprefix("Error:").strip() or f"helm failed with exit code {returncode}"
    lowered = line.lower()
    if _SCHEMA in lowered:
        problems = schema_problems(stderr)
        return InvalidValuesError(problems or [message], source="values (rejected by helm)")
    reason = re.sub(_VERB_FAILED, "", message)
    if match := re.match(_VALUES_FILE, reason):
        problem = (
            f"{match['path']}: {match['reason']}"
            if match["path"]
            else f"{match['file']}: not a YAML map of values: {match['error']}"
        )
        return InvalidValuesError([problem], source="values file")
    if match := re.match(_SET_SYNTAX, reason):
        detail = match["detail"] or "cannot be parsed"
        return InvalidValuesError([f"{match['flag']}: {detail}"], source=match["flag"])
    if "execution error at" in lowered:
        # The chart's own checks (`fail`, `required`) rejected the values while rendering,
        # before anything reached the cluster. The reasons follow the headline.
        details = _details(stderr, line)
        bullets = [d[1:].strip() for d in details if d.startswith("-")]
        reasons = bullets or [d for d in details if not d.endswith(":")] or [message]
        return InvalidValuesError(reasons, source="values (rejected by the chart)")
    if message.endswith(":"):
        message = " ".join([message, *_details(stderr, line)])
    kind: type[HelmError] = HelmError
    if re.search(r"cannot re-?use a name that is still in use", lowered):
        kind = ReleaseExistsError
    elif re.search(_RELEASE_NOT_FOUND, lowered) or lowered.endswith("release: not found"):
        kind = ReleaseNotFoundError
    elif re.search(_UNREACHABLE, lowered):
        kind = ClusterUnreachableError
    elif re.search(_TIMEOUT, lowered):
        kind = WaitTimeoutError
    elif re.search(_CHART_NOT_FOUND, lowered):
        kind = ChartNotFoundError
    return kind(message, returncode=returncode, stderr=stderr, command=command)
