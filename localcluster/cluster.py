"""The local cluster: etcd, kube-apiserver, controller-manager, scheduler, kwok with fake
nodes and a provisioner behind the default StorageClass (`local-path`), all on 127.0.0.1, run
from one state directory.

    cluster = Cluster()            # state in .cache/cluster, binaries in .cache/bin
    cluster.up(nodes=3)            # reuses a healthy running cluster
    cluster.add_nodes(2); cluster.remove_nodes(["kwok-node-4"])
    cluster.down()                 # stops exactly the processes this state dir started
    with cluster.session(nodes=3): # test sessions: start unless running; the last one out
        ...                        # stops it, unless a developer's `up` started it
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path

from . import chartrepo, components, nodes, pki
from .kubeapi import ApiError, KubeApi
from .procs import (
    ComponentError,
    Processes,
    free_port,
    live_users,
    log_tail,
    register_user,
    wait_until,
)
from .realnode import ControlPlane, RealNode

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STATE_DIR = REPO_ROOT / ".cache" / "cluster"
DEFAULT_BIN_DIR = REPO_ROOT / ".cache" / "bin"
DEFAULT_CHARTS = (REPO_ROOT / "charts" / "vineyard",)
DEFAULT_REPO_DIR = REPO_ROOT / ".cache" / "chartrepo"
# Start order; `down` stops in reverse. The chart repository server is stopped by `down` too.
PROVISIONER = "local-path-provisioner"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok",
              PROVISIONER)
BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok",
            "kwok-stages.yaml", PROVISIONER)


class ClusterError(RuntimeError):
    """The cluster cannot be started or used (missing binaries, not running, ...)."""


def _http_ok(url: str) -> bool:
    # Components' own serving certs are self-signed: health probes on loopback skip checks.
    ctx = ssl._create_unverified_context()
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=2.0) as resp:
            return resp.status == 200
    except OSError:
        return False


class Cluster:
    def __init__(self, state_dir: Path | str = DEFAULT_STATE_DIR, *,
                 bin_dir: Path | str = DEFAULT_BIN_DIR):
        self.state_dir = Path(state_dir).resolve()
        self.bin_dir = Path(bin_dir).resolve()
        self.kubeconfig = self.state_dir / "kubeconfig"
        self.procs = Processes(self.state_dir)
        self._info_file = self.state_dir / "cluster.json"
        # Present while the running cluster was started by a `session` (not by `up`).
        self._session_started = self.state_dir / "started-by-session"
        self._sessions = self.state_dir / "sessions"
        self.timings: dict[str, float] = {}  # phases of the last `up`, seconds since it began
        self._api: KubeApi | None = None

    # --- state -------------------------------------------------------------------------------

    @property
    def ports(self) -> components.Ports:
        try:
            return components.Ports(**json.loads(self._info_file.read_text())["ports"])
        except (OSError, KeyError, ValueError) as e:
            raise ClusterError(f"no cluster in {self.state_dir}: run `up` first") from e

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports.apiserver}"

    @property
    def api(self) -> KubeApi:
        """A REST client as cluster-admin (made again when a new `up` changed the port)."""
        server = self.server
        if self._api is None or self._api.server != server:
            self._api = KubeApi(server, self.state_dir / "pki")
        return self._api

    @property
    def env(self) -> dict[str, str]:
        """os.environ with KUBECONFIG set and the built tools (helm, kubectl) first on PATH."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig),
                "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}

    def kubectl(self, *args: str, input: str | None = None,
                check: bool = True) -> subprocess.CompletedProcess:
        """Runs the built kubectl against this cluster; output captured as text."""
        return subprocess.run([str(self.bin_dir / "kubectl"), *args], input=input, text=True,
                              capture_output=True, env=self.env, check=check)

    def _health_checks(self) -> dict[str, Callable[[], bool]]:
        p = self.ports
        return {
            "etcd": lambda: _http_ok(f"http://127.0.0.1:{p.etcd}/health"),
            "kube-apiserver": lambda: self.api.ok("/readyz"),
            "kube-controller-manager": lambda: _http_ok(f"https://127.0.0.1:{p.controller_manager}/healthz"),
            "kube-scheduler": lambda: _http_ok(f"https://127.0.0.1:{p.scheduler}/healthz"),
            "kwok": lambda: _http_ok(f"http://127.0.0.1:{p.kwok}/healthz"),
            # 200 once its informers have synced: it answers claims from then on.
            PROVISIONER: lambda: bool(p.provisioner) and _http_ok(
                f"http://127.0.0.1:{p.provisioner}/healthz"),
        }

    def status(self) -> dict[str, dict]:
        """Per component: pid (None when not running) and whether its health check passes."""
        running = {name: self.procs.pid(name) for name in COMPONENTS}
        try:
            checks = self._health_checks()
        except ClusterError:
            checks = {}
        return {name: {"pid": pid, "healthy": bool(pid and name in checks and checks[name]())}
                for name, pid in running.items()}

    def is_healthy(self) -> bool:
        return all(s["healthy"] for s in self.status().values())

    def _control_plane_healthy(self, status: dict[str, dict] | None = None) -> bool:
        """Every component but the provisioner is healthy: the cluster runs, and `up` need only
        (re)start the provisioner (it died, or the cluster was started before it existed)."""
        status = self.status() if status is None else status
        return all(s["healthy"] for name, s in status.items() if name != PROVISIONER)

    # --- up / down ---------------------------------------------------------------------------

    def up(self, *, nodes: int = 3, real_nodes: int = 0, timeout: float = 120.0) -> float:
        """Starts the cluster with `nodes` Ready fake nodes (and `real_nodes`, 0 or 1, real
        kubelet nodes: realnode.py), or reuses a healthy running one (adding nodes up to
        `nodes`). Returns the seconds it took."""
        start = time.monotonic()
        with self._lock():
            # Whoever calls `up` keeps the cluster: sessions ending later leave it running.
            self._session_started.unlink(missing_ok=True)
            return self._up(nodes, timeout, start, real_nodes)

    @contextlib.contextmanager
    def session(self, *, nodes: int = 3, real_nodes: int = 0,
                timeout: float = 120.0) -> Iterator[Cluster]:
        """Uses the cluster for a while (a test session): starts it unless it is running, and
        at the end stops it if a session started it and no other live session uses it. A
        cluster started with `up` (a developer's) is reused and left running."""
        with self._lock():
            running = self._control_plane_healthy()
            self._up(nodes, timeout, time.monotonic(), real_nodes)
            if not running:
                self._session_started.touch()
            me = register_user(self._sessions)
        try:
            yield self
        finally:
            with self._lock():
                me.unlink(missing_ok=True)
                if self._session_started.exists() and not live_users(self._sessions):
                    self._down()

    def _up(self, nodes: int, timeout: float, start: float, real_nodes: int = 0) -> float:
        self.timings = {}
        if real_nodes not in (0, 1):
            raise ClusterError("--real-nodes: 0 or 1 (one real node per machine)")
        status = self.status()
        if self._control_plane_healthy(status):
            if not status[PROVISIONER]["healthy"]:
                self._restart_provisioner(time.monotonic() + timeout)
            missing = nodes - len(self.node_names())
            if missing > 0:
                self.add_nodes(missing, timeout=timeout)
        else:
            self._check_binaries()
            try:
                self._start(nodes, timeout, start)
            except ComponentError as e:
                # A free port taken by someone else between our pick and the component's bind.
                if "address already in use" not in str(e):
                    raise
                self._start(nodes, timeout, start)
        if real_nodes:
            node = self.real_node()
            try:
                node.up(timeout=max(timeout, 180.0))
            except BaseException:
                self._down()
                raise
            for phase, seconds in node.timings.items():
                self.timings[f"real node: {phase}"] = seconds
        return time.monotonic() - start

    def real_node(self) -> RealNode:
        """The real kubelet node of this state dir (localcluster/realnode.py)."""
        return RealNode(ControlPlane(self.state_dir, self.bin_dir, self.kubeconfig, self.procs,
                                     lambda: self.api))

    def _start(self, nodes: int, timeout: float, start: float) -> float:
        self._down()  # whatever is left of an earlier, unhealthy run
        pki.ensure_pki(self.state_dir / "pki")
        shutil.rmtree(self.state_dir / "etcd", ignore_errors=True)
        # The PVs of these directories were in the etcd data just wiped: nobody would delete them.
        shutil.rmtree(self.state_dir / "volumes", ignore_errors=True)
        ports = components.Ports(*(free_port() for _ in range(7)))
        self._write_ports(ports)
        self._write_kubeconfigs()
        self._provisioner_identity()
        self._phase_done("certs", start)
        deadline = time.monotonic() + timeout
        checks = self._health_checks()
        argv = {"etcd": components.etcd, "kube-apiserver": components.apiserver,
                "kube-controller-manager": components.controller_manager,
                "kube-scheduler": components.scheduler, "kwok": components.kwok,
                PROVISIONER: components.provisioner}
        try:
            for group in (["etcd"], ["kube-apiserver"],
                          ["kube-controller-manager", "kube-scheduler", "kwok", PROVISIONER]):
                if PROVISIONER in group:
                    self._create_storage_objects()
                for name in group:
                    self.procs.start(name, argv[name](self.bin_dir, self.state_dir, ports))
                self._wait_healthy(group, checks, deadline)
                self._phase_done("+".join(group), start)
            if nodes:
                self.add_nodes(nodes, timeout=max(1.0, deadline - time.monotonic()))
                self._phase_done(f"{nodes} nodes Ready", start)
            # Pods are refused in a namespace until its `default` ServiceAccount exists: wait
            # until the controllers have made the first one, as a real cluster has it.
            self._wait_healthy(["kube-controller-manager"], {"kube-controller-manager": lambda: (
                self.api.ok("/api/v1/namespaces/default/serviceaccounts/default"))}, deadline)
            self._phase_done("default ServiceAccount", start)
        except BaseException:
            self._down()
            raise
        return time.monotonic() - start

    def _restart_provisioner(self, deadline: float) -> None:
        """Starts only the provisioner (and makes what it needs) in a running cluster."""
        ports = self.ports
        if not ports.provisioner:  # cluster.json from before the provisioner existed
            ports = replace(ports, provisioner=free_port())
            self._write_ports(ports)
        if not (self.bin_dir / PROVISIONER).exists():
            raise ClusterError(f"missing {PROVISIONER} (in {self.bin_dir}): "
                               "run `make tools` (hack/build-tools.sh) first")
        self._provisioner_identity()
        self._create_storage_objects()
        self.procs.stop(PROVISIONER)  # one running but unhealthy
        self.procs.start(PROVISIONER, components.provisioner(self.bin_dir, self.state_dir, ports))
        self._wait_healthy([PROVISIONER], self._health_checks(), deadline)

    def _provisioner_identity(self) -> None:
        """Its client cert (made once, like the others) and kubeconfig."""
        pki_dir = self.state_dir / "pki"
        if not (pki_dir / "provisioner.crt").exists():
            pki.leaf_cert(pki_dir, "provisioner", f"/CN={components.PROVISIONER_USER}",
                          "clientAuth", None)
        pki.write_kubeconfig(self.state_dir / "kubeconfigs" / "provisioner.kubeconfig",
                             server=self.server, pki=pki_dir, user="provisioner")

    def _create_storage_objects(self) -> None:
        """The provisioner's RBAC binding and the default StorageClass; existing ones are kept."""
        for path, obj in components.storage_objects():
            try:
                self.api.create(path, obj)
            except ApiError as e:
                if e.status != 409:
                    raise

    def _write_ports(self, ports: components.Ports) -> None:
        self._info_file.write_text(json.dumps({"ports": asdict(ports)}, indent=2) + "\n")

    def _phase_done(self, phase: str, start: float) -> None:
        """Records when `phase` finished, in seconds since `up` began (`self.timings`)."""
        self.timings[phase] = time.monotonic() - start

    def down(self) -> None:
        """Stops every process this state dir started (pid files), last-started first."""
        with self._lock():
            self._down()

    def _down(self) -> None:
        if (self.state_dir / "realnode").exists():
            # Before the control plane: kubelet drains its pods through the API server.
            self.real_node().down()
        self._session_started.unlink(missing_ok=True)
        shutil.rmtree(self._sessions, ignore_errors=True)
        names = self.procs.names()
        ordered = [n for n in names if n not in COMPONENTS] + [
            n for n in reversed(COMPONENTS) if n in names]
        for name in ordered:
            self.procs.stop(name)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialises up/down of one state dir across processes (test sessions run in parallel)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _check_binaries(self) -> None:
        missing = [b for b in BINARIES if not (self.bin_dir / b).exists()]
        if not Path(components.ETCD).exists():
            missing.append(components.ETCD)
        if missing:
            raise ClusterError(f"missing {', '.join(missing)} (in {self.bin_dir}): "
                               "run `make tools` (hack/build-tools.sh) first")

    def _write_kubeconfigs(self) -> None:
        pki_dir, server = self.state_dir / "pki", self.server
        pki.write_kubeconfig(self.kubeconfig, server=server, pki=pki_dir, user="admin")
        for user in ("controller-manager", "scheduler", "kwok"):
            pki.write_kubeconfig(self.state_dir / "kubeconfigs" / f"{user}.kubeconfig",
                                 server=server, pki=pki_dir, user=user)

    def _wait_healthy(self, names: list[str], checks: dict, deadline: float) -> None:
        pending = list(names)

        def progress() -> bool:
            for name in list(pending):
                self.procs.check_running(name)  # raises ComponentError with the log tail
                if checks[name]():
                    pending.remove(name)
            return not pending

        if not wait_until(progress, max(0.0, deadline - time.monotonic())):
            name = pending[0]
            raise ComponentError(f"{name} not healthy before the deadline; last lines of "
                                 f"{self.procs.log(name)}:\n{log_tail(self.procs.log(name))}")

    # --- nodes -------------------------------------------------------------------------------

    def node_names(self) -> list[str]:
        key, value = components.KWOK_NODE_ANNOTATION
        items = self.api.get("/api/v1/nodes")["items"]
        return sorted(n["metadata"]["name"] for n in items
                      if n["metadata"].get("annotations", {}).get(key) == value)

    def add_nodes(self, count: int = 1, *, timeout: float = 60.0) -> list[str]:
        """Creates `count` fake nodes and waits until they are Ready; returns their names."""
        names = nodes.next_names(self.node_names(), count)
        api = self.api
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda n: api.create("/api/v1/nodes", nodes.node_manifest(n)), names))
        self.wait_nodes_ready(names, timeout=timeout)
        return names

    def remove_nodes(self, names: list[str]) -> None:
        """Deletes the nodes, then the pods bound to them: what the pod garbage collector does
        anyway, but only after ~1 minute of quarantine, too slow for tests."""
        for name in names:
            self.api.delete(f"/api/v1/nodes/{name}")
        for name in names:
            pods = self.api.get(f"/api/v1/pods?fieldSelector=spec.nodeName={name}")["items"]
            for pod in pods:
                meta = pod["metadata"]
                self.api.delete(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                                body={"gracePeriodSeconds": 0})

    def wait_nodes_ready(self, names: list[str], *, timeout: float = 60.0) -> None:
        wanted = set(names)

        def ready() -> bool:
            items = self.api.get("/api/v1/nodes")["items"]
            done = {n["metadata"]["name"] for n in items if nodes.is_ready(n)}
            return wanted <= done

        if not wait_until(ready, timeout, interval=0.2):
            self.procs.check_running("kwok")
            raise ComponentError(f"nodes not Ready after {timeout:.0f}s: {sorted(wanted)}; "
                                 f"last lines of kwok's log:\n{log_tail(self.procs.log('kwok'))}")


    # --- chart repository --------------------------------------------------------------------

    def serve_repo(self, charts: tuple[Path | str, ...] = DEFAULT_CHARTS, *,
                   repo_dir: Path | str = DEFAULT_REPO_DIR) -> str:
        """Packages `charts` into `repo_dir`, serves it on 127.0.0.1 until `down`; returns the
        URL for `helm repo add`. Needs no running cluster."""
        return chartrepo.serve_repo(self.procs, [Path(c) for c in charts], Path(repo_dir),
                                    helm=self.bin_dir / "helm")


__all__ = ["DEFAULT_STATE_DIR", "ApiError", "Cluster", "ClusterError", "ComponentError"]
