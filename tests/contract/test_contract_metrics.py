"""The metrics exporter (tools/exporter, values `metrics`) against the real vineyardd 0.24.2: the
chart's rendered pod with its `metrics-exporter` container, run in the harness's sandbox beside
vineyardd (same user, the socket volume, the kubelet's $(VAR) expansion), scraped over the
sandbox's loopback as Prometheus would scrape the pod."""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.contract.vineyardd_harness import (
    HostTools,
    Pod,
    Proc,
    kube_expand,
    resolve_env,
    sandbox_root,
)
from tests.support.chart_render import render
from tests.support.paths import REPO
from tests.support.wait import wait_for

EXPORTER = REPO / ".cache" / "bin" / "vineyard-exporter"
METRICS_ON = {"metrics": {"enabled": True}}
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


def exporter_binary() -> Path:
    if not EXPORTER.exists():
        pytest.fail(f"{EXPORTER} not found: run `make tools` (hack/build-tools.sh builds it)")
    return EXPORTER


class MetricsPod:
    """A scenario's pod with metrics on: vineyardd as the harness runs it, and the exporter
    container from the same manifest."""

    def __init__(self, pod: Pod) -> None:
        self.pod = pod
        self.manifest = pod.spec.container_manifest("metrics-exporter")
        self.port = next(p["containerPort"] for p in self.manifest["ports"])
        self.proc: Proc | None = None

    def start_exporter(self) -> None:
        image = self.pod.root / "image-exporter"
        image.mkdir(exist_ok=True)
        with contextlib.suppress(FileExistsError):
            (image / "vineyard-exporter").symlink_to(exporter_binary())
        env = resolve_env(self.manifest, self.pod.spec.namespace)
        # The image's entrypoint is the exporter; the chart gives args only.
        assert "command" not in self.manifest
        argv = ["vineyard-exporter"] + [
            self.pod.spec.map_text(kube_expand(str(a), env), self.manifest)
            for a in self.manifest["args"]
        ]
        full_env = {"PATH": str(image), "HOME": "/"} | env
        identity = self.pod.spec.identity(self.manifest)
        self.proc = self.pod.sandbox.spawn(
            argv, env=full_env, identity=identity, name="metrics-exporter"
        )
        wait_for(
            lambda: self.get("/healthz") == "ok\n",
            "the exporter's /healthz answering ok",
            timeout=10,
            interval=0.05,
            describe=self.proc.output,
        )

    def get(self, path: str) -> str | None:
        return self.pod.sandbox.http_get(f"http://127.0.0.1:{self.port}{path}")

    def scrape(self) -> tuple[str, dict[str, float]]:
        """The page and its vineyard_* samples, by name and labels as written."""
        page = self.get("/metrics")
        assert page is not None, self.proc.output() if self.proc else "no exporter"
        samples = {}
        for line in page.splitlines():
            m = SAMPLE.match(line)
            if m and m.group(1).startswith("vineyard_"):
                samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
        return page, samples


@pytest.fixture(scope="module", params=["hostpath", "pvc"])
def metrics_pod(request: pytest.FixtureRequest, host_tools: HostTools) -> Iterator[MetricsPod]:
    """hostpath: the default socket; pvc: a socket path with $(MY_NODE_NAME) in it."""
    manifests = render(METRICS_ON, scenario=request.param)
    with sandbox_root(f"metrics-{request.param}") as root:
        pod = Pod(manifests, host_tools, root)
        try:
            pod.start()
            mp = MetricsPod(pod)
            mp.start_exporter()
            yield mp
        finally:
            pod.close()


def test_status_becomes_metrics(metrics_pod: MetricsPod) -> None:
    _, samples = metrics_pod.scrape()
    size = next(a for a in metrics_pod.pod.vineyardd.argv if a.startswith("--size="))
    assert size == "--size=256Mi"
    assert samples["vineyard_up"] == 1
    assert samples["vineyard_memory_limit_bytes"] == 256 * 2**20
    assert samples["vineyard_deferred_requests"] == 0
    assert samples["vineyard_rpc_connections"] == 0
    info = [k for k in samples if k.startswith("vineyard_instance_info{")]
    assert len(info) == 1, samples
    assert 'node="contract-node-1"' in info[0]
    assert 'deployment="local"' in info[0]
    assert 'version="0.24.2"' in info[0]
    assert samples["vineyard_exporter_errors_total"] == 0
    assert any('version="0.1.0"' in k for k in samples if k.startswith("vineyard_exporter_build"))


def test_memory_usage_and_connections_increase_after_a_put(metrics_pod: MetricsPod) -> None:
    _, before = metrics_pod.scrape()
    pod = metrics_pod.pod
    holder = pod.client_process("hold", str(pod.socket_path), "32", "16")
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().startswith('{"object_id"')
        _, during = metrics_pod.scrape()
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(30)
    grown = during["vineyard_memory_usage_bytes"] - before["vineyard_memory_usage_bytes"]
    assert grown >= 32 * 2**20, (before, during)
    assert during["vineyard_ipc_connections"] == before["vineyard_ipc_connections"] + 1
    assert during["vineyard_objects"] == before["vineyard_objects"] + 1  # the tensor, not its blob
    assert during["vineyard_objects_limit_reached"] == 0


def test_output_passes_promtool_check_metrics(metrics_pod: MetricsPod) -> None:
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.fail("promtool not found: run `make setup` (Debian package prometheus)")
    page, _ = metrics_pod.scrape()
    proc = subprocess.run(
        [promtool, "check", "metrics"], input=page, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_exporter_runs_as_the_pod_user_and_never_writes_to_the_socket_volume(
    metrics_pod: MetricsPod,
) -> None:
    proc = metrics_pod.proc
    assert proc is not None
    status = Path(f"/proc/{proc.pid}/status").read_text()
    uid = re.search(r"^Uid:\s+(\d+)", status, re.M)
    assert uid is not None
    assert int(uid.group(1)) == metrics_pod.pod.vineyardd.identity.uid
    mounts = metrics_pod.manifest["volumeMounts"]
    assert [(m["name"], m.get("readOnly")) for m in mounts] == [("vineyard-socket", True)]


def test_a_stopped_vineyardd_is_down_and_the_exporter_stays_healthy(host_tools: HostTools) -> None:
    manifests = render(METRICS_ON)
    with sandbox_root("metrics-restart") as root:
        pod = Pod(manifests, host_tools, root)
        try:
            pod.start()
            mp = MetricsPod(pod)
            mp.start_exporter()
            assert mp.scrape()[1]["vineyard_up"] == 1
            assert pod.client("connect", str(pod.socket_path))["connected"]  # settled
            pod.sigterm(timeout=pod.spec.grace_seconds)
            _, down = mp.scrape()
            assert down["vineyard_up"] == 0
            assert "vineyard_memory_usage_bytes" not in down
            assert down["vineyard_exporter_errors_total"] >= 1
            assert mp.get("/healthz") == "ok\n"  # liveness: the exporter is not restarted
            pod.start_vineyardd()
            pod.wait_serving()
            wait_for(
                lambda: mp.scrape()[1]["vineyard_up"] == 1,
                "vineyard_up 1 again",
                timeout=10,
                interval=0.05,
            )
        finally:
            pod.close()
