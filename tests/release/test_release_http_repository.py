"""The published HTTP chart repository, served as static files on 127.0.0.1, works for a user
of Helm 4 and of Helm 3: add, search, pull with provenance verified, earlier versions kept."""
from __future__ import annotations

import io
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.release.release_kit import (
    PREVIOUS_VERSION,
    Key,
    Published,
    make_key,
    run,
    stop_gpg_agent,
)
from tests.support.helm import HELM, HELM3, isolated_helm_env

HELMS = {"helm4": HELM, "helm3": HELM3}


@pytest.fixture(params=list(HELMS))
def helm(request: pytest.FixtureRequest) -> Path:
    return HELMS[request.param]


@pytest.fixture
def user_env(helm_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """A user with no repositories configured yet."""
    return isolated_helm_env(helm_env, tmp_path)


def add_repo(helm: Path, url: str, env: dict[str, str], name: str = "vineyard") -> None:
    run([helm, "repo", "add", name, url], env)


def test_published_site_is_the_static_layout(published: Published) -> None:
    v = published.version
    files = {p.name for p in published.site.iterdir()}
    assert {"index.yaml", f"vineyard-{v}.tgz", f"vineyard-{v}.tgz.prov", "vineyard-helm.gpg",
            f"vineyard-{PREVIOUS_VERSION}.tgz"} <= files
    # Package URLs are relative to index.yaml, so the site works wherever it is hosted.
    index = yaml.safe_load((published.site / "index.yaml").read_text())
    urls = {e["version"]: e["urls"] for e in index["entries"]["vineyard"]}
    assert urls[v] == [f"vineyard-{v}.tgz"]


def test_search_finds_the_release_and_keeps_the_earlier_one(
        helm: Path, published: Published, user_env: dict[str, str]) -> None:
    add_repo(helm, published.url, user_env)
    latest = yaml.safe_load(run([helm, "search", "repo", "vineyard", "-o", "yaml"],
                                user_env).stdout)
    assert [(c["name"], c["version"]) for c in latest] == [("vineyard/vineyard",
                                                             published.version)]
    every = yaml.safe_load(run([helm, "search", "repo", "vineyard", "--versions", "-o", "yaml"],
                               user_env).stdout)
    assert {c["version"] for c in every} == {published.version, PREVIOUS_VERSION}


def test_pull_verify_passes_with_the_published_key(
        helm: Path, published: Published, user_env: dict[str, str], tmp_path: Path) -> None:
    add_repo(helm, published.url, user_env)
    keyring = tmp_path / "vineyard-helm.gpg"  # what a user downloads next to the index
    keyring.write_bytes((published.site / "vineyard-helm.gpg").read_bytes())
    out = run([helm, "pull", "vineyard/vineyard", "--version", published.version, "--verify",
               "--keyring", keyring, "--destination", tmp_path], user_env)
    assert "Signed by: vineyard-helm release test" in out.stdout + out.stderr
    assert (tmp_path / f"vineyard-{published.version}.tgz").is_file()


def test_earlier_version_stays_installable(
        helm: Path, published: Published, user_env: dict[str, str], signing_key: Key,
        tmp_path: Path) -> None:
    add_repo(helm, published.url, user_env)
    run([helm, "pull", "vineyard/vineyard", "--version", PREVIOUS_VERSION, "--verify",
         "--keyring", signing_key.pubring, "--destination", tmp_path], user_env)
    rendered = run([helm, "template", "v", tmp_path / f"vineyard-{PREVIOUS_VERSION}.tgz"],
                   user_env).stdout
    assert f'helm.sh/chart: "vineyard-{PREVIOUS_VERSION}"' in rendered


@pytest.fixture(scope="module")
def tampered_site(published: Published, static_site, tmp_path_factory) -> str:
    """A copy of the site whose package was altered after signing (same name, index and
    provenance): what a compromised host or mirror would serve."""
    site = tmp_path_factory.mktemp("tampered") / "site"
    shutil.copytree(published.site, site)
    package = site / f"vineyard-{published.version}.tgz"
    original = package.read_bytes()
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(original)) as src, \
            tarfile.open(fileobj=out, mode="w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            if member.name == "vineyard/values.yaml":
                data = data + b"\n# injected\n"  # type: ignore[operator]
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    package.write_bytes(out.getvalue())
    return static_site(site).url


def test_pull_verify_fails_on_a_tampered_package(
        helm: Path, tampered_site: str, published: Published, user_env: dict[str, str],
        tmp_path: Path) -> None:
    add_repo(helm, tampered_site, user_env)
    result = run([helm, "pull", "vineyard/vineyard", "--version", published.version, "--verify",
                  "--keyring", published.site / "vineyard-helm.gpg", "--destination", tmp_path],
                 user_env, check=False)
    assert result.returncode != 0
    assert "sha256 sum does not match" in result.stderr, result.stderr


@pytest.fixture(scope="module")
def stranger_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Key]:
    key = make_key(tmp_path_factory.mktemp("gpg-stranger") / "home", "somebody else")
    yield key
    stop_gpg_agent(key.home)


def test_pull_verify_fails_with_a_key_that_did_not_sign(
        helm: Path, published: Published, user_env: dict[str, str], stranger_key: Key,
        tmp_path: Path) -> None:
    add_repo(helm, published.url, user_env)
    result = run([helm, "pull", "vineyard/vineyard", "--version", published.version, "--verify",
                  "--keyring", stranger_key.pubring, "--destination", tmp_path],
                 user_env, check=False)
    assert result.returncode != 0
    assert "signature made by unknown entity" in result.stderr, result.stderr
