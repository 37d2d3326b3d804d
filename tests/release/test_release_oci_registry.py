"""The chart in a real OCI registry (distribution, on 127.0.0.1): pushed with its provenance by
the release command, pulled and verified, and installed into the local cluster by helm and by
vineyard_helm; the exporter image pushed next to it, under the chart's version."""
from __future__ import annotations

import hashlib
import json
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

import vineyard_helm
from tests.release.release_kit import (
    CRANE,
    Published,
    Registry,
    exporter_image,
    public_path,
    release_cmd,
    run,
)
from tests.support.helm import HELM
from tests.support.kube import wait_daemonset_settled
from tests.support.wait import wait_for

# Generous: the first install on a freshly started cluster waits for kwok to start the pods.
INSTALL_TIMEOUT = "180s"


def test_release_pushed_the_chart_and_its_provenance(
        published: Published, helm_env: dict[str, str], tmp_path: Path) -> None:
    ref = f"{published.registry.charts}/vineyard"
    out = run([HELM, "pull", ref, "--version", published.version, "--plain-http", "--verify",
               "--keyring", published.site / "vineyard-helm.gpg", "--destination", tmp_path],
              helm_env)
    assert "Signed by: vineyard-helm release test" in out.stdout + out.stderr
    pulled = tmp_path / f"vineyard-{published.version}.tgz"
    # The registry serves exactly the package the HTTP repository serves.
    assert pulled.read_bytes() == (published.site / pulled.name).read_bytes()


def test_registry_lists_the_released_version(published: Published,
                                             helm_env: dict[str, str]) -> None:
    shown = run([HELM, "show", "chart", f"{published.registry.charts}/vineyard",
                 "--version", published.version, "--plain-http"], helm_env).stdout
    meta = yaml.safe_load(shown)
    assert (meta["name"], meta["version"]) == ("vineyard", published.version)


def test_helm_installs_from_the_oci_registry_into_the_cluster(
        published: Published, cluster, namespace: str, helm_env: dict[str, str]) -> None:
    env = {**helm_env, "KUBECONFIG": str(cluster.kubeconfig)}
    ref = f"oci://{published.registry.host}/charts/vineyard"
    start = time.monotonic()
    run([HELM, "install", "vineyard", ref, "--version", published.version, "--plain-http",
         "--verify", "--keyring", published.site / "vineyard-helm.gpg",
         "--namespace", namespace, "--wait", "--timeout", INSTALL_TIMEOUT], env, timeout=300)
    seconds = time.monotonic() - start
    print(f"helm install from OCI, --wait: {seconds:.1f}s")
    wait_daemonset_settled(cluster, namespace, "vineyard")
    listed = yaml.safe_load(run([HELM, "list", "-n", namespace, "-o", "yaml"], env).stdout)
    assert [(r["name"], r["chart"]) for r in listed] == [("vineyard",
                                                         f"vineyard-{published.version}")]


@pytest.fixture(scope="module")
def tls_pushed(published: Published, tls_registry: Registry, helm_env: dict[str, str]) -> str:
    """The released package pushed to the TLS registry; returns its oci:// reference."""
    package = published.dist / "repo" / f"vineyard-{published.version}.tgz"
    run([HELM, "push", package, tls_registry.charts, *tls_registry.flags()], helm_env)
    return f"{tls_registry.charts}/vineyard"


def test_vineyard_helm_installs_from_an_oci_registry(
        published: Published, tls_registry: Registry, tls_pushed: str, cluster,
        namespace: str, helm_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    # A TLS registry with a private CA: trusted the way Go programs such as helm trust one,
    # through SSL_CERT_FILE (the plain-HTTP registry is the next test's, with plain_http=True).
    for key in ("HELM_CONFIG_HOME", "HELM_CACHE_HOME", "HELM_DATA_HOME"):
        monkeypatch.setenv(key, helm_env[key])
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_registry.ca_file))
    start = time.monotonic()
    release = vineyard_helm.install(release="vineyard", namespace=namespace, chart=tls_pushed,
                                    version=published.version, kubeconfig=cluster.kubeconfig,
                                    helm=HELM, timeout=INSTALL_TIMEOUT)
    print(f"vineyard_helm.install from OCI (TLS), wait: {time.monotonic() - start:.1f}s")
    assert (release.chart, release.chart_version) == ("vineyard", published.version)
    assert release.status == "deployed"
    # Other tests add and remove nodes on the shared cluster: await readiness, don't sample it.
    wait_for(lambda: vineyard_helm.status(release="vineyard", namespace=namespace,
                                          kubeconfig=cluster.kubeconfig, helm=HELM).ready,
             "vineyard_helm.status(...).ready", timeout=60, interval=0.5)


