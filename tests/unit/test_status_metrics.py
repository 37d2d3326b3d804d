"""status's memory and database columns (vineyard_helm/metrics.py): real /metrics pages read the
way status reads them, and which pod and port status asks the API server's proxy for, taken
from the workloads helm returns.

vineyardd's page is the chart's exporter's real output beside the real vineyardd 0.24.2 (the
contract harness, tests/contract/test_contract_metrics.py's pod, with a client holding a 32 MiB
tensor), recorded in data/vineyardd-metrics.prom. etcd's is scraped live from the chart's etcd
(.cache/bin/etcd) started on 127.0.0.1 here, its NOSPACE alarm raised for real."""

from __future__ import annotations

import asyncio
import base64
import copy
import io
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import vineyard_helm
from tests.support.paths import REPO
from tests.unit.status_fixture import METADATA, status_document
from vineyard_helm.cli import run
from vineyard_helm.helm_json import status_from_json
from vineyard_helm.metrics import (
    METRICS_OFF,
    collect,
    describe_error,
    etcd_from_page,
    vineyardd_from_page,
)
from vineyard_helm.output import format_status
from vineyard_helm.records import EtcdMetrics, PodStatus, ReleaseStatus, VineyarddMetrics

DATA = Path(__file__).parent / "data"
VINEYARDD_PAGE = (DATA / "vineyardd-metrics.prom").read_text()
ETCD = REPO / ".cache" / "bin" / "etcd"
POD = PodStatus(name="vineyard-x", node="node-0", phase="Running", ready=True, updated=True)


# ---- reading the pages -----------------------------------------------------------------------


def test_vineyardd_memory_used_against_its_size_from_the_exporters_page() -> None:
    record = vineyardd_from_page(POD, VINEYARDD_PAGE)
    assert record.state == "ok"
    assert record.memory_size == 256 * 2**20  # the contract pod's vineyard.size, 256Mi
    assert record.memory_used is not None
    assert 32 * 2**20 <= record.memory_used < record.memory_size  # the held tensor
    assert record.instance_node == "contract-node-1"


def test_an_exporter_that_cannot_reach_vineyardd_says_vineyardd_down() -> None:
    page = VINEYARDD_PAGE.replace("\nvineyard_up 1\n", "\nvineyard_up 0\n")
    assert page != VINEYARDD_PAGE
    assert vineyardd_from_page(POD, page).state == "vineyardd down"


