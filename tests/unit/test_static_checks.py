"""The linters, as part of the suite: `ruff check .` over the whole repository and `mypy` (strict,
the files pyproject.toml names), each must exit 0. `make check` runs them first on their own."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.paths import REPO


@pytest.mark.parametrize("argv", [["ruff", "check", "."], ["mypy"]], ids=["ruff", "mypy"])
def test_passes(argv: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, (
        f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
    )