def test_vineyard_helm_installs_from_a_plain_http_registry(
        published: Published, cluster, namespace: str, helm_env: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("HELM_CONFIG_HOME", "HELM_CACHE_HOME", "HELM_DATA_HOME"):
        monkeypatch.setenv(key, helm_env[key])
    release = vineyard_helm.install(
        release="vineyard", namespace=namespace, chart=f"{published.registry.charts}/vineyard",
        version=published.version, kubeconfig=cluster.kubeconfig, helm=HELM,
        timeout=INSTALL_TIMEOUT, plain_http=True)
    assert release.chart_version == published.version
    assert release.status == "deployed"


def test_plain_http_registry_is_refused_without_the_flag(
        published: Published, helm_env: dict[str, str], tmp_path: Path) -> None:
    # Why --plain-http is needed at all: helm speaks HTTPS to every registry, loopback too.
    result = run([HELM, "pull", f"{published.registry.charts}/vineyard", "--version",
                  published.version, "--destination", tmp_path], helm_env, check=False)
    assert result.returncode != 0
    assert "http: server gave HTTP response to HTTPS client" in result.stderr, result.stderr



def test_release_refuses_a_version_already_in_the_registry(
        published: Published, helm_env: dict[str, str], signing_key, tmp_path: Path) -> None:
    # A registry overwrites a tag without a word; the release command must not.
    env = {**helm_env, "VINEYARD_RELEASE_KEY": signing_key.name,
           "VINEYARD_RELEASE_KEYRING": str(signing_key.secring)}
    result = run(release_cmd("--dist", tmp_path / "dist", "--oci", published.registry.charts,
                             "--oci-name", public_path(), "--plain-http"), env, check=False)
    assert result.returncode == 1
    assert f"vineyard {published.version} is already in {published.registry.charts}/vineyard" \
        in result.stderr, result.stderr
    assert not list((tmp_path / "dist").rglob("*.tgz"))


# ---- the exporter image ----------------------------------------------------------------------


def _get(registry: Registry, path: str) -> tuple[bytes, str]:
    """GET /v2/<path> from the plain-HTTP registry, as any client pulls: (body, its digest)."""
    request = urllib.request.Request(
        f"http://{registry.host}/v2/{path}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return resp.read(), resp.headers.get("Docker-Content-Digest", "")


def test_release_pushed_the_exporter_image_next_to_the_chart(published: Published) -> None:
    v = published.version
    manifest, served = _get(published.registry, f"charts/vineyard-exporter/manifests/{v}")
    digest = f"sha256:{hashlib.sha256(manifest).hexdigest()}"
    assert served == digest
    sums = (published.dist / "SHA256SUMS").read_text().splitlines()
    assert f"{digest[7:]}  images/vineyard-exporter-{v}.manifest.json" in sums
    assert f"{published.registry.host}/charts/vineyard-exporter:{v}@{digest}" in published.stdout
    config, _ = _get(published.registry,
                     f"charts/vineyard-exporter/blobs/{json.loads(manifest)['config']['digest']}")
    assert json.loads(config)["config"]["Entrypoint"] == ["/usr/local/bin/vineyard-exporter"]


def test_release_refuses_another_image_under_the_exporter_tag(
        published: Published, helm_env: dict[str, str], signing_key, tmp_path: Path) -> None:
    # Another image already tagged with this version where the release would push its own
    # (the chart is not there yet: the refusal is the image's, not the chart version's).
    v, host = published.version, published.registry.host
    theirs = f"{host}/elsewhere/vineyard-exporter:{v}"
    run([CRANE, "mutate", "--insecure", "--label", "not=this-release", "--tag", theirs,
         f"{host}/charts/vineyard-exporter:{v}"], helm_env)
    before = run([CRANE, "digest", "--insecure", theirs], helm_env).stdout.strip()
    env = {**helm_env, "VINEYARD_RELEASE_KEY": signing_key.name,
           "VINEYARD_RELEASE_KEYRING": str(signing_key.secring)}
    start = time.monotonic()
    result = run(release_cmd("--dist", tmp_path / "dist", "--oci", f"oci://{host}/elsewhere",
                             "--oci-name", public_path(), "--plain-http", images="all"),
                 env, check=False)
    print(f"refused in {time.monotonic() - start:.1f}s")
    assert result.returncode == 1
    assert f"{theirs} is already in the registry as {before}, not this release's sha256:" \
        in result.stderr, result.stderr
    assert run([CRANE, "digest", "--insecure", theirs], helm_env).stdout.strip() == before
    assert not list((tmp_path / "dist").rglob("*.tgz"))


def test_release_refuses_a_chart_naming_another_exporter_image(
        registry: Registry, helm_env: dict[str, str], tmp_path: Path) -> None:
    # Pushed to the loopback registry under its own name, the image would not be the one
    # Chart.yaml points at: refused before anything is built or pushed.
    v = str(exporter_image().rsplit(":", 1)[1])
    result = run(release_cmd("--dist", tmp_path / "dist", "--oci", registry.charts,
                             "--plain-http", images="all"), helm_env, check=False)
    assert result.returncode == 1
    assert (f"Chart.yaml's exporter image is {exporter_image()}, this release would publish "
            f"{registry.host}/charts/vineyard-exporter:{v}") in result.stderr, result.stderr
    assert not list((tmp_path / "dist").rglob("*.*"))


def test_release_rerun_finds_its_own_image_and_pushes_the_chart(
        published: Published, helm_env: dict[str, str], signing_key, tmp_path: Path) -> None:
    # A release whose image went up but whose chart push failed is cut again: the same sources
    # give the same image (the archive is reproducible), so the tag is left as it is.
    v, host = published.version, published.registry.host
    ours = f"{host}/rerun/vineyard-exporter:{v}"
    run([CRANE, "copy", "--insecure", f"{host}/charts/vineyard-exporter:{v}", ours], helm_env)
    env = {**helm_env, "VINEYARD_RELEASE_KEY": signing_key.name,
           "VINEYARD_RELEASE_KEYRING": str(signing_key.secring)}
    result = run(release_cmd("--dist", tmp_path / "dist", "--oci", f"oci://{host}/rerun",
                             "--oci-name", public_path(), "--plain-http", images="all"), env)
    digest = run([CRANE, "digest", "--insecure", ours], helm_env).stdout.strip()
    assert f"{ours} is already {digest}: not pushed again" in result.stderr, result.stderr
    assert f"{ours}@{digest}" in result.stdout
    run([HELM, "show", "chart", f"oci://{host}/rerun/vineyard", "--version", v, "--plain-http"],
        helm_env)
