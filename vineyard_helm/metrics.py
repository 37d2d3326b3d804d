"""vineyardd's memory and etcd's database size for ``status``, read from the same /metrics pages
Prometheus scrapes, through the API server's pod proxy
(``/api/v1/namespaces/<ns>/pods/<pod>:<port>/proxy/metrics``).

Which pods and ports to ask comes from the release as helm returns it, never from Python
defaults: vineyardd's exporter is the container ``metrics-exporter`` with the port named
``metrics`` in a vineyardd DaemonSet's pod template (present only with ``metrics.enabled``);
etcd serves /metrics on the port named ``client`` of the etcd StatefulSet's template.

How the API server is reached: the official ``kubernetes`` client, an optional extra
(``pip install 'vineyard-helm[status]'``). It reads the same kubeconfig and context helm is given
(and KUBECONFIG, exec plugins, OIDC, in-cluster service accounts as helm does), which a urllib
client would have to re-implement; ``kubectl get --raw`` would add a second binary to find.
Without the client, or when the API server refuses, status says so per pod instead of failing.
A pod whose container is not running (no container ID, as on kwok's fake nodes) is reported
unreachable without asking the API server, which would otherwise dial an address no process
listens on.
The pages are parsed with ``prometheus_client.parser`` (same extra): the exposition format has
escapes, comments and histograms that a hand-written parser would have to get right.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from typing import Any

from .records import EtcdMetrics, MetricsReport, PodStatus, VineyarddMetrics, WorkloadStatus

#: The chart's exporter container and its port's name (templates/_metrics.tpl).
EXPORTER_CONTAINER = "metrics-exporter"
EXPORTER_PORT_NAME = "metrics"
#: The etcd container's client port's name (templates/etcd-statefulset.yaml).
ETCD_PORT_NAME = "client"
#: Seconds for one proxied GET (a pod the API server cannot reach answers 502/503 sooner).
REQUEST_TIMEOUT = 5.0
#: Proxied GETs under way at once.
CONCURRENCY = 8

INSTALL_HINT = "pip install 'vineyard-helm[status]'"
METRICS_OFF = "metrics.enabled is off"

_Object = Mapping[str, Any]
Samples = dict[str, list[tuple[dict[str, str], float]]]
Target = tuple[str, int]  # container name, port


def template_port(workload: _Object, port_name: str, container: str | None = None) -> Target | None:
    """The container (``container`` when given) whose port is named ``port_name`` in the
    workload's pod template, and that port; None when there is none."""
    spec = ((workload.get("spec") or {}).get("template") or {}).get("spec") or {}
    for item in spec.get("containers") or []:
        if container is not None and item.get("name") != container:
            continue
        for port in item.get("ports") or []:
            if port.get("name") == port_name and port.get("containerPort") is not None:
                return str(item.get("name", "")), int(port["containerPort"])
    return None


def not_running(pod: _Object | None, container: str) -> str:
    """Why nothing can answer on the container's port ("" when it runs, or when the pod is not
    known). A started container has a container ID; kwok's fake pods have none, so the API
    server is never asked to dial their made-up addresses."""
    if pod is None:
        return ""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    found = next((c for c in statuses if c.get("name") == container), None)
    if found is None:
        return f"container {container} not started"
    if "running" not in (found.get("state") or {}):
        state = found.get("state") or {}
        detail = state.get("waiting") or state.get("terminated") or {}
        reason = f": {detail['reason']}" if detail.get("reason") else ""
        return f"container {container} not running{reason}"
    if not found.get("containerID"):
        return f"container {container} not running (no container ID)"
    return ""


def parse(page: str) -> Samples:
    """The samples of a Prometheus text page: name -> [(labels, value)]."""
    from prometheus_client.parser import text_string_to_metric_families

    samples: Samples = {}
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples


