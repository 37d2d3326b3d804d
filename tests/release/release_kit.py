"""What the release tests share besides fixtures (tests/release/conftest.py has those): paths,
subprocess and polling helpers, the throwaway GPG key, the static site and registry servers and
the published release's record. Paths, helm and waiting are tests/support's.
"""
from __future__ import annotations

import functools
import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import yaml

from localcluster import wait_until
from tests.support.helm import HELM
from tests.support.paths import BIN, CHART, REPO

REGISTRY = BIN / "registry"
CRANE = BIN / "crane"
PREVIOUS_VERSION = "0.0.9"
KEY_NAME = "vineyard-helm release test"

def release_cmd(*args: object, platforms: str = "none", images: str = "none") -> list[object]:
    """hack/release.py as the tests run it: from this (possibly uncommitted) checkout, the
    wheels built with the venv's pinned hatchling. Only the `published` release builds a wheel
    carrying helm, this machine's (platforms="host"): the other runs check other things, and
    cross-compiling helm for every platform is the real release's job (minutes of 2 cores).
    Likewise only the runs about the exporter image build it (images="all")."""
    return [sys.executable, REPO / "hack" / "release.py", *args, "--no-isolation",
            "--allow-dirty", "--platforms", platforms, "--images", images]


def exporter_image() -> str:
    """Chart.yaml's exporter image (artifacthub.io/images): REGISTRY/PATH/vineyard-exporter:X."""
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    listed = yaml.safe_load(meta["annotations"]["artifacthub.io/images"])
    (ref,) = [entry["image"] for entry in listed if entry["name"] == "exporter"]
    return str(ref)


def public_path() -> str:
    """The registry path the chart's exporter image names (ghcr.io/...): the loopback registry
    stands in for it (`--oci-name`), as the chart's own default points there."""
    return exporter_image().rsplit("/", 1)[0]


def python_dist(dist: Path) -> tuple[Path, list[Path]]:
    """The pure wheel and the platform wheels hack/release.py wrote into dist/python."""
    wheels = sorted((dist / "python").glob("*.whl"))
    pure = [w for w in wheels if w.name.endswith("-py3-none-any.whl")]
    assert len(pure) == 1, wheels
    return pure[0], [w for w in wheels if w not in pure]


def chart_version() -> str:
    return str(yaml.safe_load((CHART / "Chart.yaml").read_text())["version"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(argv: list[str], env: dict[str, str], *, check: bool = True,
        timeout: float = 300, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env,
                            timeout=timeout, cwd=cwd)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))} failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


# ---- GPG ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    name: str
    home: Path
    secring: Path   # legacy secret keyring, what `helm package --sign --keyring` reads
    pubring: Path   # binary public keyring, what `helm verify --keyring` reads
    armored: str    # the ASCII-armored secret key, as a CI secret holds it


def make_key(home: Path, name: str) -> Key:
    """A throwaway RSA key without passphrase in its own GNUPGHOME (the caller stops that
    home's gpg-agent with stop_gpg_agent)."""
    home.mkdir(mode=0o700, parents=True)
    gpg = ["gpg", "--batch", "--quiet", "--homedir", str(home)]
    subprocess.run([*gpg, "--pinentry-mode", "loopback", "--passphrase", "",
                    "--quick-gen-key", f"{name} <release-test@example.invalid>", "rsa2048",
                    "sign", "never"], check=True, capture_output=True)
    secring, pubring = home / "secring.gpg", home / "pubring-export.gpg"
    secring.write_bytes(subprocess.run([*gpg, "--export-secret-keys", name], check=True,
                                       capture_output=True).stdout)
    pubring.write_bytes(subprocess.run([*gpg, "--export", name], check=True,
                                       capture_output=True).stdout)
    armored = subprocess.run([*gpg, "--armor", "--export-secret-keys", name], check=True,
                             capture_output=True, text=True).stdout
    return Key(name, home, secring, pubring, armored)


