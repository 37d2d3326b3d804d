"""Release fixtures: a throwaway signing key, a real OCI registry (distribution) and a static
HTTP chart repository on 127.0.0.1, and one release cut by hack/release.py into both.

The published site starts as an "earlier release" (vineyard 0.0.9, signed with the same key),
so the release's merged index.yaml can be checked for keeping old versions installable.
The cluster and namespace fixtures are the session's (tests/support/clusters.py), shared with
tests/e2e.
"""
from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.release.release_kit import (
    CRANE,
    KEY_NAME,
    REGISTRY,
    Key,
    Published,
    Registry,
    StaticSite,
    chart_version,
    make_key,
    previous_release,
    public_path,
    release_cmd,
    run,
    start_registry,
    stop_gpg_agent,
    stop_process,
)
from tests.support.clusters import cluster, namespace
from tests.support.helm import HELM, HELM3, isolated_helm_env, tools_env

__all__ = ["cluster", "namespace"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The first test that needs `published` pays for hack/release.py (bounded at 600 s by its
    own timeout) on top of its own work: those tests get 1200 s unless marked otherwise."""
    for item in items:
        if "published" in getattr(item, "fixturenames", ()) and not item.get_closest_marker(
            "timeout"
        ):
            item.add_marker(pytest.mark.timeout(1200))


@pytest.fixture(scope="session")
def helm_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for helm: its own config, cache and data dirs (no user state is read or
    written), the built tools first on PATH."""
    for tool in (HELM, HELM3, REGISTRY, CRANE):
        assert tool.exists(), f"{tool} missing: run `make tools` (hack/build-tools.sh)"
    return isolated_helm_env(tools_env(), tmp_path_factory.mktemp("helm-home"))


# ---- GPG ----


@pytest.fixture(scope="session")
def signing_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Key]:
    key = make_key(tmp_path_factory.mktemp("gpg") / "home", KEY_NAME)
    yield key
    stop_gpg_agent(key.home)


# ---- servers ----


@pytest.fixture(scope="session")
def static_site() -> Iterator[type[StaticSite]]:
    """Factory: static_site(root) serves root; every server stops at the end of the session."""
    started: list[StaticSite] = []

    def start(root: Path) -> StaticSite:
        site = StaticSite(root)
        started.append(site)
        return site

    yield start  # type: ignore[misc]
    for site in started:
        site.close()


def _serve_registry(factory: pytest.TempPathFactory, *, tls: bool) -> Iterator[Registry]:
    reg = start_registry(factory.mktemp("registry") / ("tls" if tls else "plain"), tls=tls)
    try:
        yield reg
    finally:
        stop_process(reg.process)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory,
             helm_env: dict[str, str]) -> Iterator[Registry]:
    """The distribution registry on 127.0.0.1 over plain HTTP (helm's --plain-http)."""
    yield from _serve_registry(tmp_path_factory, tls=False)


@pytest.fixture(scope="session")
def tls_registry(tmp_path_factory: pytest.TempPathFactory,
                 helm_env: dict[str, str]) -> Iterator[Registry]:
    """The same registry over TLS with a self-signed certificate for 127.0.0.1."""
    yield from _serve_registry(tmp_path_factory, tls=True)


# ---- the release ----


@pytest.fixture(scope="session")
def published(tmp_path_factory: pytest.TempPathFactory, helm_env: dict[str, str],
              signing_key: Key, registry: Registry, static_site) -> Published:
    """hack/release.py run as in CI: the armored key from the environment, the published
    index merged, the exporter image and then the chart pushed to the registry (standing in
    for the one Chart.yaml's image names); then dist/repo copied onto the site."""
    tmp = tmp_path_factory.mktemp("release")
    site = tmp / "site"
    previous_release(site, signing_key, helm_env, tmp)
    served = static_site(site)
    dist = tmp / "dist"
    env = {**helm_env, "VINEYARD_RELEASE_KEY": signing_key.name,
           "VINEYARD_RELEASE_PRIVATE_KEY": signing_key.armored}
    start = time.monotonic()
    result = run(release_cmd("--dist", dist, "--previous-index", f"{served.url}/index.yaml",
                             "--oci", registry.charts, "--oci-name", public_path(),
                             "--plain-http", platforms="host", images="all"),
                 env, timeout=600)
    seconds = time.monotonic() - start
    # Publishing is additive: the new files go next to the earlier release's.
    for path in (dist / "repo").iterdir():
        shutil.copy2(path, site / path.name)
    return Published(chart_version(), dist, site, served.url, registry, seconds,
                     result.stdout + result.stderr)
