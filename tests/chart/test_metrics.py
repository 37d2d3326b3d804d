"""values `metrics`: the exporter container in every vineyardd pod, the metrics Services, the
Prometheus Operator objects only where their API is served (refused otherwise), the dashboard,
the scrape NetworkPolicies, and the chart README naming every metric and alert."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from tests.support.chart_render import HelmFailed, Manifest, find, render
from tests.support.paths import CHART, REPO

API = ("--api-versions", "monitoring.coreos.com/v1")
ON: dict[str, Any] = {"metrics": {"enabled": True}}
POOLS = [
    {"name": "bigmem", "nodeSelector": {"pool": "bigmem"}, "size": "1Gi", "memoryHeadroom": "256Mi"}
]


def metrics(**sections: Any) -> dict[str, Any]:
    return {"metrics": {"enabled": True, **sections}}


def containers(ds: Manifest) -> dict[str, Manifest]:
    return {c["name"]: c for c in ds["spec"]["template"]["spec"]["containers"]}


def arg(container: Manifest, flag: str) -> str:
    (value,) = [a.split("=", 1)[1] for a in container["args"] if a.startswith(f"--{flag}=")]
    return value


def kinds(manifests: list[Manifest]) -> set[tuple[str, str]]:
    return {(m["kind"], m["metadata"]["name"]) for m in manifests}


def refusal(values: dict[str, Any], *extra: str) -> str:
    with pytest.raises(HelmFailed) as failed:
        render(values, extra_args=extra)
    return failed.value.stderr


class TestOffByDefault:
    def test_no_exporter_and_no_metrics_objects(self) -> None:
        manifests = render()
        assert list(containers(find(manifests, "DaemonSet"))) == ["vineyardd"]
        assert not [n for _, n in kinds(manifests) if "metrics" in n or "dashboard" in n]

    def test_operator_objects_stay_off_even_where_the_api_is_served(self) -> None:
        assert kinds(render(ON, extra_args=API)) == kinds(render(ON))


class TestExporterContainer:
    @pytest.mark.parametrize("scenario", ["hostpath", "pvc", "emptydir-sidecar", "local-meta"])
    def test_it_reaches_the_socket_vineyardd_listens_on(self, scenario: str) -> None:
        ds = find(render(ON, scenario=scenario), "DaemonSet")
        c = containers(ds)
        exporter, vineyardd = c["metrics-exporter"], c["vineyardd"]
        assert arg(exporter, "socket") == arg(vineyardd, "socket")
        socket_mount = next(m for m in vineyardd["volumeMounts"] if m["name"] == "vineyard-socket")
        assert exporter["volumeMounts"] == [{**socket_mount, "readOnly": True}]
        # $(MY_NODE_NAME) in the claim's socket path is expanded from the exporter's own env.
        assert [e["name"] for e in exporter["env"]] == ["MY_NODE_NAME"]
        assert exporter["securityContext"] == vineyardd["securityContext"]

    def test_the_defaults(self) -> None:
        exporter = containers(find(render(ON), "DaemonSet"))["metrics-exporter"]
        assert exporter["image"] == "ghcr.io/vineyard-helm/vineyard-exporter:0.1.0"
        assert "command" not in exporter  # the image's entrypoint
        assert arg(exporter, "listen-address") == ":9610"
        assert arg(exporter, "objects-limit") == "1000"
        assert exporter["ports"] == [{"name": "metrics", "containerPort": 9610, "protocol": "TCP"}]
        assert exporter["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        assert "readinessProbe" not in exporter  # the pod is Ready when vineyardd is
        assert exporter["resources"]["limits"] == {"memory": "64Mi"}

    def test_values_reach_it(self) -> None:
        values = metrics(
            exporter={
                "port": 9700,
                "objectsLimit": 0,
                "image": {"tag": "0.2.0", "pullPolicy": "Always"},
            }
        )
        values["global"] = {"imageRegistry": "registry.example.com"}
        exporter = containers(find(render(values), "DaemonSet"))["metrics-exporter"]
        assert exporter["image"] == "registry.example.com/vineyard-helm/vineyard-exporter:0.2.0"
        assert exporter["imagePullPolicy"] == "Always"
        assert arg(exporter, "listen-address") == ":9700"
        assert arg(exporter, "objects-limit") == "0"

    def test_every_pool_gets_one(self) -> None:
        daemonsets = [m for m in render({**ON, "pools": POOLS}) if m["kind"] == "DaemonSet"]
        assert len(daemonsets) == 2
        assert all("metrics-exporter" in containers(ds) for ds in daemonsets)

    def test_on_the_host_network_it_claims_its_host_port(self) -> None:
        exporter = containers(find(render({**ON, "hostNetwork": True}), "DaemonSet"))[
            "metrics-exporter"
        ]
        assert exporter["ports"][0]["hostPort"] == 9610

    def test_the_rpc_port_is_refused(self) -> None:
        stderr = refusal(metrics(exporter={"port": 9600}))
        assert "metrics.exporter.port (9600) is vineyard.rpc.port too" in stderr


class TestServices:
    def test_one_headless_service_per_job(self) -> None:
        manifests = render(ON)
        exporters = find(manifests, "Service", "vineyard-metrics")
        etcd = find(manifests, "Service", "vineyard-etcd-metrics")
        for service, component, port in (
            (exporters, "vineyardd", "metrics"),
            (etcd, "etcd", "client"),
        ):
            spec = service["spec"]
            assert spec["clusterIP"] == "None"
            assert spec["publishNotReadyAddresses"] is True
            assert spec["selector"]["app.kubernetes.io/component"] == component
            assert [p["targetPort"] for p in spec["ports"]] == [port]
            assert service["metadata"]["labels"]["vineyard.v6d.io/metrics"] == component
        # The same selector as the RPC Service: pools' pods are listed too.
        rpc = find(manifests, "Service", "vineyard-rpc")
        assert exporters["spec"]["selector"] == rpc["spec"]["selector"]

    def test_scrape_annotations_name_the_port(self) -> None:
        manifests = render(ON)
        for name, port in (("vineyard-metrics", "9610"), ("vineyard-etcd-metrics", "2379")):
            annotations = find(manifests, "Service", name)["metadata"]["annotations"]
            assert annotations == {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": port,
                "prometheus.io/path": "/metrics",
                "prometheus.io/scheme": "http",
            }

    def test_scrape_annotations_off_and_common_annotations_kept(self) -> None:
        values = {**metrics(scrapeAnnotations=False), "commonAnnotations": {"team": "data"}}
        service = find(render(values), "Service", "vineyard-metrics")
        assert service["metadata"]["annotations"] == {"team": "data"}

    @pytest.mark.parametrize("scenario", ["external-etcd", "local-meta"])
    def test_no_etcd_service_without_the_charts_etcd(self, scenario: str) -> None:
        names = {n for _, n in kinds(render(ON, scenario=scenario))}
        assert "vineyard-metrics" in names
        assert "vineyard-etcd-metrics" not in names


class TestOperatorObjects:
    def test_service_monitors_name_the_jobs_the_rules_select(self) -> None:
        manifests = render(
            metrics(serviceMonitor={"enabled": True, "labels": {"release": "kps"}}), extra_args=API
        )
        monitors = {m["metadata"]["name"]: m for m in manifests if m["kind"] == "ServiceMonitor"}
        assert set(monitors) == {"vineyard", "vineyard-etcd"}
        for name, job, component, port in (
            ("vineyard", "vineyard-metrics", "vineyardd", "metrics"),
            ("vineyard-etcd", "vineyard-etcd-metrics", "etcd", "client"),
        ):
            spec = monitors[name]["spec"]
            assert monitors[name]["metadata"]["labels"]["release"] == "kps"
            assert spec["selector"]["matchLabels"]["vineyard.v6d.io/metrics"] == component
            (endpoint,) = spec["endpoints"]
            assert endpoint["port"] == port
            assert {"targetLabel": "job", "replacement": job} in endpoint["relabelings"]
            assert spec["namespaceSelector"] == {"matchNames": ["vineyard"]}
        # Each selects exactly its Service.
        services = [m for m in manifests if m["kind"] == "Service"]
        for monitor in monitors.values():
            wanted = monitor["spec"]["selector"]["matchLabels"]
            chosen = [
                s["metadata"]["name"]
                for s in services
                if wanted.items() <= s["metadata"]["labels"].items()
            ]
            assert len(chosen) == 1, (monitor["metadata"]["name"], chosen)

    def test_pod_monitors_use_the_same_jobs(self) -> None:
        manifests = render(metrics(podMonitor={"enabled": True}), extra_args=API)
        monitors = [m for m in manifests if m["kind"] == "PodMonitor"]
        jobs = {
            m["metadata"]["name"]: m["spec"]["podMetricsEndpoints"][0]["relabelings"][0]
            for m in monitors
        }
        assert jobs == {
            "vineyard": {"targetLabel": "job", "replacement": "vineyard-metrics"},
            "vineyard-etcd": {"targetLabel": "job", "replacement": "vineyard-etcd-metrics"},
        }
        assert not [m for m in manifests if m["kind"] == "ServiceMonitor"]

    def test_prometheus_rule(self) -> None:
        rule = find(
            render(metrics(prometheusRule={"enabled": True, "labels": {"r": "x"}}), extra_args=API),
            "PrometheusRule",
        )
        assert rule["metadata"]["labels"]["r"] == "x"
        (group,) = rule["spec"]["groups"]
        assert group["name"] == "vineyard.vineyard.vineyard"

    @pytest.mark.parametrize("key", ["serviceMonitor", "podMonitor", "prometheusRule"])
    def test_refused_without_the_api_naming_the_value(self, key: str) -> None:
        stderr = refusal(metrics(**{key: {"enabled": True}}))
        assert (
            f"metrics.{key}.enabled is true, but the cluster does not serve "
            "monitoring.coreos.com/v1" in stderr
        )
        assert "--api-versions monitoring.coreos.com/v1" in stderr

    @pytest.mark.parametrize("key", ["serviceMonitor", "podMonitor", "prometheusRule", "dashboard"])
    def test_refused_without_metrics_enabled(self, key: str) -> None:
        values = {"metrics": {"enabled": False, key: {"enabled": True}}}
        stderr = refusal(values, *API)
        assert f"metrics.{key}.enabled is true but metrics.enabled is false" in stderr

    def test_both_monitors_are_refused(self) -> None:
        stderr = refusal(
            metrics(serviceMonitor={"enabled": True}, podMonitor={"enabled": True}), *API
        )
        assert "Prometheus would scrape every target twice" in stderr


class TestDashboard:
    def test_config_map_for_the_grafana_sidecar(self) -> None:
        values = metrics(
            dashboard={
                "enabled": True,
                "namespace": "monitoring",
                "annotations": {"grafana_folder": "Vineyard"},
            }
        )
        cm = find(render(values), "ConfigMap", "vineyard-dashboard")
        assert cm["metadata"]["namespace"] == "monitoring"
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert cm["metadata"]["annotations"] == {"grafana_folder": "Vineyard"}
        assert json.loads(cm["data"]["vineyard.json"]) == json.loads(
            (CHART / "dashboards" / "vineyard.json").read_text()
        )

    def test_panels_query_only_series_that_exist(self) -> None:
        """Every metric a panel queries is one the exporter or etcd serves (or Prometheus' up),
        filtered by the dashboard's namespace and job variables."""
        dashboard = json.loads((CHART / "dashboards" / "vineyard.json").read_text())
        exported = set(exporter_metrics()) | {"up"}
        etcd = {
            "etcd_server_has_leader",
            "etcd_server_leader_changes_seen_total",
            "etcd_mvcc_db_total_size_in_bytes",
            "etcd_mvcc_db_total_size_in_use_in_bytes",
            "etcd_server_quota_backend_bytes",
            "etcd_debugging_server_alarms",
        }
        functions = {"on", "group_left", "max", "or", "vector", "increase"}
        panels = [p for p in dashboard["panels"] if p["type"] != "row"]
        assert len(panels) >= 10
        for panel in panels:
            for target in panel["targets"]:
                names = set(re.findall(r"\b([a-z_]+)(?=\{|\()", target["expr"])) - functions
                assert names, target["expr"]
                assert names <= exported | etcd, (panel["title"], names - exported - etcd)
                assert 'namespace="$namespace"' in target["expr"], target["expr"]
                assert re.search(r'job="\$(etcd_)?job"', target["expr"]), target["expr"]


PEER = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}


