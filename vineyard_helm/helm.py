"""The helm binary: finding it, its major version, and running it through pyhelm3.

Every helm invocation goes through :meth:`Helm.run`, which uses pyhelm3's ``Command.run``
(subprocess handling, termination of helm on cancellation) and turns any failure into our own
exception hierarchy. pyhelm3 is imported lazily: it pulls in pydantic, which would make
``import vineyard_helm`` slow.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import HelmNotFoundError, from_helm_failure

if TYPE_CHECKING:
    import pyhelm3

#: Environment variable naming the helm binary (used when ``helm=`` is not given).
HELM_ENV_VAR = "VINEYARD_HELM_BINARY"


def resolve_helm(helm: str | os.PathLike[str] | None = None) -> str:
    """Absolute path of the helm binary: ``helm`` argument, then $VINEYARD_HELM_BINARY, then
    ``helm`` on PATH. A bare name is looked up on PATH; a path must be an executable file."""
    import shutil  # lazily: shutil imports the compression modules

    if helm is not None:
        candidate, origin = os.fspath(helm), "helm="
    elif os.environ.get(HELM_ENV_VAR):
        candidate, origin = os.environ[HELM_ENV_VAR], f"${HELM_ENV_VAR}"
    else:
        candidate, origin = "helm", "PATH"
    if os.sep in candidate or (os.altsep and os.altsep in candidate):
        path = Path(candidate).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return str(path.resolve())
        raise HelmNotFoundError(
            f"helm binary {candidate!r} (from {origin}) is not an executable file"
        )
    found = shutil.which(candidate)
    if found is None:
        where = "on PATH" if origin == "PATH" else f"on PATH (named by {origin})"
        raise HelmNotFoundError(f"no {candidate!r} binary found {where}")
    return found


@dataclass(frozen=True, order=True)
class HelmVersion:
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> HelmVersion:
        match = re.search(r"v?(\d+)\.(\d+)(?:\.(\d+))?", text)
        if match is None:
            raise ValueError(f"not a helm version: {text!r}")
        return cls(int(match.group(1)), int(match.group(2)), int(match.group(3) or 0))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


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
        self.executable = resolve_helm(helm)
        self.kubeconfig = os.fspath(kubeconfig) if kubeconfig is not None else None
        self.context = context
        self._command: pyhelm3.Command | None = None
        self._version: HelmVersion | None = None

    def _pyhelm3_command(self) -> pyhelm3.Command:
        if self._command is None:
            import logging

            import pyhelm3

            # pyhelm3 logs each failed command as a warning before we raise our own error;
            # without a handler Python would print it to stderr as well. Applications that
            # configure logging still receive the records (they propagate to the root).
            pyhelm3_logger = logging.getLogger("pyhelm3")
            if not pyhelm3_logger.handlers:
                pyhelm3_logger.addHandler(logging.NullHandler())

            self._command = pyhelm3.Command(
                executable=self.executable,
                kubeconfig=Path(self.kubeconfig) if self.kubeconfig else None,
                kubecontext=self.context,
            )
        return self._command

    def _client_version(self) -> HelmVersion:
        import subprocess

        import pyhelm3

        try:
            # pyhelm3.Client runs `helm version` synchronously and asserts the binary exists.
            client = pyhelm3.Client(command=self._pyhelm3_command(), executable=self.executable)
            return HelmVersion(client.version.major, client.version.minor, client.version.patch)
        except AssertionError:
            raise HelmNotFoundError(f"helm binary {self.executable!r} not found") from None
        except (subprocess.CalledProcessError, OSError) as error:
            raise HelmNotFoundError(
                f"{self.executable!r} does not answer `helm version` ({error})"
            ) from None
        except ValueError:
            # A version semver cannot parse (e.g. a development build): read it ourselves.
            completed = subprocess.run(
                [self.executable, "version", "--template", "{{ .Version }}"],
                capture_output=True,
                text=True,
                check=False,
            )
            try:
                return HelmVersion.parse(completed.stdout)
            except ValueError:
                raise HelmNotFoundError(
                    f"{self.executable!r} reports an unreadable version {completed.stdout!r}"
                ) from None

    async def version(self) -> HelmVersion:
        import asyncio

        if self._version is None:
            self._version = await asyncio.to_thread(self._client_version)
        return self._version

    async def run(self, args: Sequence[Any], input: bytes | None = None) -> bytes:
        """Run ``helm <args>`` (plus --kubeconfig/--kube-context) and return stdout.

        Raises the matching :class:`VineyardHelmError` subclass when helm fails."""
        import pyhelm3

        command = self._pyhelm3_command()
        try:
            stdout: bytes = await command.run([str(arg) for arg in args], input)
            return stdout
        except pyhelm3.errors.Error as error:
            stderr = error.stderr.decode(errors="replace")
            raise from_helm_failure(
                error.returncode, stderr, [self.executable, *map(str, args)]
            ) from None
        except OSError as error:
            raise HelmNotFoundError(f"cannot run {self.executable!r}: {error}") from None

    # Flags that differ between Helm 3 and Helm 4 --------------------------------------------

    async def rollback_on_failure_flag(self) -> str:
        """Helm 4 renamed --atomic to --rollback-on-failure."""
        return "--atomic" if (await self.version()).major < 4 else "--rollback-on-failure"

    async def status_args(self) -> list[str]:
        """Helm 3 only reports live resources with --show-resources; Helm 4 always does and
        rejects the flag."""
        return ["--show-resources"] if (await self.version()).major < 4 else []
