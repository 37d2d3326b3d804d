"""chart= accepts a repo reference (with version= pinning) and a chart URL, not only the
bundled chart; served from a chart repository on 127.0.0.1."""

from __future__ import annotations

import functools
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import vineyard_helm
from vineyard_helm import ChartNotFoundError


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def chart_repo(helm: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A helm repository named `local` holding the packaged chart; helm's repo config and cache
    live in tmp_path."""
    repo_dir = tmp_path / "repo"
    repo_dir.mkdir()
    subprocess.run(
        [helm, "package", str(vineyard_helm.chart_path()), "-d", str(repo_dir)],
        check=True,
        capture_output=True,
    )
    subprocess.run([helm, "repo", "index", str(repo_dir)], check=True, capture_output=True)
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(repo_dir))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    for name, sub in (
        ("HELM_REPOSITORY_CONFIG", "repositories.yaml"),
        ("HELM_REPOSITORY_CACHE", "cache"),
    ):
        monkeypatch.setenv(name, str(tmp_path / sub))
    monkeypatch.setenv("HELM_CACHE_HOME", str(tmp_path / "cache-home"))
    subprocess.run([helm, "repo", "add", "local", url], check=True, capture_output=True)
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _kinds(manifests: list[dict[str, Any]]) -> set[str]:
    return {m["kind"] for m in manifests}


def test_a_repo_reference_renders(helm: str, chart_repo: str) -> None:
    assert "DaemonSet" in _kinds(vineyard_helm.render(chart="local/vineyard", helm=helm))


def test_version_pins_the_repo_chart(helm: str, chart_repo: str) -> None:
    version = vineyard_helm.__version__
    manifests = vineyard_helm.render(chart="local/vineyard", version=version, helm=helm)
    daemonset = next(m for m in manifests if m["kind"] == "DaemonSet")
    assert daemonset["metadata"]["labels"]["helm.sh/chart"] == f"vineyard-{version}"
    with pytest.raises(ChartNotFoundError):
        vineyard_helm.render(chart="local/vineyard", version="99.0.0", helm=helm)


def test_a_chart_url_renders(helm: str, chart_repo: str) -> None:
    url = f"{chart_repo}/vineyard-{vineyard_helm.__version__}.tgz"
    assert "DaemonSet" in _kinds(vineyard_helm.render(chart=url, helm=helm))


def test_a_remote_chart_is_validated_by_helm_with_its_own_schema(
    helm: str, chart_repo: str
) -> None:
    with pytest.raises(vineyard_helm.InvalidValuesError, match=r"socket\.volume\.type"):
        vineyard_helm.render(
            {"socket": {"volume": {"type": "nfs"}}}, chart="local/vineyard", helm=helm
        )
