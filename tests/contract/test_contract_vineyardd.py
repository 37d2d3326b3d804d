"""The chart's vineyardd configuration, run for real: every ci scenario's rendered DaemonSet pod
(init containers, vineyardd's command line, probes) and `helm test` pods, against the real
vineyardd 0.24.2 binary, the real vineyard client and a real etcd. See vineyardd_harness.py for
what is mapped onto this host and why."""

from __future__ import annotations

import json
import re
import shutil
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from chart_render import SCENARIOS
from vineyardd_harness import Identity, Pod, parse_quantity

BENCH_MIB = 64
BENCH_REPEAT = 5
ROUNDTRIP_MIB = 8


def uses_etcd(rendered: list[dict[str, Any]]) -> bool:
    ds = next(m for m in rendered if m["kind"] == "DaemonSet")
    vineyardd = next(
        c for c in ds["spec"]["template"]["spec"]["containers"] if c["name"] == "vineyardd"
    )
    return "--meta=etcd" in vineyardd["args"]


def wait_for(condition: Any, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())


def proc_ids(pid: int) -> tuple[int, int, set[int]]:
    status = Path(f"/proc/{pid}/status").read_text()
    uid = int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))  # type: ignore[union-attr]
    gid = int(re.search(r"^Gid:\s+(\d+)", status, re.M).group(1))  # type: ignore[union-attr]
    groups = {int(g) for g in re.search(r"^Groups:(.*)$", status, re.M).group(1).split()}  # type: ignore[union-attr]
    return uid, gid, groups


# ---------------------------------------------------------------------------------------------
# A live pod per scenario
# ---------------------------------------------------------------------------------------------


class TestServing:
    def test_runs_as_the_pod_user_with_only_mapped_paths(self, live_pod: Pod) -> None:
        pod = live_pod
        changed = {
            a.split("=", 1)[0]
            for a, b in zip(pod.vineyardd.expanded_argv, pod.vineyardd.argv, strict=True)
            if a != b
        }
        assert changed <= {"--socket", "--spill_path", "--etcd_endpoint"}, changed
        assert "--socket" in changed
        assert not any("$(" in a for a in pod.vineyardd.argv), (
            "an unexpanded $(VAR) reached vineyardd"
        )
        assert pod.socket_path.is_relative_to(pod.root)
        uid, gid, groups = proc_ids(pod.daemon.pid)  # type: ignore[union-attr]
        ident = pod.vineyardd.identity
        assert (uid, gid, groups) == (ident.uid, ident.gid, set(ident.groups))
        assert uid != 0

    def test_socket_directory_is_gated_as_the_chart_says(self, live_pod: Pod) -> None:
        pod = live_pod
        sock_dir = pod.socket_path.parent
        st = sock_dir.stat()
        socket_volume = next(v for v in pod.spec.spec["volumes"] if v["name"] == "vineyard-socket")
        if "emptyDir" in socket_volume:
            # Only containers of this pod see an emptyDir: the pod is the gate.
            return
        assert stat.S_IMODE(st.st_mode) & 0o007 == 0, (
            f"socket directory open to others: {oct(st.st_mode)}"
        )
        assert st.st_uid == pod.vineyardd.identity.uid
        assert st.st_gid == 2000

    def test_client_outside_the_socket_group_is_refused(self, live_pod: Pod) -> None:
        pod = live_pod
        socket_volume = next(v for v in pod.spec.spec["volumes"] if v["name"] == "vineyard-socket")
        if "emptyDir" in socket_volume:
            pytest.skip("emptyDir: no pod outside this one can mount the socket")
        stranger = Identity(1001, 1001, (), (), True)
        refused = pod.client("raw-connect", str(pod.socket_path), identity=stranger)
        assert refused == {"connected": False, "errno": "EACCES"}
        assert pod.client("raw-connect", str(pod.socket_path))["connected"]
        assert pod.client("connect", str(pod.socket_path))["connected"]

    def test_put_and_get_over_the_socket(self, live_pod: Pod) -> None:
        result = live_pod.client("roundtrip", str(live_pod.socket_path), str(ROUNDTRIP_MIB))
        assert result["equal"]
        assert result["nbytes"] == ROUNDTRIP_MIB << 20

    def test_put_and_get_over_rpc_on_the_rendered_port(self, live_pod: Pod) -> None:
        pod = live_pod
        if pod.rpc_port is None:
            assert not any(port == 9600 for _, port in pod.sandbox.listening()), (
                "RPC is off but 9600 listens"
            )
            pytest.skip("RPC disabled in this scenario (checked: nothing listens)")
        rendered_port = pod.vineyardd.raw["ports"][0]["containerPort"]
        assert pod.rpc_port == rendered_port
        result = pod.client(
            "rpc-roundtrip", "127.0.0.1", str(pod.rpc_port), str(ROUNDTRIP_MIB), netns=True
        )
        assert result["equal"]

    def test_size_is_enforced(self, live_pod: Pod) -> None:
        size = live_pod.flag("size")
        assert size, "the chart always renders --size"
        too_big = parse_quantity(size) + (16 << 20)
        result = live_pod.client("oversize", str(live_pod.socket_path), str(too_big))
        assert result["raised"] == "NotEnoughMemoryException", result

    def test_second_client_process_sees_the_first_ones_object(self, live_pod: Pod) -> None:
        holder = live_pod.client_process("hold", str(live_pod.socket_path), str(ROUNDTRIP_MIB), "7")
        try:
            assert holder.stdout is not None
            assert holder.stdin is not None

            object_id = json.loads(holder.stdout.readline())["object_id"]
            raw_id = re.search(r"o[0-9a-f]+", object_id).group(0)  # type: ignore[union-attr]
            result = live_pod.client(
                "fetch", str(live_pod.socket_path), raw_id, str(ROUNDTRIP_MIB), "7"
            )
            assert result["equal"]
            holder.stdin.write("\n")
            holder.stdin.flush()
            assert holder.wait(30) == 0
        finally:
            if holder.poll() is None:
                holder.kill()
                holder.wait(10)

    def test_put_get_throughput(self, live_pod: Pod, record_figures: Any) -> None:
        pod = live_pod
        scenario = pod.scenario  # type: ignore[attr-defined]
        ipc = pod.client("bench", str(pod.socket_path), str(BENCH_MIB), str(BENCH_REPEAT))
        figures = {"ipc_put_mib_s": ipc["put_mib_s"], "ipc_get_mib_s": ipc["get_mib_s"]}
        if pod.rpc_port is not None:
            rpc = pod.client(
                "rpc-bench",
                "127.0.0.1",
                str(pod.rpc_port),
                str(BENCH_MIB),
                str(BENCH_REPEAT),
                netns=True,
            )
            figures |= {"rpc_put_mib_s": rpc["put_mib_s"], "rpc_get_mib_s": rpc["get_mib_s"]}
        record_figures(scenario, **figures)
        print(
            f"\n{scenario}: startup {pod.timing}; "
            f"{BENCH_MIB} MiB x{BENCH_REPEAT} medians (MiB/s): {figures}"
        )
        assert all(v > 0 for v in figures.values())


