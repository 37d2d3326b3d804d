"""Derive a kubeconfig file from a ``kubernetes.client.ApiClient`` (duck-typed: the kubernetes
package is not imported), so that helm talks to the same API server as the caller's client."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from typing import Any


def kubeconfig_from_api_client(api_client: Any) -> dict[str, Any] | None:
    """A kubeconfig (as a dict) equivalent to ``api_client.configuration``, or None when the
    configuration names no API server we can reach with the same credentials."""
    configuration = getattr(api_client, "configuration", None)
    host = str(getattr(configuration, "host", "") or "")
    if not host or host.rstrip("/") == "http://localhost":  # the kubernetes client's default
        return None
    cluster: dict[str, Any] = {"server": host}
    ca = getattr(configuration, "ssl_ca_cert", None)
    if ca:
        cluster["certificate-authority"] = os.fspath(ca)
    if getattr(configuration, "verify_ssl", True) is False:
        cluster["insecure-skip-tls-verify"] = True
    proxy = getattr(configuration, "proxy", None)
    if proxy:
        cluster["proxy-url"] = str(proxy)
    user: dict[str, Any] = {}
    cert, key = getattr(configuration, "cert_file", None), getattr(configuration, "key_file", None)
    if cert and key:
        user["client-certificate"] = os.fspath(cert)
        user["client-key"] = os.fspath(key)
    api_key = getattr(configuration, "api_key", None) or {}
    token = api_key.get("authorization") or api_key.get("BearerToken")
    if token:
        prefix = (getattr(configuration, "api_key_prefix", None) or {}).get("authorization", "")
        token = f"{prefix} {token}".strip() if prefix else str(token)
        user["token"] = token.split(" ", 1)[1] if token.lower().startswith("bearer ") else token
    username, password = (
        getattr(configuration, "username", None),
        getattr(configuration, "password", None),
    )
    if username and password:
        user["username"], user["password"] = str(username), str(password)
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "from-api-client", "cluster": cluster}],
        "users": [{"name": "from-api-client", "user": user}],
        "contexts": [
            {
                "name": "from-api-client",
                "context": {"cluster": "from-api-client", "user": "from-api-client"},
            }
        ],
        "current-context": "from-api-client",
    }


@contextlib.contextmanager
def kubeconfig_file(api_client: Any) -> Iterator[str | None]:
    """Yield the path of a private temporary kubeconfig for ``api_client`` (None when nothing
    can be derived); the file is removed afterwards."""
    config = kubeconfig_from_api_client(api_client) if api_client is not None else None
    if config is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="vineyard-helm-") as directory:
        path = os.path.join(directory, "kubeconfig")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(config, handle)  # JSON is YAML
        yield path