def test_a_page_that_is_not_prometheus_text_is_reported_not_raised() -> None:
    record = vineyardd_from_page(POD, "<html>{not metrics}</html> x y z\n")
    assert record.state.startswith("unreadable page"), record


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Etcd:
    def __init__(self, root: Path, quota: int) -> None:
        self.client = f"http://127.0.0.1:{_free_port()}"
        peer = f"http://127.0.0.1:{_free_port()}"
        self.log = (root / "etcd.log").open("wb")
        self.proc = subprocess.Popen(
            [
                str(ETCD),
                f"--data-dir={root / 'data'}",
                f"--listen-client-urls={self.client}",
                f"--advertise-client-urls={self.client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=default={peer}",
                f"--quota-backend-bytes={quota}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def get(self, path: str) -> str:
        with urllib.request.urlopen(self.client + path, timeout=5) as response:
            return str(response.read().decode())

    def put(self, key: str, value: bytes) -> dict[str, Any]:
        """Through etcd's JSON gateway (no etcdctl needed); errors come back as JSON."""
        encoded = {"key": key.encode(), "value": value}
        body = json.dumps({k: base64.b64encode(v).decode() for k, v in encoded.items()}).encode()
        request = urllib.request.Request(self.client + "/v3/kv/put", data=body, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return dict(json.loads(response.read()))
        except urllib.error.HTTPError as error:
            return dict(json.loads(error.read()))


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[Etcd]:
    if not ETCD.exists():
        pytest.fail(f"{ETCD} not found: run `make tools`")
    server = Etcd(tmp_path, quota=2**20)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if '"health":"true"' in server.get("/health"):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "etcd did not become healthy"
            assert server.proc.poll() is None, "etcd exited"
            time.sleep(0.1)
        yield server
    finally:
        server.proc.terminate()
        server.proc.wait(20)
        server.log.close()


def test_etcd_database_against_quota_then_the_nospace_alarm(etcd: Etcd) -> None:
    healthy = etcd_from_page(POD, etcd.get("/metrics"))
    assert healthy.state == "ok"
    assert healthy.quota == 2**20
    assert healthy.db_size is not None
    assert 0 < healthy.db_size < healthy.quota
    assert healthy.db_in_use is not None
    assert 0 < healthy.db_in_use <= healthy.db_size
    assert healthy.alarms == ()
    assert healthy.has_leader is True

    refused = None
    for i in range(60):
        answer = etcd.put(f"k{i}", b"x" * 100_000)
        if "error" in answer or "message" in answer:
            refused = answer
            break
    assert refused is not None
    assert "database space exceeded" in json.dumps(refused)
    full = etcd_from_page(POD, etcd.get("/metrics"))
    assert full.alarms == ("NOSPACE",)
    assert full.db_size is not None
    assert full.quota is not None
    # etcd raises it when a write would pass the quota: the file is near it, not always past
    assert full.db_size > healthy.db_size
    assert full.db_size > full.quota // 2


# ---- what status asks for, and what it shows -------------------------------------------------


class FakeProxy:
    """Stands in for the API server's pod proxy: answers per (pod, port)."""

    def __init__(self, pages: dict[tuple[str, int], str | BaseException]) -> None:
        self.pages = pages
        self.asked: list[tuple[str, str, int]] = []

    def get(self, namespace: str, pod: str, port: int) -> str:
        self.asked.append((namespace, pod, port))
        page = self.pages.get((pod, port))
        if page is None:
            raise ConnectionError(f"nothing at {pod}:{port}")
        if isinstance(page, BaseException):
            raise page
        return page


def _document(helm: str, values: dict[str, Any]) -> dict[str, Any]:
    """status_fixture's document with its DaemonSet and StatefulSet rendered from ``values``."""
    document = status_document(helm, nodes_ready=(True, True))
    rendered = {
        (m["kind"], m["metadata"]["name"]): m for m in vineyard_helm.render(values, helm=helm)
    }
    resources = document["info"]["resources"]
    for key, kind in (("v1/DaemonSet", "DaemonSet"), ("v1/StatefulSet", "StatefulSet")):
        live = resources[key][0]
        fresh = copy.deepcopy(rendered[(kind, live["metadata"]["name"])])
        fresh["metadata"]["generation"] = live["metadata"].get("generation", 1)
        fresh["status"] = live["status"]
        resources[key] = [fresh]
    # Every container started, as a kubelet reports it (kwok's pods have no container ID).
    templates = {
        fresh["metadata"]["name"]: fresh["spec"]["template"]["spec"]["containers"]
        for fresh in (resources["v1/DaemonSet"][0], resources["v1/StatefulSet"][0])
    }
    for pod in resources["v1/Pod(related)"]:
        owner = "vineyard-etcd" if "etcd" in pod["metadata"]["name"] else "vineyard"
        pod["status"]["containerStatuses"] = [
            {"name": c["name"], "containerID": f"containerd://{i}", "state": {"running": {}}}
            for i, c in enumerate(templates[owner])
        ]
    return document


def _with_metrics(
    document: dict[str, Any], proxy: FakeProxy, *, with_pods: bool = False
) -> ReleaseStatus:
    import dataclasses

    from vineyard_helm.helm_json import _objects

    status = status_from_json(document, metadata=METADATA)
    live = document["info"]["resources"]
    ds = _objects(live, "DaemonSet")[0]
    sts = _objects(live, "StatefulSet")[0]
    assert status.vineyardd is not None
    assert status.etcd is not None
    report = asyncio.run(
        collect(
            namespace="vineyard",
            vineyardd=[(status.vineyardd, ds)],
            etcd=(status.etcd, sts),
            kubeconfig=None,
            context=None,
            pods={p["metadata"]["name"]: p for p in live["v1/Pod(related)"]} if with_pods else None,
            proxy=proxy,  # type: ignore[arg-type]
        )
    )
    return dataclasses.replace(status, metrics=report)


ETCD_PAGE = """# TYPE etcd_mvcc_db_total_size_in_bytes gauge
etcd_mvcc_db_total_size_in_bytes 2.0480e+05
etcd_mvcc_db_total_size_in_use_in_bytes 1.2288e+05
etcd_server_quota_backend_bytes 2.147483648e+09
etcd_debugging_server_alarms{alarm_type="NOSPACE",server_id="1"} 0
etcd_server_has_leader 1
"""


def test_ports_come_from_the_release_not_from_defaults(helm4: str) -> None:
    values = {
        "metrics": {"enabled": True, "exporter": {"port": 9711}},
        "etcd": {"clientPort": 2479},
    }
    pages: dict[tuple[str, int], str | BaseException] = {
        ("vineyard-0", 9711): VINEYARDD_PAGE,
        ("vineyard-1", 9711): VINEYARDD_PAGE,
        ("vineyard-etcd-0", 2479): ETCD_PAGE,
    }
    proxy = FakeProxy(pages)
    status = _with_metrics(_document(helm4, values), proxy)
    assert sorted(proxy.asked) == sorted(("vineyard", pod, port) for pod, port in pages)
    report = status.metrics
    assert report is not None
    assert report.metrics_enabled
    assert report.note == ""
    assert [m.node for m in report.vineyardd] == ["node-0", "node-1"]
    assert all(m.state == "ok" and m.memory_size == 256 * 2**20 for m in report.vineyardd)
    (member,) = report.etcd
    assert (member.db_size, member.quota, member.alarms) == (204800, 2**31, ())

    text = format_status(status)
    assert "MEMORY" in text, text
    assert "of 256.0 MiB" in text, text
    assert "200.0 KiB of 2.0 GiB quota (0%), 120.0 KiB in use" in text, text
    row = next(line for line in text.splitlines() if line.strip().startswith("vineyard-etcd-0"))
    assert row.split()[-2:] == ["none", "yes"], row
    data = json.loads(json.dumps(status.to_dict()))
    assert data["metrics"]["vineyardd"][0]["memory_used"] > 0
    assert data["metrics"]["etcd"][0]["alarms"] == []


def test_without_metrics_enabled_vineyardd_says_so_and_etcd_is_still_read(helm4: str) -> None:
    proxy = FakeProxy({("vineyard-etcd-0", 2379): ETCD_PAGE.replace("} 0\n", "} 1\n")})
    status = _with_metrics(_document(helm4, {}), proxy)
    assert [pod for _, pod, _ in proxy.asked] == ["vineyard-etcd-0"]  # no exporter to ask
    report = status.metrics
    assert report is not None
    assert not report.metrics_enabled
    assert report.note == METRICS_OFF
    assert {m.state for m in report.vineyardd} == {METRICS_OFF}
    assert report.etcd[0].alarms == ("NOSPACE",)
    text = format_status(status)
    assert f"vineyardd memory: {METRICS_OFF}" in text
    assert "MEMORY" not in text
    row = next(line for line in text.splitlines() if line.strip().startswith("vineyard-etcd-0"))
    assert "NOSPACE" in row


class ApiError(Exception):
    """Shaped like kubernetes.client.ApiException (status, reason, body)."""

    def __init__(self, status: int, reason: str, body: str = "") -> None:
        super().__init__(reason)
        self.status, self.reason, self.body = status, reason, body


def test_forbidden_and_unreachable_pods_are_said_per_pod(helm4: str) -> None:
    values = {"metrics": {"enabled": True}}
    proxy = FakeProxy(
        {
            ("vineyard-0", 9610): ApiError(403, "Forbidden"),
            ("vineyard-1", 9610): ApiError(
                503,
                "Service Unavailable",
                json.dumps({"kind": "Status", "message": "error trying to reach service: dial"}),
            ),
            # vineyard-etcd-0: a connection error (the API server itself is not answering)
        }
    )
    status = _with_metrics(_document(helm4, values), proxy)
    assert status.metrics is not None
    states = [m.state for m in status.metrics.vineyardd]
    assert states[0].startswith("forbidden: Forbidden (needs get on pods/proxy)")
    assert states[1] == "unreachable: HTTP 503 error trying to reach service: dial"
    assert status.metrics.etcd[0].state.startswith("unreachable: nothing at vineyard-etcd-0")
    text = format_status(status)
    assert "unreachable: HTTP 503" in text
    assert "forbidden" in text


def test_a_container_that_is_not_running_is_unreachable_without_asking(helm4: str) -> None:
    """kwok's pods report running containers without a container ID: no container, nothing
    listening, and the API server is not asked to dial their made-up addresses."""
    document = _document(helm4, {"metrics": {"enabled": True}})
    pods = document["info"]["resources"]["v1/Pod(related)"]
    del pods[0]["status"]["containerStatuses"][1]["containerID"]  # vineyard-0's exporter
    pods[1]["status"]["containerStatuses"][1]["state"] = {"waiting": {"reason": "CrashLoopBackOff"}}
    proxy = FakeProxy({("vineyard-etcd-0", 2379): ETCD_PAGE})
    status = _with_metrics(document, proxy, with_pods=True)
    assert [pod for _, pod, _ in proxy.asked] == ["vineyard-etcd-0"]
    assert status.metrics is not None
    assert [m.state for m in status.metrics.vineyardd] == [
        "unreachable: container metrics-exporter not running (no container ID)",
        "unreachable: container metrics-exporter not running: CrashLoopBackOff",
    ]
    assert status.metrics.etcd[0].state == "ok"


def test_describe_error_of_a_plain_exception() -> None:
    assert describe_error(TimeoutError("read timed out")) == "unreachable: read timed out"


def test_without_the_kubernetes_client_status_says_how_to_get_it(
    helm4: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "kubernetes", None)  # import kubernetes -> ImportError
    document = _document(helm4, {"metrics": {"enabled": True}})
    status = status_from_json(document, metadata=METADATA)
    from vineyard_helm.api import _with_metrics as api_with_metrics

    status = asyncio.run(
        api_with_metrics(status, document, namespace="vineyard", kubeconfig=None, context=None)
    )
    assert status.metrics is not None
    assert "pip install 'vineyard-helm[status]'" in status.metrics.note
    assert "memory and database sizes: unavailable" in format_status(status)
    assert all(m.state.startswith("unavailable:") for m in status.metrics.vineyardd)
    assert format_status(status).count("unavailable: the kubernetes Python client") >= 3


def test_an_unusable_kubeconfig_is_reported_not_raised(helm4: str, tmp_path: Path) -> None:
    bad = tmp_path / "kubeconfig"
    bad.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    document = _document(helm4, {})
    status = status_from_json(document, metadata=METADATA)
    from vineyard_helm.api import _with_metrics as api_with_metrics

    status = asyncio.run(
        api_with_metrics(status, document, namespace="vineyard", kubeconfig=bad, context=None)
    )
    assert status.metrics is not None
    assert status.metrics.note.startswith("unavailable: no usable kubeconfig"), status.metrics


def test_records_are_typed_and_default_to_nothing_read() -> None:
    assert VineyarddMetrics(pod="p", node="n", state="x").memory_used is None
    assert EtcdMetrics(pod="p", node="n", state="x").alarms == ()


def test_cli_status_no_metrics_reads_no_page(helm4: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from vineyard_helm import api
    from vineyard_helm.cli import build_parser

    seen: dict[str, Any] = {}

    def fake_status(*args: Any, **kwargs: Any) -> ReleaseStatus:
        seen.update(kwargs)
        return status_from_json(_document(helm4, {}), metadata=METADATA)

    monkeypatch.setattr(api, "status", fake_status)
    out = io.StringIO()
    args = build_parser().parse_args(["status", "--no-metrics", "-o", "json"])
    assert run(args, out, io.StringIO()) == 0
    assert seen["metrics"] is False
    assert json.loads(out.getvalue())["metrics"] is None
