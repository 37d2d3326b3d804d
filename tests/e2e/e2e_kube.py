"""Helpers of the end-to-end suite: helm install arguments, parallel runs, vineyardd's flags,
`helm test` pods completed for kwok. What other suites share (waiting, readiness, namespaces,
inventories, helm runs) is in tests/support/.
"""
from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import yaml

from localcluster import Cluster
from tests.support.helm import run_helm
from tests.support.kube import ApiException, kube, pods
from tests.support.paths import CHART, CI_DIR

#: helm's --timeout for installs and upgrades that must succeed.
HELM_TIMEOUT = "5m"

T = TypeVar("T")


# ---- helm ---------------------------------------------------------------------------------


def install_args(release: str, namespace: str, *, scenario: str | None = None,
                 wait: bool = True, sets: Iterable[str] = (), chart: str | Path = CHART,
                 extra: Iterable[str] = ()) -> list[str]:
    """Arguments of `helm install` for the chart (a ci scenario's values, --set overrides)."""
    args = ["install", release, str(chart), "--namespace", namespace, "--create-namespace"]
    if scenario is not None:
        args += ["--values", str(CI_DIR / f"{scenario}-values.yaml")]
    for expression in sets:
        args += ["--set", expression]
    if wait:
        args += ["--wait", "--timeout", HELM_TIMEOUT]
    return [*args, *extra]


def in_parallel(jobs: dict[str, Callable[[], T]]) -> dict[str, T]:
    """Runs the jobs on threads (helm runs are mostly waiting); results by name. The first
    exception is raised once every job has finished."""
    with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


# ---- vineyardd's pod -------------------------------------------------------------------


def container(pod_spec: dict, name: str = "vineyardd") -> dict:
    return next(c for c in pod_spec["containers"] if c["name"] == name)


def vineyardd_args(pod_or_template: dict) -> list[str]:
    return container(pod_or_template["spec"])["args"]


def flag(args: list[str], name: str) -> str | None:
    """The value of `--name=value` among vineyardd's args."""
    prefix = f"--{name}="
    return next((a[len(prefix):] for a in args if a.startswith(prefix)), None)


def manifest_objects(env: dict[str, str], release: str, namespace: str, *, major: int = 4
                     ) -> set[tuple[str, str]]:
    """(kind, name) of what helm deployed for the release (`helm get manifest`)."""
    text = run_helm(env, "get", "manifest", release, "-n", namespace, major=major).stdout
    return {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(text) if d}


# ---- kubelet stand-ins --------------------------------------------------------------------


@contextlib.contextmanager
def helm_test_pods_complete(cluster: Cluster, namespace: str) -> Iterator[list[str]]:
    """While the block runs, `helm test` pods in `namespace` that kwok has started are marked
    Succeeded, as a kubelet would once their command exits 0.

    kwok's pod stages move every pod to Running and complete only Job pods; `helm test` pods
    are bare pods (restartPolicy Never) that would stay Running forever, and their commands
    (nc to the RPC Service, etcdctl) cannot run without a kubelet anyway: the contract suite
    (tests/contract) runs them for real. Yields the names of the pods completed."""
    done: list[str] = []
    stop = threading.Event()

    def complete() -> None:
        while not stop.is_set():
            try:
                for pod in pods(cluster, namespace):
                    meta = pod["metadata"]
                    if (meta.get("annotations", {}).get("helm.sh/hook") == "test"
                            and pod["status"].get("phase") == "Running"
                            and meta["name"] not in done):
                        _mark_succeeded(cluster, pod)
                        done.append(meta["name"])
            except (ApiException, OSError):
                pass  # the next round tries again
            stop.wait(0.5)

    thread = threading.Thread(target=complete, daemon=True)
    thread.start()
    try:
        yield done
    finally:
        stop.set()
        thread.join(timeout=10)


def _mark_succeeded(cluster: Cluster, pod: dict) -> None:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    statuses = [{"name": c["name"], "image": c["image"], "imageID": "", "ready": False,
                 "restartCount": 0, "started": False,
                 "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                                          "startedAt": now, "finishedAt": now}}}
                for c in pod["spec"]["containers"]]
    meta = pod["metadata"]
    kube(cluster).request(
        "PATCH", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
        {"status": {"phase": "Succeeded", "containerStatuses": statuses}},
        content_type="application/merge-patch+json")