class TestNetworkPolicy:
    def test_scrapers_reach_the_exporters_and_etcd(self) -> None:
        values = {**metrics(scrapeFrom=[PEER]), "networkPolicy": {"enabled": True}}
        manifests = render(values)
        for name, port in (("vineyard-metrics", "metrics"), ("vineyard-etcd-metrics", "client")):
            (rule,) = find(manifests, "NetworkPolicy", name)["spec"]["ingress"]
            assert rule == {"ports": [{"port": port, "protocol": "TCP"}], "from": [PEER]}

    def test_without_scrapers_listed_etcd_stays_closed(self) -> None:
        manifests = render({**ON, "networkPolicy": {"enabled": True}})
        (rule,) = find(manifests, "NetworkPolicy", "vineyard-metrics")["spec"]["ingress"]
        assert "from" not in rule  # anyone may scrape the exporters
        assert ("NetworkPolicy", "vineyard-etcd-metrics") not in kinds(manifests)

    def test_none_without_network_policies(self) -> None:
        assert not [m for m in render(metrics(scrapeFrom=[PEER])) if m["kind"] == "NetworkPolicy"]


def test_every_kubernetes_object_is_valid() -> None:
    values = {
        **metrics(dashboard={"enabled": True}, scrapeFrom=[PEER]),
        "networkPolicy": {"enabled": True},
        "pools": POOLS,
    }
    version = kubernetes_validate.latest_version()
    for manifest in render(values):
        kubernetes_validate.validate(manifest, version, strict=True)