def _value(samples: Samples, name: str, **labels: str) -> float | None:
    for sample_labels, value in samples.get(name, []):
        if all(sample_labels.get(k) == v for k, v in labels.items()):
            return value
    return None


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def vineyardd_from_page(pod: PodStatus, page: str) -> VineyarddMetrics:
    try:
        samples = parse(page)
    except ValueError as error:  # not a Prometheus page
        return VineyarddMetrics(pod=pod.name, node=pod.node, state=f"unreadable page: {error}")
    up = _value(samples, "vineyard_up")
    info = samples.get("vineyard_instance_info") or [({}, 0.0)]
    return VineyarddMetrics(
        pod=pod.name,
        node=pod.node,
        state="ok" if up == 1 else "vineyardd down",
        memory_used=_int(_value(samples, "vineyard_memory_usage_bytes")),
        memory_size=_int(_value(samples, "vineyard_memory_limit_bytes")),
        instance_node=info[0][0].get("node", ""),
    )


def etcd_from_page(pod: PodStatus, page: str) -> EtcdMetrics:
    try:
        samples = parse(page)
    except ValueError as error:  # not a Prometheus page
        return EtcdMetrics(pod=pod.name, node=pod.node, state=f"unreadable page: {error}")
    alarms = sorted(
        labels.get("alarm_type", "")
        for labels, value in samples.get("etcd_debugging_server_alarms", [])
        if value >= 1
    )
    leader = _value(samples, "etcd_server_has_leader")
    return EtcdMetrics(
        pod=pod.name,
        node=pod.node,
        state="ok",
        db_size=_int(_value(samples, "etcd_mvcc_db_total_size_in_bytes")),
        db_in_use=_int(_value(samples, "etcd_mvcc_db_total_size_in_use_in_bytes")),
        quota=_int(_value(samples, "etcd_server_quota_backend_bytes")),
        alarms=tuple(alarms),
        has_leader=None if leader is None else leader == 1,
    )


class ProxyUnavailable(Exception):
    """No client for the API server (not installed, no usable kubeconfig)."""


def core_api(*, kubeconfig: str | None, context: str | None) -> Any:
    """The kubernetes client's CoreV1Api for the kubeconfig and context helm is given (helm's
    defaults, then the in-cluster service account, when neither is); ProxyUnavailable when the
    client is not installed or the kubeconfig is not usable."""
    try:
        import kubernetes
    except ImportError as error:
        raise ProxyUnavailable(
            f"the kubernetes Python client is not installed ({INSTALL_HINT})"
        ) from error
    client: Any = kubernetes.client  # the kubernetes package has no type information
    config: Any = kubernetes.config
    try:
        if kubeconfig is None and context is None:
            try:
                api_client = config.new_client_from_config()
            except config.ConfigException:
                config.load_incluster_config()  # as helm does inside a pod
                api_client = client.ApiClient()
        else:
            api_client = config.new_client_from_config(config_file=kubeconfig, context=context)
    except Exception as error:  # the client raises ConfigException and plain errors
        raise ProxyUnavailable(f"no usable kubeconfig: {error}") from error
    return client.CoreV1Api(api_client)


class Proxy:
    """GET a pod's /metrics through the API server with the kubernetes client."""

    def __init__(self, *, kubeconfig: str | None, context: str | None) -> None:
        self._api = core_api(kubeconfig=kubeconfig, context=context)

    def get(self, namespace: str, pod: str, port: int) -> str:
        text = self._api.connect_get_namespaced_pod_proxy_with_path(
            f"{pod}:{port}", namespace, "metrics", _request_timeout=REQUEST_TIMEOUT
        )
        return str(text)


def describe_error(error: BaseException) -> str:
    """``forbidden: ...`` when RBAC refuses the proxy, else ``unreachable: ...``."""
    status = getattr(error, "status", None)
    reason = str(getattr(error, "reason", "") or "").strip()
    body = str(getattr(error, "body", "") or "").strip()
    if status == 403:
        return f"forbidden: {reason or 'Forbidden'} (needs get on pods/proxy)"
    if status is not None:
        try:  # the API server's answer is a Status object; its message says what failed
            detail = str(json.loads(body).get("message") or reason)
        except (ValueError, AttributeError):
            detail = body.splitlines()[0] if body else reason
        detail = detail[:200]
        return f"unreachable: HTTP {status} {detail}".rstrip()
    text = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
    return f"unreachable: {text}"


