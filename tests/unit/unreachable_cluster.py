"""A kubeconfig naming a loopback port nothing listens on: a real unreachable cluster.

(Situations that need an API server, such as a missing release, run against the real local
cluster in tests/e2e, never against a stand-in.)
"""

from __future__ import annotations

import json
import socket
from pathlib import Path


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def kubeconfig_text(server: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "c", "cluster": {"server": server}}],
            "users": [{"name": "u", "user": {"token": "unused"}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "c",
        }
    )


def write_unreachable_kubeconfig(path: Path) -> Path:
    path.write_text(kubeconfig_text(f"https://127.0.0.1:{closed_port()}"))
    path.chmod(0o600)
    return path
