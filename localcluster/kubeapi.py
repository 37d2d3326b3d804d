"""A minimal Kubernetes REST client (stdlib only) over the admin client certificate."""
from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


class ApiError(RuntimeError):
    def __init__(self, status: int, method: str, path: str, body: str):
        super().__init__(f"{method} {path}: HTTP {status}: {body[:500]}")
        self.status = status


class RestVerbs:
    """GET, POST and DELETE of REST paths over a subclass's `request(method, path, body, *,
    timeout, content_type)`, which returns the decoded answer and raises `http_error` (an
    exception with `.status`) for an HTTP error status."""

    http_error: type[Exception] = ApiError

    def request(self, method: str, path: str, body: Any = None, *, timeout: float = 10.0,
                content_type: str = "application/json") -> Any:
        raise NotImplementedError

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def get_or_none(self, path: str, **kw: Any) -> Any:
        """GET `path`, or None when it does not exist (404); other errors are raised."""
        try:
            return self.get(path, **kw)
        except self.http_error as e:
            if getattr(e, "status", None) == 404:
                return None
            raise

    def exists(self, path: str) -> bool:
        return self.get_or_none(path) is not None

    def create(self, path: str, obj: dict[str, Any], **kw: Any) -> Any:
        return self.request("POST", path, obj, **kw)

    def delete(self, path: str, *, body: dict[str, Any] | None = None, missing_ok: bool = True,
               **kw: Any) -> Any:
        try:
            return self.request("DELETE", path, body, **kw)
        except self.http_error as e:
            if missing_ok and getattr(e, "status", None) == 404:
                return None
            raise

    def ok(self, path: str) -> bool:
        """True when GET `path` answers 200 (health endpoints); False on any error."""
        try:
            self.get(path, timeout=2.0)
            return True
        except (self.http_error, OSError):
            return False


class KubeApi(RestVerbs):
    def __init__(self, server: str, pki: Path, user: str = "admin"):
        self.server = server.rstrip("/")
        self._ssl = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        self._ssl.load_cert_chain(str(pki / f"{user}.crt"), str(pki / f"{user}.key"))

    def request(self, method: str, path: str, body: Any = None, *, timeout: float = 10.0,
                content_type: str = "application/json") -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method,
                                     headers={"Content-Type": content_type,
                                              "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, context=self._ssl, timeout=timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            raise ApiError(e.code, method, path, e.read().decode(errors="replace")) from None
        try:
            return json.loads(raw) if raw else None
        except json.JSONDecodeError:
            return raw.decode(errors="replace")