def exporter_metrics() -> list[str]:
    """The metric names the exporter's Go source declares."""
    source = "".join(
        p.read_text()
        for p in (REPO / "tools" / "exporter").glob("*.go")
        if not p.name.endswith("_test.go")
    )
    return sorted(set(re.findall(r'"(vineyard_[a-z_]+)"', source)))


def test_the_readme_documents_every_metric_and_alert() -> None:
    readme = (CHART / "README.md").read_text()
    section = readme.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    names = exporter_metrics()
    assert len(names) >= 12, names
    for name in names:
        assert f"`{name}" in section, f"{name} is not documented in the chart README's Metrics"
    rule = find(render(metrics(prometheusRule={"enabled": True}), extra_args=API), "PrometheusRule")
    for r in rule["spec"]["groups"][0]["rules"]:
        assert f"| `{r['alert']}` |" in section, r["alert"]


@pytest.mark.parametrize(
    ("values", "lines"),
    [
        ({}, []),
        (
            ON,
            [
                "Metrics:  an exporter beside each vineyardd, port 9610, listed by Service "
                "vineyard-metrics; etcd's /metrics by vineyard-etcd-metrics."
            ],
        ),
        (
            {**ON, "networkPolicy": {"enabled": True}},
            [
                "Metrics:  an exporter beside each vineyardd, port 9610, listed by Service "
                "vineyard-metrics; etcd's /metrics by vineyard-etcd-metrics.",
                "          networkPolicy admits nobody new to etcd's client port: list your"
                " Prometheus in",
                "          metrics.scrapeFrom to scrape etcd.",
            ],
        ),
    ],
)
def test_notes_lines(values: dict[str, Any], lines: list[str], tmp_path: Path) -> None:
    """vineyard.metrics.notes, the lines NOTES.txt prints about metrics."""
    chart = tmp_path / "vineyard"
    shutil.copytree(CHART, chart)
    (chart / "templates" / "zz-notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\n"
        'data: {notes: {{ include "vineyard.metrics.notes" . | toJson }}}\n'
    )
    notes = find(render(values, chart=chart, show_only="templates/zz-notes.yaml"), "ConfigMap")
    assert notes["data"]["notes"].splitlines() == (["", *lines] if lines else []), notes
