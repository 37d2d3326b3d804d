"""What a wheel carries beside the code: the vineyard chart, and in a platform wheel a helm.

The wheel carries the chart at ``vineyard_helm/chart/`` (hatch force-includes
``charts/vineyard/`` there at build time; nothing is committed twice). In a repo checkout or an
editable install that directory does not exist, and ``charts/vineyard/`` next to the package is
used instead.

A platform wheel (hatch_build.py, built by hack/release.py) also carries helm in
``vineyard_helm/_helm/``: the binary (``helm``, ``helm.exe`` on Windows), helm's LICENSE and
``bundle.json``, which records the binary's version, sha256, platform and build flags. The pure
``py3-none-any`` wheel, the sdist and a checkout have no such directory.
"""

from __future__ import annotations

import os

from .errors import VineyardHelmError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

# os.path, not pathlib: `vineyard-helm --version` reads Chart.yaml and should not pay for
# importing pathlib.
_PACKAGE_DIR = os.path.dirname(os.path.realpath(__file__))
_CANDIDATES = (
    os.path.join(_PACKAGE_DIR, "chart"),
    os.path.join(os.path.dirname(_PACKAGE_DIR), "charts", "vineyard"),
)


#: Where a platform wheel puts helm, its LICENSE and bundle.json.
BUNDLED_HELM_DIR = os.path.join(_PACKAGE_DIR, "_helm")
#: The record of the bundled binary (also in the wheel's .dist-info/extra_metadata/).
BUNDLE_RECORD = "bundle.json"


def bundled_helm() -> str | None:
    """Path of the helm binary this installation carries, or None (pure wheel, checkout)."""
    path = os.path.join(BUNDLED_HELM_DIR, "helm.exe" if os.name == "nt" else "helm")
    return path if os.path.isfile(path) else None


def bundled_helm_record() -> dict[str, Any] | None:
    """bundle.json of the bundled helm (``version``, ``sha256``, ``goos``, ``goarch``,
    ``go``, ``ldflags``, ``licenses``...), or None when this installation carries no helm."""
    try:
        with open(os.path.join(BUNDLED_HELM_DIR, BUNDLE_RECORD), encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    import json

    record: dict[str, Any] = json.loads(text)
    return record


def chart_directory() -> str:
    """chart_path() as a string (without importing pathlib)."""
    for candidate in _CANDIDATES:
        if os.path.isfile(os.path.join(candidate, "Chart.yaml")):
            return candidate
    raise VineyardHelmError(
        "the vineyard chart is not bundled with this installation (looked in "
        + ", ".join(_CANDIDATES)
        + "); pass chart= a directory, .tgz, repo or OCI reference"
    )


def chart_path() -> Path:
    """Directory of the chart bundled with this package (or of the repo checkout)."""
    from pathlib import Path

    return Path(chart_directory())


def chart_version(chart: str | os.PathLike[str] | None = None) -> str:
    """The ``version:`` of Chart.yaml: the single version of this project."""
    import re

    directory = os.fspath(chart) if chart is not None else chart_directory()
    with open(os.path.join(directory, "Chart.yaml"), encoding="utf-8") as handle:
        text = handle.read()
    match = re.search(r"(?m)^version: *[\"']?(?P<version>[^\s\"']+)", text)
    return match.group("version") if match else "0+unknown"
