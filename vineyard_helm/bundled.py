"""Where the vineyard chart is.

The wheel carries the chart at ``vineyard_helm/chart/`` (hatch force-includes
``charts/vineyard/`` there at build time; nothing is committed twice). In a repo checkout or an
editable install that directory does not exist, and ``charts/vineyard/`` next to the package is
used instead.
"""

from __future__ import annotations

import os

from .errors import VineyardHelmError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

# os.path, not pathlib: `vineyard-helm --version` reads Chart.yaml and should not pay for
# importing pathlib.
_PACKAGE_DIR = os.path.dirname(os.path.realpath(__file__))
_CANDIDATES = (
    os.path.join(_PACKAGE_DIR, "chart"),
    os.path.join(os.path.dirname(_PACKAGE_DIR), "charts", "vineyard"),
)


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
