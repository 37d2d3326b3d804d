"""A minimal Kubernetes API server stand-in on 127.0.0.1 for provoking real helm errors.

It answers discovery and ``/version`` and holds no objects: every list is empty and every get
is a 404 Status. That is enough for helm to report a missing release exactly as it does
against a real cluster, without one. Requests are logged in ``requests``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def _body(path: str) -> tuple[int, dict[str, Any]]:
    bare = path.split("?", 1)[0].rstrip("/")
    if bare == "/version":
        return 200, {
            "major": "1",
            "minor": "34",
            "gitVersion": "v1.34.0",
            "platform": "linux/amd64",
        }
    if bare == "/api":
        return 200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    if bare == "/apis":
        return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": []}
    if bare == "/api/v1":
        resources = [
            {
                "name": "secrets",
                "singularName": "secret",
                "namespaced": True,
                "kind": "Secret",
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
            },
            {
                "name": "namespaces",
                "singularName": "namespace",
                "namespaced": False,
                "kind": "Namespace",
                "verbs": ["create", "get", "list"],
            },
        ]
        return 200, {"kind": "APIResourceList", "groupVersion": "v1", "resources": resources}
    parts = bare.strip("/").split("/")
    if parts[-1] in ("secrets", "configmaps", "namespaces", "pods", "services"):
        kind = parts[-1][:-1].capitalize() + "List"
        return 200, {
            "kind": kind,
            "apiVersion": "v1",
            "metadata": {"resourceVersion": "1"},
            "items": [],
        }
    return 404, {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": "NotFound",
        "message": f"{bare} not found",
        "code": 404,
    }


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.requests.append(f"{self.command} {self.path}")  # type: ignore[attr-defined]
        # Reads only: any write is refused, so nothing is ever "created" here.
        code, body = _body(self.path) if self.command == "GET" else (405, {"kind": "Status"})
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


_REQUESTS: dict[str, list[str]] = {}


def requests_seen(kubeconfig: Path) -> list[str]:
    """The request paths the server behind ``kubeconfig`` has answered so far."""
    return list(_REQUESTS.get(str(kubeconfig), []))


@contextmanager
def fake_apiserver(directory: Path) -> Iterator[Path]:
    """Serve on a free loopback port; yield the path of a kubeconfig pointing at it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    requests = _REQUESTS.setdefault(str(directory / "fake-kubeconfig"), [])
    server.requests = requests  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        kubeconfig = directory / "fake-kubeconfig"
        kubeconfig.write_text(kubeconfig_text(f"http://127.0.0.1:{server.server_port}"))
        kubeconfig.chmod(0o600)
        yield kubeconfig
    finally:
        _REQUESTS.pop(str(directory / "fake-kubeconfig"), None)
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


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
