"""Contract fixtures: each ci scenario's rendered vineyardd pod, run for real in a sandbox."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.contract.vineyardd_harness import HarnessError, HostTools, Pod, sandbox_root
from tests.support.chart_render import render
from tests.support.figures import record_figures as write_figures
from tests.support.paths import REPO, SCENARIOS

RESULTS = REPO / ".cache" / "contract-results.json"

# Figures measured during the session, per scenario; written to RESULTS and printed at the end.
MEASURED: dict[str, dict[str, Any]] = {}


def record(scenario: str, **figures: Any) -> None:
    MEASURED.setdefault(scenario, {}).update(figures)


@pytest.fixture(scope="session")
def record_figures() -> Any:
    return record


@pytest.fixture(scope="session")
def host_tools() -> HostTools:
    if os.geteuid() != 0:
        pytest.skip(
            "the contract suite needs root: network/PID namespaces and setpriv to the pod's user"
        )
    try:
        return HostTools.find()
    except HarnessError as e:
        pytest.fail(str(e))


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {name: render(scenario=name) for name in SCENARIOS}


@pytest.fixture
def new_pod(host_tools: HostTools, rendered: dict[str, list[dict[str, Any]]]) -> Iterator[Any]:
    """Factory: a fresh, not yet started pod of a scenario; each is torn down after the test."""
    with contextlib.ExitStack() as stack:

        def make(scenario: str) -> Pod:
            pod = Pod(rendered[scenario], host_tools, stack.enter_context(sandbox_root(scenario)))
            stack.callback(pod.close)
            return pod

        yield make


@pytest.fixture(scope="module", params=SCENARIOS)
def live_pod(
    request: pytest.FixtureRequest, host_tools: HostTools, rendered: dict[str, list[dict[str, Any]]]
) -> Iterator[Pod]:
    """A scenario's pod, started once per module: etcd if configured, init containers, vineyardd."""
    scenario = request.param
    with sandbox_root(scenario) as root:
        pod = Pod(rendered[scenario], host_tools, root)
        try:
            pod.start()
            assert pod.timing is not None
            record(
                scenario,
                socket_s=pod.timing.socket_s,
                accept_s=pod.timing.accept_s,
                connect_s=pod.timing.connect_s,
            )
            pod.scenario = scenario  # type: ignore[attr-defined]
            yield pod
        finally:
            pod.close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not MEASURED:
        return
    write_figures(RESULTS, MEASURED)
    tr = terminalreporter
    tr.section("vineyardd contract figures (real vineyardd 0.24.2, this host)")
    header = (
        f"{'scenario':18} {'socket ms':>9} {'accept ms':>9} {'client ms':>9} "
        f"{'ipc put':>9} {'ipc get':>9} {'rpc put':>9} {'rpc get':>9} {'SIGTERM ms':>10} "
        f"{'no-etcd exit s':>14}"
    )
    tr.write_line(header)
    tr.write_line("  (put/get: MiB/s, median of the runs, 64 MiB arrays; get copies the array out)")

    def ms(v: Any) -> str:
        return f"{v * 1000:9.1f}" if isinstance(v, float) else f"{'-':>9}"

    def rate(v: Any) -> str:
        return f"{v:9.0f}" if isinstance(v, float) else f"{'-':>9}"

    for scenario in sorted(MEASURED):
        m = MEASURED[scenario]
        tr.write_line(
            f"{scenario:18} {ms(m.get('socket_s'))} {ms(m.get('accept_s'))} "
            f"{ms(m.get('connect_s'))} "
            f"{rate(m.get('ipc_put_mib_s'))} {rate(m.get('ipc_get_mib_s'))} "
            f"{rate(m.get('rpc_put_mib_s'))} {rate(m.get('rpc_get_mib_s'))} "
            f"{ms(m.get('sigterm_exit_s')):>10} "
            f"{(format(m['trap_exit_s'], '14.2f') if 'trap_exit_s' in m else format('-', '>14'))}"
        )
    tr.write_line(f"written to {RESULTS.relative_to(REPO)}")
