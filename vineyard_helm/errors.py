"""One exception hierarchy for everything vineyard_helm raises.

pyhelm3 raises its own classes (and a bare ``AssertionError`` when helm is missing); those never
leave this package: :func:`from_helm_failure` turns a failed helm run into one of the classes
below, keeping helm's return code and stderr.
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
    """The values do not satisfy the chart's values.schema.json (or cannot be read/parsed).

    ``problems`` lists every problem, each as ``<dotted.path>: <message>``.
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


_RELEASE_NOT_FOUND = re.compile(
    r"release: not found|release not loaded|not found: release|has no deployed releases"
)
_CHART_NOT_FOUND = re.compile(
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
_UNREACHABLE = re.compile(
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
_TIMEOUT = re.compile(
    r"context deadline exceeded|timed out waiting for the condition|timed out waiting"
    r"|not ready\. status: "
    r"|resource not ready.*timeout|client rate limiter wait"
)
_SCHEMA = "values don't meet the specifications of the schema"


# Helm 3.18+ and Helm 4: "- at '/socket/volume/type': value must be one of ..."
_SCHEMA_LINE = re.compile(r"^\s*-\s*at '(?P<pointer>[^']*)':\s*(?P<message>.*)$")


def _schema_problem(line: str) -> str:
    match = _SCHEMA_LINE.match(line)
    assert match is not None
    parts = [p.replace("~1", "/").replace("~0", "~") for p in match["pointer"].split("/") if p]
    path = ""
    for part in parts:
        path += f"[{part}]" if part.isdigit() else ("." if path else "") + part
    return f"{path or '(root)'}: {match['message']}"


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
        problems = sorted(
            _schema_problem(text) for text in stderr.splitlines() if _SCHEMA_LINE.match(text)
        )
        return InvalidValuesError(problems or [message], source="values (rejected by helm)")
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
    elif _RELEASE_NOT_FOUND.search(lowered) or lowered.endswith("release: not found"):
        kind = ReleaseNotFoundError
    elif _UNREACHABLE.search(lowered):
        kind = ClusterUnreachableError
    elif _TIMEOUT.search(lowered):
        kind = WaitTimeoutError
    elif _CHART_NOT_FOUND.search(lowered):
        kind = ChartNotFoundError
    return kind(message, returncode=returncode, stderr=stderr, command=command)