async def collect(
    *,
    namespace: str,
    vineyardd: Iterable[tuple[WorkloadStatus, _Object | None]],
    etcd: tuple[WorkloadStatus, _Object | None] | None,
    kubeconfig: str | None,
    context: str | None,
    pods: Mapping[str, _Object] | None = None,
    proxy: Proxy | None = None,
) -> MetricsReport:
    """Scrape each vineyardd pod's exporter (where the DaemonSet has one) and each etcd member.
    ``vineyardd`` pairs each DaemonSet's status with its object as helm returned it; ``pods``
    are the pods as helm returned them, by name (a container that is not running is reported
    without asking the API server)."""
    known = pods or {}
    vineyardd_jobs: list[tuple[PodStatus, Target | None]] = []
    for workload, obj in vineyardd:
        target = template_port(obj or {}, EXPORTER_PORT_NAME, EXPORTER_CONTAINER)
        vineyardd_jobs += [(pod, target) for pod in workload.pods]
    etcd_jobs: list[tuple[PodStatus, Target | None]] = []
    if etcd is not None:
        target = template_port(etcd[1] or {}, ETCD_PORT_NAME)
        etcd_jobs = [(pod, target) for pod in etcd[0].pods]
    jobs = vineyardd_jobs + etcd_jobs
    metrics_on = any(target is not None for _, target in vineyardd_jobs)
    note = "" if metrics_on or not vineyardd_jobs else METRICS_OFF
    idle = {
        pod.name: "unreachable: pod not scheduled" if not pod.node else f"unreachable: {why}"
        for pod, target in jobs
        if target is not None
        and (not pod.node or (why := not_running(known.get(pod.name), target[0])))
    }
    unavailable = ""
    if proxy is None and any(t is not None and p.name not in idle for p, t in jobs):
        try:
            proxy = await asyncio.to_thread(Proxy, kubeconfig=kubeconfig, context=context)
        except ProxyUnavailable as error:
            unavailable = f"unavailable: {error}"
    gate = asyncio.Semaphore(CONCURRENCY)

    async def fetch(pod: PodStatus, target: Target | None) -> str | BaseException | None:
        if target is None:
            return None
        if pod.name in idle:
            return ProxyUnavailable(idle[pod.name])
        if proxy is None:
            return ProxyUnavailable(unavailable)
        async with gate:
            try:
                return await asyncio.to_thread(proxy.get, namespace, pod.name, target[1])
            except Exception as error:
                return error

    pages = await asyncio.gather(*(fetch(pod, target) for pod, target in jobs))
    vineyardd_out: list[VineyarddMetrics] = []
    for (pod, _), page in zip(vineyardd_jobs, pages[: len(vineyardd_jobs)], strict=True):
        if page is None:
            vineyardd_out.append(VineyarddMetrics(pod=pod.name, node=pod.node, state=METRICS_OFF))
        elif isinstance(page, BaseException):
            vineyardd_out.append(
                VineyarddMetrics(pod=pod.name, node=pod.node, state=_state(page, unavailable))
            )
        else:
            vineyardd_out.append(vineyardd_from_page(pod, page))
    etcd_out: list[EtcdMetrics] = []
    for (pod, _), page in zip(etcd_jobs, pages[len(vineyardd_jobs) :], strict=True):
        if page is None:
            etcd_out.append(EtcdMetrics(pod=pod.name, node=pod.node, state="no client port"))
        elif isinstance(page, BaseException):
            etcd_out.append(
                EtcdMetrics(pod=pod.name, node=pod.node, state=_state(page, unavailable))
            )
        else:
            etcd_out.append(etcd_from_page(pod, page))
    return MetricsReport(
        vineyardd=tuple(vineyardd_out),
        etcd=tuple(etcd_out),
        metrics_enabled=metrics_on,
        note=unavailable or note,
    )


def _state(error: BaseException, unavailable: str) -> str:
    if isinstance(error, ProxyUnavailable):
        return str(error) or unavailable
    return describe_error(error)
