"""Metrics on the real node, proven with a real Prometheus (Debian's package): it runs on this
host, listens on 127.0.0.1 only, scrapes the release's metrics Services' pods through the API
server's proxy with the chart README's scrape job (its relabelings as documented), and loads the
chart's own alerting rules. A worker pod puts data and Prometheus' HTTP API must show the node's
vineyardd memory usage grow by it; a small --size filled past the threshold makes
VineyardMemoryNearSize fire.

Debian builds Prometheus without kubernetes_sd_configs, so the test stands in for it: an HTTP
service discovery on 127.0.0.1 (http_sd_configs) answers with the targets and __meta_kubernetes_*
labels kubernetes_sd (role endpointslice) would give, read from the API server; every other line
of the documented job runs as written."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from localcluster import Cluster, wait_until
from localcluster.procs import free_port
from localcluster.realnode import NODE_NAME
from tests.support.kube import kube

from .conftest import CHART, SOCKET_GID, Helm, hostpath_socket, record, worker_pod

README = CHART / "README.md"
MIB = 1 << 20
HOLD = """
import time, numpy as np, vineyard
c = vineyard.connect()
oid = c.put(np.ones({mib} * 2**20 // 8, dtype=np.int64))
print('PUT', int(oid), flush=True)
time.sleep(900)
"""


def documented_scrape_job() -> dict[str, Any]:
    """The scrape job the chart README documents for Prometheus without the Operator."""
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(), re.S)
    job = next(b for b in blocks if "kubernetes_sd_configs" in b)
    return yaml.safe_load(job)["scrape_configs"][0]  # type: ignore[no-any-return]


def meta_label(name: str) -> str:
    """A Kubernetes name as kubernetes_sd writes it in a label name."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def discovered_targets(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    """What kubernetes_sd (role endpointslice) gives for the namespace's Services: a target per
    endpoint address and port, with the Service's annotations and the pod's name and node."""
    groups = []
    services = kube(cluster).get(f"/api/v1/namespaces/{namespace}/services")["items"]
    for service in services:
        meta = service["metadata"]
        base = {"__meta_kubernetes_namespace": namespace,
                "__meta_kubernetes_service_name": meta["name"]}
        for key, value in (meta.get("annotations") or {}).items():
            base[f"__meta_kubernetes_service_annotation_{meta_label(key)}"] = value
        slices = kube(cluster).get(
            f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"
            f"?labelSelector=kubernetes.io/service-name={meta['name']}")["items"]
        for es in slices:
            for endpoint in es.get("endpoints") or []:
                ref = endpoint.get("targetRef") or {}
                labels = base | {"__meta_kubernetes_pod_name": ref.get("name", ""),
                                 "__meta_kubernetes_pod_node_name": endpoint.get("nodeName", "")}
                for port in es.get("ports") or []:
                    groups += [{"targets": [f"{address}:{port['port']}"], "labels": labels}
                               for address in endpoint["addresses"]]
    return groups


@contextlib.contextmanager
def kubernetes_sd(cluster: Cluster, namespace: str) -> Iterator[str]:
    """An HTTP service discovery on 127.0.0.1 standing in for kubernetes_sd; yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the http.server API
            body = json.dumps(discovered_targets(cluster, namespace)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/targets"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


class Prometheus:
    """Debian's prometheus on 127.0.0.1, its data and config in a temporary directory."""

    def __init__(self, cluster: Cluster, sd_url: str, rules: dict[str, Any]) -> None:
        binary = shutil.which("prometheus")
        if not binary:
            pytest.fail("prometheus not found: run `make setup` (Debian package prometheus)")
        self.dir = Path(tempfile.mkdtemp(prefix="vineyard-prometheus-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        pki = cluster.state_dir / "pki"
        tls = {
            "ca_file": str(pki / "ca.crt"),
            "cert_file": str(pki / "admin.crt"),
            "key_file": str(pki / "admin.key"),
        }
        apiserver = urllib.parse.urlsplit(cluster.server).netloc
        job = documented_scrape_job()
        assert job.pop("kubernetes_sd_configs") == [{"role": "endpointslice"}]
        job["http_sd_configs"] = [{"url": sd_url, "refresh_interval": "2s"}]
        # Through the API server's proxy to the pod (the documented job's labels and target
        # address come first; the proxy path replaces the address last).
        job["scheme"] = "https"
        job["tls_config"] = tls
        job["relabel_configs"] += [
            {
                "source_labels": [
                    "__meta_kubernetes_namespace",
                    "__meta_kubernetes_pod_name",
                    "__meta_kubernetes_service_annotation_prometheus_io_port",
                ],
                "regex": "(.+);(.+);(.+)",
                "replacement": "/api/v1/namespaces/$1/pods/$2:$3/proxy/metrics",
                "target_label": "__metrics_path__",
            },
            # The pod's address stays the instance (the dashboard joins on it).
            {"source_labels": ["__address__"], "target_label": "instance"},
            {"target_label": "__address__", "replacement": apiserver},
        ]
        config = {
            "global": {
                "scrape_interval": "2s",
                "evaluation_interval": "2s",
                "scrape_timeout": "2s",
            },
            "rule_files": ["rules.yaml"],
            "scrape_configs": [job],
        }
        (self.dir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        (self.dir / "rules.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
        check = subprocess.run(
            ["promtool", "check", "config", str(self.dir / "prometheus.yml")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.returncode == 0, check.stdout + check.stderr
        self.log = (self.dir / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={self.dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=self.dir,
        )
        assert wait_until(self._ready, 60, 0.5), self.output()

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited:\n{self.output()}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        return self.api("query", query=promql)["result"]  # type: ignore[no-any-return]

    def value(self, promql: str) -> float | None:
        result = self.query(promql)
        return float(result[0]["value"][1]) if len(result) == 1 else None

    def targets(self) -> str:
        active = self.api("targets")["activeTargets"]
        return json.dumps(
            [{k: t.get(k) for k in ("scrapeUrl", "health", "lastError", "labels")} for t in active],
            indent=1,
        )[-4000:]

    def output(self) -> str:
        return (self.dir / "prometheus.log").read_text(errors="replace")[-3000:]

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def chart_rules(cluster: Cluster, namespace: str, values: dict[str, Any]) -> dict[str, Any]:
    """The rules of the chart's PrometheusRule for these values (this cluster has no Operator:
    the release is installed without it, and Prometheus reads the same rules from a file)."""
    metrics = values["metrics"]
    rule = {**metrics.get("prometheusRule", {}), "enabled": True}
    res = subprocess.run(
        [
            "helm",
            "template",
            "vy",
            str(CHART),
            "-n",
            namespace,
            "-f",
            "-",
            "--api-versions",
            "monitoring.coreos.com/v1",
            "--show-only",
            "templates/metrics-prometheusrule.yaml",
        ],
        input=json.dumps({**values, "metrics": {**metrics, "prometheusRule": rule}}),
        capture_output=True,
        text=True,
        check=True,
        env=cluster.env,
    )
    return {"groups": yaml.safe_load(res.stdout)["spec"]["groups"]}


@contextlib.contextmanager
def prometheus(cluster: Cluster, namespace: str, values: dict[str, Any]) -> Iterator[Prometheus]:
    with kubernetes_sd(cluster, namespace) as sd_url:
        p = Prometheus(cluster, sd_url, chart_rules(cluster, namespace, values))
        try:
            yield p
        finally:
            p.close()


def hold(cluster: Cluster, namespace: str, name: str, mib: int) -> None:
    """A worker pod that puts `mib` MiB into the node's vineyardd and keeps the object."""
    sock = hostpath_socket(f"/var/run/vineyard/{namespace}/vy")
    kube(cluster).create(
        f"/api/v1/namespaces/{namespace}/pods",
        worker_pod(name, HOLD.format(mib=mib), groups=[SOCKET_GID], **sock),
    )
    assert wait_until(
        lambda: "PUT" in cluster.kubectl("-n", namespace, "logs", name, check=False).stdout,
        180,
        0.5,
    )


@pytest.mark.timeout(900)
def test_prometheus_sees_the_put_in_the_nodes_vineyard_memory(
    real_cluster: Cluster, namespace: str
) -> None:
    values: dict[str, Any] = {"metrics": {"enabled": True}}
    Helm(real_cluster, namespace).install("vy", values=values)
    job = 'job="vy-vineyard-metrics",namespace="' + namespace + '"'
    etcd_job = 'job="vy-vineyard-etcd-metrics",namespace="' + namespace + '"'
    query = (
        f"vineyard_memory_usage_bytes{{{job}}}"
        f" * on(instance) group_left(node) vineyard_instance_info{{{job}}}"
    )
    with prometheus(real_cluster, namespace, values) as prom:
        assert wait_until(lambda: prom.value(f"vineyard_up{{{job}}}") == 1, 120, 1), prom.targets()
        assert wait_until(
            lambda: prom.value(f"etcd_server_has_leader{{{etcd_job}}}") == 1, 120, 1
        ), prom.targets()
        series = prom.query(query)
        assert len(series) == 1, series
        assert series[0]["metric"]["node"] == NODE_NAME, series
        before = float(series[0]["value"][1])
        hold(real_cluster, namespace, "hold-64", 64)
        grown: list[float] = []

        def increased() -> bool:
            now = prom.value(query)
            grown[:] = [now] if now is not None else []
            return now is not None and now - before >= 64 * MIB

        assert wait_until(increased, 120, 1), (before, grown, prom.targets())
        limit = prom.value(f"vineyard_memory_limit_bytes{{{job}}}")
        record(
            "metrics: the query that showed the put on the real node",
            {
                "query": query,
                "node": NODE_NAME,
                "before, bytes": before,
                "after a 64 MiB put, bytes": grown[0],
                "vineyard_memory_limit_bytes": limit,
                "etcd_server_has_leader": prom.value(f"etcd_server_has_leader{{{etcd_job}}}"),
            },
        )
        assert limit == 256 * MIB


@pytest.mark.timeout(900)
def test_vineyard_memory_near_size_fires_for_real(real_cluster: Cluster, namespace: str) -> None:
    values: dict[str, Any] = {
        "vineyard": {"size": "64Mi"},
        "metrics": {
            "enabled": True,
            "prometheusRule": {"memoryUsage": {"threshold": 0.5, "for": "10s"}},
        },
    }
    Helm(real_cluster, namespace).install("vy", values=values)
    job = 'job="vy-vineyard-metrics",namespace="' + namespace + '"'
    with prometheus(real_cluster, namespace, values) as prom:
        assert wait_until(lambda: prom.value(f"vineyard_up{{{job}}}") == 1, 120, 1), prom.targets()

        def alert_states() -> dict[str, str]:
            return {a["labels"]["alertname"]: a["state"] for a in prom.api("alerts")["alerts"]}

        assert "VineyardMemoryNearSize" not in alert_states()
        hold(real_cluster, namespace, "hold-40", 40)  # 40 of 64 MiB: 62% > 50%
        t0 = time.monotonic()
        assert wait_until(
            lambda: alert_states().get("VineyardMemoryNearSize") == "firing", 120, 1
        ), (alert_states(), prom.targets())
        fired = next(
            a
            for a in prom.api("alerts")["alerts"]
            if a["labels"]["alertname"] == "VineyardMemoryNearSize"
        )
        record(
            "metrics: the alert that fired on the real node",
            {
                "alert": fired["labels"],
                "annotations": fired["annotations"],
                "value": fired["value"],
                "seconds from the put to firing": round(time.monotonic() - t0, 1),
            },
        )
        assert fired["labels"]["namespace"] == namespace
        assert fired["labels"]["severity"] == "warning"
