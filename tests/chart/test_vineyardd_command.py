"""The vineyardd command line of every scenario, parsed flag by flag."""

from __future__ import annotations

import re
import shlex

import pytest

from tests.support.chart_render import Manifest, find, render, scenario_values
from tests.support.paths import SCENARIOS

FLAG = re.compile(r"^--(?P<name>[a-z_]+)=(?P<value>.*)$")
# Every flag vineyardd 0.24.2 accepts that the chart sets (from `vineyardd --helpfull`).
KNOWN_FLAGS = {
    "socket",
    "size",
    "reserve_memory",
    "meta",
    "etcd_endpoint",
    "etcd_prefix",
    "etcd_cmd",
    "meta_timeout",
    "rpc",
    "rpc_socket_port",
    "spill_path",
    "spill_lower_rate",
    "spill_upper_rate",
    "compression",
    "logtostderr",
    "stream_threshold",
}


def vineyardd(manifests: list[Manifest]) -> dict:
    pod = find(manifests, "DaemonSet")["spec"]["template"]["spec"]
    return next(c for c in pod["containers"] if c["name"] == "vineyardd")


def flags(container: dict) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for arg in container["args"]:
        match = FLAG.match(arg)
        assert match, f"{arg!r} is not one --flag=value item"
        assert match["name"] not in parsed, f"--{match['name']} given twice"
        parsed[match["name"]] = match["value"]
    return parsed


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_command_is_the_bare_binary_and_args_are_separate_flags(
    scenario: str, rendered_scenarios: dict
) -> None:
    container = vineyardd(rendered_scenarios[scenario])
    assert container["command"] == ["vineyardd"]
    parsed = flags(container)
    assert set(parsed) <= KNOWN_FLAGS
    assert all(value.strip() == value and " " not in value for value in parsed.values())


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_size_is_never_empty_and_matches_values(scenario: str, rendered_scenarios: dict) -> None:
    parsed = flags(vineyardd(rendered_scenarios[scenario]))
    expected = scenario_values(scenario).get("vineyard", {}).get("size", "256Mi")
    assert parsed["size"] == expected


def test_unlimited_size_omits_the_flag() -> None:
    assert "size" not in flags(vineyardd(render({"vineyard": {"size": None}, "resources": {}})))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_rpc_port_container_port_and_service_agree(scenario: str, rendered_scenarios: dict) -> None:
    manifests = rendered_scenarios[scenario]
    container = vineyardd(manifests)
    parsed = flags(container)
    services = [
        m for m in manifests if m["kind"] == "Service" and m["metadata"]["name"].endswith("-rpc")
    ]
    if parsed["rpc"] == "false":
        assert "rpc_socket_port" not in parsed
        assert "ports" not in container
        assert services == []
        return
    (port,) = container["ports"]
    assert port["containerPort"] == int(parsed["rpc_socket_port"])
    (service,) = services
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] == port["name"]
    # With etcd, liveness is the socket plus the check that etcd still holds vineyardd's
    # registration; without, the RPC port (a probe distinct from readiness).
    if parsed["meta"] == "etcd":
        assert "/proc/net/unix" in container["livenessProbe"]["exec"]["command"][2]
    else:
        assert container["livenessProbe"]["tcpSocket"]["port"] == port["name"]