# ---------------------------------------------------------------------------------------------
# Fresh pods, stopped on purpose
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_probes_pass_while_serving_and_fail_after_shutdown(scenario: str, new_pod: Any) -> None:
    pod: Pod = new_pod(scenario).start()
    kinds = ("startupProbe", "readinessProbe", "livenessProbe")
    assert {k: pod.probe(k) for k in kinds} == dict.fromkeys(kinds, True)
    pod.sigterm(timeout=pod.spec.grace_seconds)
    assert {k: pod.probe(k) for k in kinds} == dict.fromkeys(kinds, False)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_sigterm_exits_within_the_grace_period(
    scenario: str, new_pod: Any, record_figures: Any
) -> None:
    pod: Pod = new_pod(scenario).start()
    grace = pod.spec.grace_seconds
    rc, seconds = pod.sigterm(timeout=grace)
    record_figures(scenario, sigterm_exit_s=seconds, sigterm_rc=rc)
    print(f"\n{scenario}: SIGTERM -> exit {rc} after {seconds * 1000:.1f} ms (grace {grace} s)")
    assert seconds < grace
    assert rc == 0, pod.daemon.output()[-2000:]  # type: ignore[union-attr]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_helm_test_pods_pass_live_and_fail_stopped(scenario: str, new_pod: Any) -> None:
    pod: Pod = new_pod(scenario)
    tests = pod.helm_test_pods()
    if not tests:
        assert pod.rpc_port is None, "RPC is on but no helm test checks it"
        assert not pod.etcd_endpoints, "etcd is configured but no helm test checks it"
        pytest.skip("no helm test pods: RPC off and no etcd")
    pod.start()
    live = {t["metadata"]["name"]: pod.run_helm_test(t) for t in tests}
    assert all(rc == 0 for rc, _ in live.values()), live
    pod.sigterm(timeout=pod.spec.grace_seconds)
    pod.stop_etcd()
    stopped = {t["metadata"]["name"]: pod.run_helm_test(t) for t in tests}
    assert all(rc != 0 for rc, _ in stopped.values()), stopped


# ---------------------------------------------------------------------------------------------
# THE TRAP: an unanswered etcd must never make vineyardd start an etcd of its own
# ---------------------------------------------------------------------------------------------


