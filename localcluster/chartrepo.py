"""A Helm chart repository on 127.0.0.1: `helm package` + `helm repo index` into a directory,
served by Python's http.server as a background process that `Cluster.down` stops."""
from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from .procs import Processes, free_port, wait_until

NAME = "chartrepo"


def build_repo(charts: list[Path], repo_dir: Path, *, helm: Path) -> None:
    """Packages `charts` into `repo_dir` (replacing older packages) and writes index.yaml."""
    repo_dir.mkdir(parents=True, exist_ok=True)
    for old in repo_dir.glob("*.tgz"):
        old.unlink()
    for chart in charts:
        _run([str(helm), "package", str(chart), "--destination", str(repo_dir)])
    # Relative URLs in the index: the packages resolve against whatever URL the repo is added as.
    _run([str(helm), "repo", "index", str(repo_dir)])


def serve_repo(procs: Processes, charts: list[Path], repo_dir: Path, *, helm: Path) -> str:
    """(Re)builds the repository and serves it, reusing a server that is already running.
    Returns its URL, for `helm repo add NAME URL`."""
    build_repo(charts, repo_dir, helm=helm)
    url = served_url(procs)
    if url:
        return url
    procs.stop(NAME)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    procs.start(NAME, [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                       "--directory", str(repo_dir)])
    _info(procs).write_text(json.dumps({"url": url, "dir": str(repo_dir)}) + "\n")
    if not wait_until(lambda: _index_served(url), 10.0):
        procs.check_running(NAME)
        raise RuntimeError(f"chart repository at {url} does not serve index.yaml")
    return url


def served_url(procs: Processes) -> str | None:
    """The URL of the repository server this state dir runs, if it runs."""
    if procs.pid(NAME) is None or not _info(procs).exists():
        return None
    return json.loads(_info(procs).read_text())["url"]


def _info(procs: Processes) -> Path:
    return procs.pid_dir.parent / f"{NAME}.json"


def _index_served(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/index.yaml", timeout=1.0) as resp:
            return resp.status == 200
    except OSError:
        return False


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): "
                           f"{result.stderr.strip()}")
