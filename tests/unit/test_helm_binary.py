"""Which helm runs: helm=, then $VINEYARD_HELM_BINARY, then PATH; Helm 3/4 flag differences."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from vineyard_helm import HELM_ENV_VAR, HelmNotFoundError
from vineyard_helm.helm import Helm, HelmVersion, resolve_helm


def test_argument_wins_over_environment_and_path(
    monkeypatch: pytest.MonkeyPatch, on_path_helm: str, helm4: str, tmp_path: Path
) -> None:
    monkeypatch.setenv(HELM_ENV_VAR, str(tmp_path / "not-this-one"))
    assert resolve_helm(helm4) == os.path.realpath(helm4)


def test_environment_wins_over_path(
    monkeypatch: pytest.MonkeyPatch, on_path_helm: str, helm4: str
) -> None:
    monkeypatch.setenv(HELM_ENV_VAR, helm4)
    assert resolve_helm() == os.path.realpath(helm4)


def test_path_is_the_fallback(on_path_helm: str) -> None:
    assert os.path.realpath(resolve_helm()) == os.path.realpath(on_path_helm)


def test_a_bare_name_is_looked_up_on_path(on_path_helm: str) -> None:
    assert os.path.realpath(resolve_helm("helm")) == os.path.realpath(on_path_helm)


def test_nothing_found_says_where_it_looked_and_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv(HELM_ENV_VAR, raising=False)
    with pytest.raises(HelmNotFoundError, match="on PATH") as caught:
        resolve_helm()
    assert HELM_ENV_VAR in str(caught.value)
    monkeypatch.setenv(HELM_ENV_VAR, str(tmp_path / "helm"))
    with pytest.raises(HelmNotFoundError, match=rf"\${HELM_ENV_VAR}"):
        resolve_helm()


def test_a_non_executable_file_is_not_helm(tmp_path: Path) -> None:
    fake = tmp_path / "helm"
    fake.write_text("not a program")
    with pytest.raises(HelmNotFoundError, match="not an executable"):
        resolve_helm(fake)


def test_a_binary_that_is_not_helm_is_reported(tmp_path: Path) -> None:
    fake = tmp_path / "helm"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(HelmNotFoundError, match="does not answer"):
        asyncio.run(Helm(helm=fake).version())


def test_cancelling_the_caller_terminates_helm(tmp_path: Path) -> None:
    """A cancelled install (Ctrl-C in a notebook, a timeout around it) does not leave helm
    running: it is terminated and waited for."""
    pid_file = tmp_path / "pid"
    fake = tmp_path / "helm"
    fake.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 60\n")
    fake.chmod(0o755)

    async def cancelled() -> None:
        task = asyncio.ensure_future(Helm(helm=fake).run(["install"]))
        while not pid_file.exists() or not pid_file.read_text().strip():
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(asyncio.wait_for(cancelled(), timeout=30))
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_helm_gets_no_terminal_stdin(tmp_path: Path) -> None:
    """Without values on stdin helm reads /dev/null, never the caller's terminal."""
    fake = tmp_path / "helm"
    fake.write_text("#!/bin/sh\ncat\necho done\n")
    fake.chmod(0o755)
    assert asyncio.run(Helm(helm=fake).run(["template"])) == b"done\n"
    assert asyncio.run(Helm(helm=fake).run(["template"], b"a: 1\n")) == b"a: 1\ndone\n"


@pytest.mark.parametrize(
    ("text", "version"),
    [("v3.22.0", (3, 22, 0)), ("v4.3", (4, 3, 0)), ("v4.1.4+g1234", (4, 1, 4))],
)
def test_versions_are_read_like_helm_prints_them(text: str, version: tuple[int, int, int]) -> None:
    assert HelmVersion.parse(text) == HelmVersion(*version)


def test_flags_follow_the_helm_major_version(helm: str) -> None:
    runner = Helm(helm=helm)
    version = asyncio.run(runner.version())
    rollback = asyncio.run(runner.rollback_on_failure_flag())
    status_args = asyncio.run(runner.status_args())
    if version.major >= 4:
        assert (rollback, status_args) == ("--rollback-on-failure", [])
    else:
        assert (rollback, status_args) == ("--atomic", ["--show-resources"])


def test_each_version_specific_flag_is_accepted_by_that_helm(helm: str) -> None:
    """`helm <verb> --help` lists the flags we pass to that major version."""
    import subprocess

    runner = Helm(helm=helm)
    rollback = asyncio.run(runner.rollback_on_failure_flag())
    install_help = subprocess.run(
        [helm, "install", "--help"], capture_output=True, text=True
    ).stdout
    upgrade_help = subprocess.run(
        [helm, "upgrade", "--help"], capture_output=True, text=True
    ).stdout
    status_help = subprocess.run([helm, "status", "--help"], capture_output=True, text=True).stdout
    for text in (install_help, upgrade_help):
        for flag in (rollback, "--wait", "--wait-for-jobs", "--create-namespace", "--timeout"):
            assert flag in text
    for flag in asyncio.run(runner.status_args()):
        assert flag in status_help
    uninstall_help = subprocess.run(
        [helm, "uninstall", "--help"], capture_output=True, text=True
    ).stdout
    for flag in ("--wait", "--cascade", "--timeout"):
        assert flag in uninstall_help