def test_custom_rpc_port_moves_container_port_service_target_and_probe() -> None:
    manifests = render({"vineyard": {"rpc": {"port": 9700}}, "rpcService": {"port": 19600}})
    container = vineyardd(manifests)
    assert flags(container)["rpc_socket_port"] == "9700"
    assert container["ports"][0]["containerPort"] == 9700
    service = find(manifests, "Service", "vineyard-rpc")
    assert service["spec"]["ports"][0]["port"] == 19600


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_etcd_flags_point_at_the_etcd_the_scenario_uses(
    scenario: str, rendered_scenarios: dict
) -> None:
    manifests = rendered_scenarios[scenario]
    parsed = flags(vineyardd(manifests))
    values = scenario_values(scenario)
    if parsed["meta"] == "local":
        assert not any(k.startswith("etcd") for k in parsed)
        assert not [m for m in manifests if m["kind"] == "StatefulSet"]
        return
    external = values.get("etcd", {}).get("external", {}).get("endpoints")
    if external:
        assert parsed["etcd_endpoint"] == ",".join(external)
    else:
        service = find(manifests, "Service", "etcd-for-vineyard")
        port = service["spec"]["ports"][0]["port"]
        assert (
            parsed["etcd_endpoint"] == f"http://etcd-for-vineyard.vineyard.svc.cluster.local:{port}"
        )
    # THE TRAP: vineyardd must have no etcd it could launch.
    assert parsed["etcd_cmd"].startswith("/nonexistent/")
    init = {
        c["name"]: c
        for c in find(manifests, "DaemonSet")["spec"]["template"]["spec"]["initContainers"]
    }
    wait_env = {e["name"]: e["value"] for e in init["wait-for-etcd"]["env"]}
    assert wait_env["ETCD_ENDPOINTS"] == parsed["etcd_endpoint"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_socket_flag_lives_in_the_socket_volume(scenario: str, rendered_scenarios: dict) -> None:
    container = vineyardd(rendered_scenarios[scenario])
    socket = flags(container)["socket"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert socket.startswith(mounts["vineyard-socket"] + "/")
    for probe in ("startupProbe", "readinessProbe"):
        command = container[probe]["exec"]["command"]
        assert command[:2] == ["sh", "-c"]
        # A listening socket bound at the flag's path, as /proc/net/unix lists it.
        grep, quiet, pattern, table = shlex.split(command[2])
        assert (grep, quiet, table) == ("grep", "-qE", "/proc/net/unix")
        path = socket.replace("$(MY_NODE_NAME)", "${MY_NODE_NAME}")
        # Only "." needs escaping: the schema keeps other regex characters out of socket paths,
        # and ${MY_NODE_NAME} is expanded by the shell before grep sees the pattern.
        assert not re.search(r"[\\^*+?()\[\]|]", path)
        assert pattern == " 00010000 0001 01 +[0-9]+ " + path.replace(".", "\\.") + "$"


def test_spill_flags_and_volume_appear_only_when_a_path_is_set() -> None:
    assert "spill_path" not in flags(vineyardd(render()))
    container = vineyardd(
        render({"vineyard": {"spill": {"path": "/spill", "lowerRate": 0.2, "upperRate": 0.7}}})
    )
    parsed = flags(container)
    assert (parsed["spill_path"], parsed["spill_lower_rate"], parsed["spill_upper_rate"]) == (
        "/spill",
        "0.2",
        "0.7",
    )
    assert {"name": "spill", "mountPath": "/spill"} in container["volumeMounts"]


def test_extra_args_are_appended_one_item_each() -> None:
    container = vineyardd(render({"vineyard": {"extraArgs": ["--allocator=mimalloc"]}}))
    assert container["args"][-1] == "--allocator=mimalloc"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_logs_go_to_stderr_only(scenario: str, rendered_scenarios: dict) -> None:
    """glog's --logtostderr: every line to stderr (kubectl logs), no log file in $TMPDIR (the
    64Mi /tmp emptyDir). Measured with the real vineyardd 0.24.2 and 300 put/get requests:
    without the flag one vineyard.*.log.INFO.* file appears in $TMPDIR, with it none, and stderr
    carries the same lines."""
    parsed = flags(vineyardd(rendered_scenarios[scenario]))
    assert parsed["logtostderr"] == "true"
    # These would bring the files back (alsologtostderr, stderrthreshold) or only move them.
    assert not {"alsologtostderr", "stderrthreshold", "log_dir"} & set(parsed)


def test_identity_env_comes_from_the_downward_api() -> None:
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in vineyardd(render())["env"]}
    assert env["MY_NODE_NAME"] == "spec.nodeName"
    assert env["MY_POD_NAME"] == "metadata.name"
    assert env["MY_HOST_NAME"] == "status.podIP"


def test_config_checksum_changes_with_the_command_and_only_then() -> None:
    def checksum(values: dict) -> str:
        return find(render(values), "DaemonSet")["spec"]["template"]["metadata"]["annotations"][
            "checksum/config"
        ]

    assert checksum({}) == checksum({"podLabels": {"a": "b"}})
    assert checksum({}) != checksum({"vineyard": {"size": "128Mi"}})