def stop_gpg_agent(home: Path) -> None:
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True,
                   check=False)


# ---- servers --------------------------------------------------------------------------------


class StaticSite:
    """A directory served over HTTP on 127.0.0.1 (a thread in this process), as a static host
    such as GitHub Pages would serve the published chart repository."""

    def __init__(self, root: Path):
        self.root = root
        handler = functools.partial(_QuietHandler, directory=str(root))
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class Registry:
    host: str                  # 127.0.0.1:PORT
    plain_http: bool
    ca_file: Path | None       # the self-signed certificate clients must trust (TLS only)
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def charts(self) -> str:
        return f"oci://{self.host}/charts"

    def flags(self) -> list[str]:
        return ["--plain-http"] if self.plain_http else ["--ca-file", str(self.ca_file)]


def start_registry(workdir: Path, *, tls: bool) -> Registry:
    workdir.mkdir(parents=True)
    cert = key = None
    if tls:
        cert, key = workdir / "cert.pem", workdir / "key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    for _attempt in range(3):  # a port picked free may be taken before the registry binds it
        port = free_port()
        config = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(workdir / "storage")},
                        "delete": {"enabled": True}},
            "http": {"addr": f"127.0.0.1:{port}", "secret": "release-tests-only",
                     **({"tls": {"certificate": str(cert), "key": str(key)}} if tls else {})},
        }
        (workdir / "config.yml").write_text(yaml.safe_dump(config))
        log = workdir / f"registry-{port}.log"
        # No telemetry leaves the machine: the registry's OpenTelemetry exporter is off.
        env = {**os.environ, "OTEL_TRACES_EXPORTER": "none", "OTEL_SDK_DISABLED": "true"}
        with log.open("wb") as out:
            process = subprocess.Popen([str(REGISTRY), "serve", str(workdir / "config.yml")],
                                       stdout=out, stderr=subprocess.STDOUT, env=env)
        registry = Registry(f"127.0.0.1:{port}", not tls, cert, process, log)
        if _wait_serving(registry):
            return registry
        stop_process(process)
    raise AssertionError(f"registry did not start; log:\n{log.read_text()}")


def _wait_serving(registry: Registry, timeout: float = 15) -> bool:
    """True once the registry answers /v2/; False if it exits first (e.g. port taken)."""
    exited_or_answers = wait_until(
        lambda: registry.process.poll() is not None or _answers(registry), timeout)
    return exited_or_answers and registry.process.poll() is None


def _answers(registry: Registry) -> bool:
    import ssl
    import urllib.request

    scheme = "http" if registry.plain_http else "https"
    ctx = None if registry.plain_http else ssl.create_default_context(cafile=str(registry.ca_file))
    try:
        with urllib.request.urlopen(f"{scheme}://{registry.host}/v2/", timeout=1,
                                    context=ctx) as resp:
            return resp.status == 200
    except OSError:
        return False


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Stops one process this suite started, by its PID."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ---- the release ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Published:
    version: str
    dist: Path
    site: Path          # the published HTTP repository (earlier release + this one)
    url: str            # where `site` is served
    registry: Registry  # where the release pushed the chart
    seconds: float      # wall time of hack/release.py
    stdout: str


def previous_release(site: Path, key: Key, helm_env: dict[str, str], tmp: Path) -> None:
    """An earlier release already published at `site`: vineyard PREVIOUS_VERSION, signed."""
    chart = tmp / "vineyard"
    shutil.copytree(CHART, chart)
    meta = chart / "Chart.yaml"
    meta.write_text(meta.read_text().replace(f"version: {chart_version()}\n",
                                             f"version: {PREVIOUS_VERSION}\n", 1))
    site.mkdir(parents=True)
    run([HELM, "package", chart, "--destination", site, "--sign", "--key", key.name,
         "--keyring", key.secring], helm_env)
    run([HELM, "repo", "index", site], helm_env)