def observe_until_exit(pod: Pod, timeout: float) -> dict[str, Any]:
    """Watches the sandbox while vineyardd runs: etcd processes, listeners, the readiness probe."""
    assert pod.daemon is not None
    seen_etcd: set[str] = set()
    listeners: set[tuple[str, int]] = set()
    ready = []
    deadline = time.monotonic() + timeout
    while pod.daemon.poll() is None and time.monotonic() < deadline:
        seen_etcd |= {cmd for _, exe, cmd in pod.sandbox.processes() if exe == "etcd"}
        listeners |= pod.sandbox.listening()
        if len(ready) < 3:
            ready.append(pod.probe("readinessProbe"))
        time.sleep(0.05)
    return {
        "etcd": seen_etcd,
        "listeners": listeners,
        "ready": ready,
        "rc": pod.daemon.poll(),
        "seconds": time.monotonic() - pod.daemon.started,
    }


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_unanswered_etcd_makes_vineyardd_exit_without_launching_one(
    scenario: str,
    new_pod: Any,
    rendered: dict[str, Any],
    record_figures: Any,
) -> None:
    pod: Pod = new_pod(scenario)
    if not uses_etcd(rendered[scenario]):
        assert not any(a.startswith("--etcd") for a in pod.vineyardd.argv)
        assert "wait-for-etcd" not in pod.spec.init_container_names()
        pytest.skip("meta=local: no etcd configured (checked: no --etcd flags, no wait-for-etcd)")
    # The image carries an etcd (upstream's bundles v3.5.9): the trap is armed.
    assert shutil.which("etcd", path=pod.vineyardd.env["PATH"]), "no etcd on the container PATH"
    rc, out = pod.run_init_container("prepare-socket-dir")
    assert rc == 0, out
    before = pod.sandbox.listening()
    assert before == set()
    pod.start_vineyardd()
    meta_timeout = float(pod.flag("meta_timeout") or 60)
    seen = observe_until_exit(pod, timeout=meta_timeout + 30)
    record_figures(scenario, trap_exit_s=seen["seconds"], trap_rc=seen["rc"])
    print(
        f"\n{scenario}: etcd unanswered -> vineyardd exit {seen['rc']} "
        f"after {seen['seconds']:.2f} s"
    )
    assert seen["etcd"] == set(), f"vineyardd launched an etcd: {seen['etcd']}"
    assert seen["listeners"] == before, f"something new listened: {seen['listeners'] - before}"
    assert seen["rc"] not in (None, 0), "vineyardd carried on (or exited 0) without its etcd"
    assert not any(seen["ready"]), "the pod would have reported Ready"
    assert not pod.socket_path.exists()


def test_trap_detector_sees_the_launch_when_etcd_cmd_is_dropped(new_pod: Any) -> None:
    """Control: the same rendered command without the chart's --etcd_cmd does launch an etcd, so
    the test above would see one."""
    pod: Pod = new_pod("hostpath")
    argv = [a for a in pod.vineyardd.argv if not a.startswith("--etcd_cmd=")]
    assert argv != pod.vineyardd.argv
    rc, out = pod.run_init_container("prepare-socket-dir")
    assert rc == 0, out
    pod.start_vineyardd(argv)
    launched: set[str] = set()
    try:
        assert wait_for(
            lambda: (
                launched.update(cmd for _, exe, cmd in pod.sandbox.processes() if exe == "etcd")
                or launched
            ),
            timeout=30,
        )
        assert wait_for(lambda: any(p != 9600 for _, p in pod.sandbox.listening()), timeout=30)
    finally:
        pod.close()
        for cmd in launched:  # vineyardd puts its etcd's data in /tmp, whatever TMPDIR says
            m = re.search(r"--data-dir (/tmp/[\w.-]+\.etcd\.\w+)(?:\s|$)", cmd)
            if m:
                shutil.rmtree(m.group(1), ignore_errors=True)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_wait_for_etcd_holds_until_etcd_answers(
    scenario: str,
    new_pod: Any,
    rendered: dict[str, Any],
    record_figures: Any,
) -> None:
    if not uses_etcd(rendered[scenario]):
        pytest.skip("meta=local: no wait-for-etcd init container")
    pod: Pod = new_pod(scenario)
    init = pod.init_container("wait-for-etcd")
    waiting = pod.sandbox.spawn(
        init.argv, env=init.env, identity=init.identity, name="wait-for-etcd"
    )
    assert wait_for(lambda: waiting.output().count("waiting for etcd") >= 3, timeout=20), (
        waiting.output()
    )
    assert waiting.poll() is None, f"exited {waiting.poll()} with no etcd: {waiting.output()}"
    t0 = time.monotonic()
    pod.start_etcd()
    rc = waiting.wait(15)
    released = time.monotonic() - t0
    record_figures(scenario, wait_for_etcd_release_s=released)
    print(f"\n{scenario}: wait-for-etcd exited {rc} {released:.2f} s after etcd started")
    assert rc == 0, waiting.output()
