"""A real node for the local cluster: kubelet on containerd + runc + a CNI bridge, kube-proxy
(iptables mode) and CoreDNS on the host, all joined to the loopback control plane.

    node = RealNode(plane)        # one per machine (a lock in /run names the owning state dir)
    node.up()                     # bridge, mirror, containerd, kubelet, kube-proxy, CoreDNS
    node.down()                   # and every host change it made undone (see `down`)

Network: the bridge `lcbr0` 10.245.0.1/24 (pods 10.245.0.0/24; kwok nodes report 10.244.0.1)
is the node IP, the kubelet's address and CoreDNS's address. Settings needed on this machine
are explained inline.

Nothing leaves the machine:
- containerd resolves every registry through hosts.toml files whose only server is a registry
  on 127.0.0.1 holding the locally built images under their upstream names (docker.io/...,
  quay.io/...). A registry without such a file (no catch-all exists in containerd 1.6) meets
  an HTTP(S) proxy on 127.0.0.1 where nothing listens: the pull fails at once, on loopback.
- The node's processes run in a cgroup of their own (pods inherit it); an iptables OUTPUT rule
  on that cgroup and a FORWARD rule on the bridge send everything bound elsewhere than this
  machine's own addresses and the pod subnet to the chain LC-EGRESS-<id>, which drops and counts
  it (`egress_packets`): the tests assert the count stays 0.

Ownership: host state that is machine-wide (the bridge, KUBE-* chains, port 10250) is touched
only by the state dir named in OWNER_FILE while its processes live; everything else (run dir,
cgroups, iptables chains, netns, mounts, log links) carries this state dir's id, so stopping or
starting one state dir never touches another's real node.

The node gets what it needs of its cluster as a ControlPlane (Cluster.real_node() makes one):
this module imports nothing of cluster.py.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from . import images as images_mod
from . import pki
from .components import SERVICE_CIDR
from .kubeapi import KubeApi
from .procs import ComponentError, Processes, free_port, log_tail, wait_until

NODE_NAME = "real-node-0"
BRIDGE = "lcbr0"
NODE_IP = "10.245.0.1"
POD_SUBNET = "10.245.0.0/24"
CNI_NETWORK = "localcluster"
CLUSTER_DOMAIN = "cluster.local"
OWNER_FILE = Path("/run/localcluster-realnode.owner")
COMPONENTS = ("registry", "containerd", "kubelet", "kube-proxy", "coredns")
# Registries the node's containerd resolves through the loopback mirror. Any other host goes to
# DEAD_PROXY (nothing listens on the discard port): refused at once, without leaving the machine.
MIRRORED_REGISTRIES = ("docker.io", "registry-1.docker.io", "quay.io", "ghcr.io", "gcr.io",
                       "registry.k8s.io", "k8s.gcr.io", "public.ecr.aws", "mcr.microsoft.com",
                       "nvcr.io")
DEAD_PROXY = "http://127.0.0.1:9"
# Host settings kubelet, kube-proxy and the bridge plugin change; restored by `down`.
SYSCTLS = ("kernel.panic", "kernel.panic_on_oops", "vm.overcommit_memory",
           "net.ipv4.ip_forward", "net.ipv4.conf.all.route_localnet",
           "net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables")
CGROUP_ROOT = Path("/sys/fs/cgroup")


class RealNodeError(RuntimeError):
    pass


@dataclass(frozen=True)
class ControlPlane:
    """What a real node needs of the cluster it joins."""

    state_dir: Path       # pki/ (the node's certificates), realnode/ (its files)
    bin_dir: Path         # kubelet, kube-proxy, coredns, registry
    kubeconfig: Path      # the admin kubeconfig: CoreDNS watches the API server with it
    procs: Processes      # the state dir's pid files: the node's beside the control plane's
    api: Callable[[], KubeApi]  # the admin REST client, asked for when used (its port can change)


def _no_api(state_dir: Path) -> Callable[[], KubeApi]:
    def missing() -> KubeApi:
        raise RealNodeError(f"no control plane to reach for {state_dir}")
    return missing


def _run(*argv: str | Path, check: bool = True, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kw)
    if check and res.returncode:
        raise RealNodeError(f"{' '.join(map(str, argv))} failed ({res.returncode}): "
                            f"{(res.stderr or res.stdout)[-1500:]}")
    return res


# Capabilities the node needs (bit numbers of linux/capability.h): mounts and namespaces
# (SYS_ADMIN), bridge and iptables (NET_ADMIN), cgroups and ownership of pod files (CHOWN,
# DAC_OVERRIDE, FOWNER), kill of container processes (KILL), setuid in containers (SETUID,
# SETGID), ptrace-free runc init (SYS_CHROOT), raw sockets for CNI (NET_RAW).
REQUIRED_CAPS = {"CHOWN": 0, "DAC_OVERRIDE": 1, "FOWNER": 3, "KILL": 5, "SETGID": 6,
                 "SETUID": 7, "NET_ADMIN": 12, "NET_RAW": 13, "SYS_CHROOT": 18,
                 "SYS_ADMIN": 21}


def _effective_caps() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def unavailable_reason(bin_dir: Path) -> str | None:
    """Why a real node cannot run here (None when it can): root and capabilities, cgroup v1
    controllers with the unified hierarchy beside them, binaries, packages."""
    if os.geteuid() != 0:
        return "needs root"
    caps = _effective_caps()
    lacking = [name for name, bit in REQUIRED_CAPS.items() if not caps >> bit & 1]
    if lacking:
        return "lacks capabilities " + ", ".join(f"CAP_{n}" for n in lacking)
    if not (CGROUP_ROOT / "memory").is_dir() or not (CGROUP_ROOT / "unified").is_dir():
        return (f"needs cgroup v1 controllers and the unified hierarchy under {CGROUP_ROOT} "
                "(the egress counter matches the node's cgroup there)")
    missing = [str(bin_dir / b) for b in ("kubelet", "kube-proxy", "coredns", "registry",
                                          "etcd", "etcdctl", "etcdutl")
               if not (bin_dir / b).exists()]
    missing += [p for p in ("containerd", "runc", "ctr", "debootstrap", "iptables", "zstd", "gcc")
                if not shutil.which(p)]
    if not Path("/usr/lib/cni/bridge").exists():
        missing.append("/usr/lib/cni/bridge (containernetworking-plugins)")
    if missing:
        return "missing " + ", ".join(missing) + " (make tools)"
    return None


def _external_interface() -> str:
    out = _run("ip", "route", "show", "default").stdout.split()
    return out[out.index("dev") + 1] if "dev" in out else "eth0"


def state_dir_id(state_dir: Path) -> str:
    """A short id for a state dir, carried by every host object its real node makes."""
    return hashlib.sha256(str(state_dir).encode()).hexdigest()[:8]


def live_owner() -> Path | None:
    """The state dir whose real node runs on this machine now (OWNER_FILE, checked against
    its pid files), or None."""
    try:
        owner = Path(json.loads(OWNER_FILE.read_text())["state_dir"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    procs = Processes(owner)
    return owner if any(procs.pid(c) for c in COMPONENTS) else None


class RealNode:
    def __init__(self, plane: ControlPlane):
        self.plane = plane
        self.id = state_dir_id(plane.state_dir)
        self.dir = plane.state_dir / "realnode"
        self.procs = plane.procs
        # containerd's state: in /run for short socket paths, one directory per state dir.
        self.run_dir = Path(f"/run/localcluster-{self.id}")
        self.sock = self.run_dir / "containerd.sock"
        # The cgroup (v1 controllers and the unified hierarchy) of the node's processes and,
        # as kubelet's cgroupRoot, of its pods.
        self.cgroup = f"localcluster-{self.id}"
        self.egress_chain = f"LC-EGRESS-{self.id}"
        self.output_chain = f"LC-OUT-{self.id}"
        self.registry_storage = images_mod.DEFAULT_CACHE / "registry"
        self.kubelet_root = self.dir / "kubelet"
        self.pod_logs = self.dir / "pod-logs"
        self.host_file = self.dir / "host-state.json"
        self.timings: dict[str, float] = {}

    # --- up ---------------------------------------------------------------------------------

    def running(self) -> bool:
        return all(self.procs.pid(c) for c in COMPONENTS)

    def owns_host(self) -> bool:
        """True when the machine-wide state is this state dir's to change: OWNER_FILE names
        it, or no live real node owns the machine and this state dir made host changes."""
        owner = live_owner()
        if owner is not None:
            return owner == self.plane.state_dir
        return self.host_file.exists()

    def up(self, *, timeout: float = 180.0) -> float:
        start = time.monotonic()
        if self.running() and self._node_ready():
            return 0.0
        reason = unavailable_reason(self.plane.bin_dir)
        if reason:
            raise RealNodeError(f"real node: {reason}")
        self._claim_machine()
        self.down()                      # leftovers of an earlier run of this state dir
        self._claim_machine()
        try:
            build = images_mod.Images().build()
            self.timings["images"] = time.monotonic() - start
            self._save_host_state()
            self._make_cgroups()
            self._bridge()
            self._egress_rules()
            self._write_configs()
            registry = f"127.0.0.1:{self._ports['registry']}"
            self._start("registry", [str(self.plane.bin_dir / "registry"), "serve",
                                     str(self.dir / "registry.yml")],
                        lambda: _http_ok(f"http://{registry}/v2/"), timeout,
                        # No telemetry: the registry's OpenTelemetry exporter stays off.
                        env={**os.environ, "OTEL_TRACES_EXPORTER": "none",
                             "OTEL_SDK_DISABLED": "true"})
            for ref in images_mod.MIRRORED:
                images_mod.push(registry, build.archives[ref], ref)
            self.timings["mirror registry + images pushed"] = time.monotonic() - start
            # Registries go to the mirror (hosts.toml); anything else to a proxy that refuses.
            proxy_env = {**os.environ, "HTTP_PROXY": DEAD_PROXY, "HTTPS_PROXY": DEAD_PROXY,
                         "http_proxy": DEAD_PROXY, "https_proxy": DEAD_PROXY,
                         "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
            self._start("containerd", ["containerd", "--config", str(self.dir / "containerd.toml")],
                        lambda: _run("ctr", "--address", self.sock, "version", check=False)
                        .returncode == 0, timeout, env=proxy_env)
            images_mod.Images().import_into(
                self.sock, {r: build.archives[r] for r in images_mod.IMPORTED})
            # containerd's store outlives `down`: a copy of an earlier build under the same
            # tag would shadow the mirror's (pullPolicy IfNotPresent). Pulled again on first
            # use, from loopback, in about a second.
            for ref in images_mod.MIRRORED:
                self._ctr("images", "rm", ref)
            self.timings["containerd + images imported"] = time.monotonic() - start
            t_kubelet = time.monotonic()
            self._start("kubelet", self._kubelet_argv(), self._node_ready, timeout)
            self.timings["node join (kubelet start to Ready)"] = time.monotonic() - t_kubelet
            self._start("kube-proxy", self._kube_proxy_argv(),
                        lambda: _http_ok(f"http://127.0.0.1:{self._ports['proxy_health']}/healthz"),
                        timeout)
            self._start("coredns", [str(self.plane.bin_dir / "coredns"), "-conf",
                                    str(self.dir / "Corefile")],
                        lambda: _http_ok(f"http://127.0.0.1:{self._ports['dns_ready']}/ready"),
                        timeout)
            self.timings["total"] = time.monotonic() - start
        except BaseException:
            self.down()
            raise
        return time.monotonic() - start

    def _claim_machine(self) -> None:
        """One real node per machine: the bridge, KUBE-* chains and port 10250 are machine-wide."""
        owner = live_owner()
        if owner is not None and owner != self.plane.state_dir:
            raise RealNodeError(f"a real node already runs for {owner}; stop it first "
                                f"(python -m localcluster --state-dir {owner} down)")
        try:
            last = Path(json.loads(OWNER_FILE.read_text())["state_dir"])
        except (OSError, ValueError, KeyError, TypeError):
            last = None
        if last is not None and last != self.plane.state_dir and last.exists():
            # A run that died without `down`: its own teardown removes what it made (no
            # kubelet of it runs, so nothing is drained through its API server).
            RealNode(replace(self.plane, state_dir=last,
                             kubeconfig=last / self.plane.kubeconfig.name,
                             procs=Processes(last), api=_no_api(last))).down()
        OWNER_FILE.write_text(json.dumps({"state_dir": str(self.plane.state_dir),
                                          "id": self.id}) + "\n")

    def _start(self, name: str, argv: list[str], ready, timeout: float,
               env: dict[str, str] | None = None) -> None:
        self.procs.start(name, argv, env=env, cgroup=CGROUP_ROOT / "unified" / self.cgroup
                         / "daemons")
        ok = wait_until(lambda: (self.procs.check_running(name), ready())[1], timeout,
                        interval=0.1)
        if not ok:
            raise ComponentError(f"{name} not ready after {timeout:.0f}s; last lines of "
                                 f"{self.procs.log(name)}:\n{log_tail(self.procs.log(name))}")

    def _node_ready(self) -> bool:
        try:
            node = self.plane.api().get(f"/api/v1/nodes/{NODE_NAME}")
        except Exception:
            return False
        return any(c["type"] == "Ready" and c["status"] == "True"
                   for c in node.get("status", {}).get("conditions") or [])

    def _save_host_state(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        state = {"sysctls": {}, "ext": _external_interface(),
                 "var_lib_cni": Path("/var/lib/cni").exists(),
                 "run_netns": Path("/run/netns").exists(),
                 # Network namespaces that are not ours (made before this node started).
                 "netns_before": [p.name for p in _cni_netns()]}
        for key in SYSCTLS:
            res = _run("sysctl", "-n", key, check=False)
            if res.returncode == 0:
                state["sysctls"][key] = res.stdout.strip()
        self.host_file.write_text(json.dumps(state, indent=2) + "\n")

    def _make_cgroups(self) -> None:
        """The node's cgroup in every hierarchy: kubelet's cgroupRoot (it refuses one that is
        missing), and in the unified one the leaf `daemons` the node's processes run in."""
        for hierarchy in _hierarchies():
            path = hierarchy / self.cgroup
            path.mkdir(exist_ok=True)
            if hierarchy.name == "cpuset":   # a cpuset cgroup takes no task until it has these
                for f in ("cpuset.cpus", "cpuset.mems"):
                    if not (path / f).read_text().strip():
                        (path / f).write_text((hierarchy / f).read_text())
        (CGROUP_ROOT / "unified" / self.cgroup / "daemons").mkdir(exist_ok=True)

    def _bridge(self) -> None:
        # The node IP must exist before kubelet starts (it refuses a loopback node IP).
        _run("ip", "link", "add", BRIDGE, "type", "bridge")
        _run("ip", "addr", "add", f"{NODE_IP}/24", "dev", BRIDGE)
        _run("ip", "link", "set", BRIDGE, "up")

    def _egress_rules(self) -> None:
        """Drops and counts, in LC-EGRESS-<id>, what the node's processes send (OUTPUT, matched
        by their cgroup) or its pods send (FORWARD from the bridge) to anywhere but this
        machine's own addresses and the pod subnet (`_remove_egress_rules` undoes it)."""
        comment = ["-m", "comment", "--comment", f"localcluster {self.id}: stays on this machine"]
        jumps = [("OUTPUT", ["-m", "cgroup", "--path", self.cgroup, *comment,
                             "-j", self.output_chain]),
                 ("FORWARD", ["-i", BRIDGE, "!", "-o", BRIDGE, *comment, "-j", self.egress_chain])]
        for tool in ("iptables", "ip6tables"):
            for chain in (self.egress_chain, self.output_chain):
                _run(tool, "-N", chain, check=False)
                _run(tool, "-F", chain)
            if tool == "iptables":
                # A ClusterIP that kube-proxy has not programmed yet (a client racing a new
                # Service) is this cluster's address, not an outside one: dropped too, but
                # counted apart (`unprogrammed_service_packets`).
                _run(tool, "-A", self.egress_chain, "-d", SERVICE_CIDR, "-m", "comment",
                     "--comment", f"localcluster {self.id}: unprogrammed ClusterIP", "-j", "DROP")
            # What would have left is logged (kernel log, rate-limited) for the failure message.
            _run(tool, "-A", self.egress_chain, "-m", "limit", "--limit", "20/min", "-j", "LOG",
                 "--log-prefix", f"{self.egress_chain}: ")
            _run(tool, "-A", self.egress_chain, *comment, "-j", "DROP")
            _run(tool, "-A", self.output_chain, "-m", "addrtype", "--dst-type", "LOCAL",
                 "-j", "RETURN")
            if tool == "iptables":
                _run(tool, "-A", self.output_chain, "-d", POD_SUBNET, "-j", "RETURN")
            _run(tool, "-A", self.output_chain, "-j", self.egress_chain)
            for parent, rule in jumps:
                if tool == "ip6tables" and parent == "FORWARD":
                    continue   # the bridge carries IPv4 only
                _run(tool, "-I", parent, *rule)

    def _drop_counts(self) -> dict[str, int]:
        counts = {"egress": 0, "service": 0}
        for tool in ("iptables", "ip6tables"):
            out = _run(tool, "-L", self.egress_chain, "-v", "-x", "-n", check=False).stdout
            for line in out.splitlines()[2:]:
                if "DROP" in line:
                    key = "service" if "unprogrammed ClusterIP" in line else "egress"
                    counts[key] += int(line.split()[0])
        return counts

    def egress_packets(self) -> int:
        """Packets the node or its pods tried to send off this machine (dropped), since `up`."""
        return self._drop_counts()["egress"]

    def unprogrammed_service_packets(self) -> int:
        """Packets to a ClusterIP that kube-proxy had not programmed yet (dropped)."""
        return self._drop_counts()["service"]

    def egress_log(self, lines: int = 20) -> str:
        """The kernel's log of the last dropped packets (rate-limited), for failure messages."""
        out = _run("dmesg", check=False).stdout.splitlines()
        return "\n".join([ln for ln in out if f"{self.egress_chain}: " in ln][-lines:])

    @property
    def _ports(self) -> dict[str, int]:
        return json.loads((self.dir / "ports.json").read_text())

    def _write_configs(self) -> None:
        d, p = self.dir, self.plane.state_dir / "pki"
        for sub in ("cni/net.d", "cni/data", "kubelet", "pod-logs", "volume-plugins"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        ports = {k: free_port() for k in ("kubelet_health", "proxy_health", "proxy_metrics",
                                          "dns_health", "dns_ready", "dns_metrics", "registry",
                                          "registry_debug")}
        (d / "ports.json").write_text(json.dumps(ports) + "\n")
        # Certificates: the node's client identity (the Node authorizer and NodeRestriction
        # need system:node:<name> in system:nodes), its serving cert, kube-proxy's identity.
        for name, subject, usage, sans in (
            (f"node-{NODE_NAME}", f"/O=system:nodes/CN=system:node:{NODE_NAME}", "clientAuth",
             None),
            (f"kubelet-serving-{NODE_NAME}", f"/CN={NODE_NAME}", "serverAuth",
             f"DNS:{NODE_NAME},IP:{NODE_IP}"),
            ("kube-proxy", "/CN=system:kube-proxy", "clientAuth", None),
        ):
            if not (p / f"{name}.crt").exists():
                pki.leaf_cert(p, name, subject, usage, sans)
        for user in (f"node-{NODE_NAME}", "kube-proxy"):
            pki.write_kubeconfig(d / f"{user}.kubeconfig", server=self.plane.api().server,
                                 pki=p, user=user)
        self._write_mirror_config(ports["registry"], ports["registry_debug"])
        (d / "containerd.toml").write_text(f"""version = 2
root = "{d / 'containerd'}"
state = "{self.run_dir / 'state'}"
[grpc]
  address = "{self.sock}"
[ttrpc]
  address = "{self.sock}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{images_mod.PAUSE}"
  # No CAP_SYS_RESOURCE in this VM: without it every container fails with
  # "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{d / 'cni/net.d'}"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{d / 'certs.d'}"
""")
        (d / "cni/net.d/10-localcluster.conflist").write_text(json.dumps({
            "cniVersion": "0.4.0", "name": CNI_NETWORK,
            "plugins": [{"type": "bridge", "bridge": BRIDGE, "isGateway": True,
                         "ipMasq": False, "hairpinMode": True,
                         "ipam": {"type": "host-local", "dataDir": str(d / "cni/data"),
                                  "ranges": [[{"subnet": POD_SUBNET, "gateway": NODE_IP}]],
                                  "routes": [{"dst": "0.0.0.0/0"}]}},
                        {"type": "loopback"}]}, indent=2) + "\n")
        (d / "resolv.conf").write_text("")   # pods get only the cluster DNS, no host search list
        (d / "kubelet.json").write_text(json.dumps({
            "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
            "address": NODE_IP, "port": 10250, "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1", "healthzPort": ports["kubelet_health"],
            "tlsCertFile": str(p / f"kubelet-serving-{NODE_NAME}.crt"),
            "tlsPrivateKeyFile": str(p / f"kubelet-serving-{NODE_NAME}.key"),
            "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                               "x509": {"clientCAFile": str(p / "ca.crt")}},
            "authorization": {"mode": "Webhook"},
            "containerRuntimeEndpoint": f"unix://{self.sock}",
            "cgroupDriver": "cgroupfs",      # PID 1 is not systemd
            # Pods under this state dir's cgroup: counted by its egress rule, removed by its
            # `down`, never mixed with another run's kubepods.
            "cgroupRoot": f"/{self.cgroup}",
            "failCgroupV1": False,           # cgroup v1 only here; 1.35 refuses it otherwise
            "failSwapOn": False,
            "clusterDNS": [NODE_IP], "clusterDomain": CLUSTER_DOMAIN,
            "resolvConf": str(d / "resolv.conf"),
            "podCIDR": POD_SUBNET, "maxPods": 110,
            "podLogsDir": str(self.pod_logs),
            "volumePluginDir": str(d / "volume-plugins"),
            # The locally imported images cannot be pulled again: never collect them.
            "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "2%",
                             "imagefs.available": "2%"},
            "serializeImagePulls": False,
            "syncFrequency": "10s", "fileCheckFrequency": "10s",
            "nodeStatusUpdateFrequency": "5s",
        }, indent=2) + "\n")
        (d / "Corefile").write_text(f""".:53 {{
    bind {NODE_IP}
    errors
    health 127.0.0.1:{ports['dns_health']}
    ready 127.0.0.1:{ports['dns_ready']}
    prometheus 127.0.0.1:{ports['dns_metrics']}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {self.plane.kubeconfig} localcluster
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 5
}}
""")

    def _write_mirror_config(self, port: int, debug_port: int) -> None:
        """The loopback registry's config, and one hosts.toml per mirrored registry whose only
        server is that registry (override_path: each upstream keeps its own namespace there,
        /v2/<host>/<name>). With `server` itself on loopback containerd has no upstream to
        fall back to."""
        self.registry_storage.mkdir(parents=True, exist_ok=True)
        (self.dir / "registry.yml").write_text(json.dumps({
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self.registry_storage)}},
            "http": {"addr": f"127.0.0.1:{port}", "secret": "localcluster-mirror",
                     "debug": {"addr": f"127.0.0.1:{debug_port}"}},
        }, indent=2) + "\n")
        certs = self.dir / "certs.d"
        shutil.rmtree(certs, ignore_errors=True)
        for host in MIRRORED_REGISTRIES:
            namespace = "docker.io" if host == "registry-1.docker.io" else host
            (certs / host).mkdir(parents=True)
            mirror = f"http://127.0.0.1:{port}/v2/{namespace}"
            # The [host] table repeats the server: containerd 1.6 refuses a hosts.toml without
            # one ("invalid `host` tree", containerd#10027) and then ignores the file.
            (certs / host / "hosts.toml").write_text(
                f'server = "{mirror}"\noverride_path = true\n'
                'capabilities = ["pull", "resolve"]\n\n'
                f'[host."{mirror}"]\n  override_path = true\n'
                '  capabilities = ["pull", "resolve"]\n')

    def _kubelet_argv(self) -> list[str]:
        return [str(self.plane.bin_dir / "kubelet"), f"--config={self.dir / 'kubelet.json'}",
                f"--kubeconfig={self.dir / f'node-{NODE_NAME}.kubeconfig'}",
                f"--root-dir={self.kubelet_root}", f"--cert-dir={self.dir / 'kubelet-pki'}",
                f"--hostname-override={NODE_NAME}", f"--node-ip={NODE_IP}",
                "--node-labels=localcluster/node=real", "--v=1"]

    def _kube_proxy_argv(self) -> list[str]:
        ports = self._ports
        return [str(self.plane.bin_dir / "kube-proxy"),
                f"--kubeconfig={self.dir / 'kube-proxy.kubeconfig'}",
                "--proxy-mode=iptables", f"--cluster-cidr={POD_SUBNET}",
                f"--hostname-override={NODE_NAME}", f"--nodeport-addresses={NODE_IP}/32",
                f"--healthz-bind-address=127.0.0.1:{ports['proxy_health']}",
                f"--metrics-bind-address=127.0.0.1:{ports['proxy_metrics']}",
                # 0: leave the host's conntrack settings as they are.
                "--conntrack-max-per-core=0", "--conntrack-min=0",
                "--conntrack-tcp-timeout-established=0", "--conntrack-tcp-timeout-close-wait=0",
                "--v=1"]

    # --- down -------------------------------------------------------------------------------

    def down(self) -> list[str]:
        """Stops this state dir's node processes and, when this state dir owns the machine's
        real node (`owns_host`), undoes its host changes: pods and sandboxes (through kubelet,
        then ctr), shims, mounts, its network namespaces, the bridge, KUBE-* chains and its own
        iptables chains, sysctls, its cgroups, its /var/log/containers links. Another state
        dir's live node is never touched. Returns what it had to clean up by force (empty
        when kubelet did it all)."""
        forced: list[str] = []
        owns = self.owns_host()
        if self.procs.pid("kubelet"):
            self._drain(forced)
        for name in ("coredns", "kube-proxy", "kubelet"):
            self.procs.stop(name)
        if self.procs.pid("containerd"):
            self._remove_containers(forced)
        self.procs.stop("containerd", timeout=15.0)
        self.procs.stop("registry")
        if owns:
            self._cleanup_host(forced)
        return forced

    def _drain(self, forced: list[str]) -> None:
        """Taints the node NoExecute (DaemonSet and StatefulSet controllers then place no new
        pod on it), deletes its pods and lets kubelet stop them and tear down their sandboxes
        (CNI DEL) while containerd still runs; then deletes the Node."""
        path = f"/api/v1/nodes/{NODE_NAME}"
        on_node = f"/api/v1/pods?fieldSelector=spec.nodeName={NODE_NAME}"
        try:
            api = self.plane.api()
            api.request("PATCH", path, {"spec": {"unschedulable": True, "taints": [
                {"key": "localcluster/shutdown", "effect": "NoExecute"}]}},
                content_type="application/merge-patch+json")
            for pod in api.get(on_node)["items"]:
                m = pod["metadata"]
                api.delete(f"/api/v1/namespaces/{m['namespace']}/pods/{m['name']}",
                           body={"gracePeriodSeconds": 1})
            if not wait_until(lambda: not api.get(on_node)["items"], 30, 0.3):
                forced.append("drain: pods still bound after 30s (they tolerate every taint?)")
        except Exception as e:  # the control plane may already be gone
            forced.append(f"drain: {e}")
        # Sandboxes of deleted pods are stopped (network torn down) by kubelet right away.
        wait_until(lambda: not self._our_netns(), 15, 0.3)
        with contextlib.suppress(Exception):
            self.plane.api().delete(path)

    def _host_state(self) -> dict | None:
        try:
            return json.loads(self.host_file.read_text())
        except (OSError, ValueError):
            return None

    def _our_netns(self) -> list[Path]:
        """The pod network namespaces of this node: those made since it started (it owns the
        machine's only real node, so no other kubelet made them)."""
        state = self._host_state()
        before = set(state.get("netns_before", [])) if state else set()
        return [ns for ns in _cni_netns() if ns.name not in before]

    def _ctr(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        return _run("ctr", "--address", self.sock, "-n", "k8s.io", *args, check=check)

    def kill_container(self, container_id: str) -> None:
        """SIGKILL to a container's process, as the OOM killer or a crash would end it: the
        kubelet sees it exit and restarts it in the same pod (fault tests)."""
        self._ctr("tasks", "kill", "-s", "SIGKILL", container_id, check=True)

    def _remove_containers(self, forced: list[str]) -> None:
        tasks = self._ctr("tasks", "ls", "-q").stdout.split()
        for task in tasks:
            forced.append(f"task {task[:12]}")
            self._ctr("tasks", "kill", "-s", "SIGKILL", task)
        for task in tasks:
            wait_until(lambda t=task: self._ctr("tasks", "rm", "-f", t).returncode == 0
                       or t not in self._ctr("tasks", "ls", "-q").stdout, 10, 0.2)
        for cid in self._ctr("containers", "ls", "-q").stdout.split():
            self._ctr("containers", "rm", cid)

    def _cleanup_host(self, forced: list[str]) -> None:
        state = self._host_state()
        for ns in self._our_netns():
            forced.append(f"netns {ns.name}")
            _run("ip", "netns", "delete", ns.name, check=False)
        for mount in reversed(self._our_mounts()):
            if mount != str(self.kubelet_root):   # kubelet bind-mounts its root on itself
                forced.append(f"mount {mount}")
            _run("umount", "-l", mount, check=False)
        if Path(f"/sys/class/net/{BRIDGE}").exists():
            _run("ip", "link", "delete", BRIDGE, check=False)
        _cleanup_kube_iptables()
        self._remove_egress_rules()
        if state:
            for key, value in state["sysctls"].items():
                _run("sysctl", "-q", "-w", f"{key}={value}", check=False)
            self._cleanup_cni_cache(state)
            if not state.get("run_netns", True):
                with contextlib.suppress(OSError):
                    Path("/run/netns").rmdir()   # made by containerd for pod network namespaces
            self.host_file.unlink()
        self._remove_cgroups()
        self._cleanup_logs()
        # The containerd root (content store, unpacked images) is kept: the next `up` imports
        # the images again in a fraction of the time. Nothing in it is mounted any more.
        # host-local's reservations go too, or addresses of dead pods fill the /24 over runs.
        for path in (self.run_dir, self.kubelet_root, self.pod_logs, self.dir / "cni" / "data"):
            shutil.rmtree(path, ignore_errors=True)
        with contextlib.suppress(OSError, ValueError, KeyError):
            if json.loads(OWNER_FILE.read_text())["state_dir"] == str(self.plane.state_dir):
                OWNER_FILE.unlink()

    def _remove_egress_rules(self) -> None:
        for tool in ("iptables", "ip6tables"):
            rules = _run(f"{tool}-save", "-t", "filter", check=False).stdout.splitlines()
            for line in rules:   # the jumps from OUTPUT and FORWARD; the chains go below
                if line.startswith(("-A OUTPUT ", "-A FORWARD ")) and self.id in line:
                    _run(tool, "-D", *shlex.split(line[3:]), check=False)
            for chain in (self.output_chain, self.egress_chain):
                _run(tool, "-F", chain, check=False)
            for chain in (self.output_chain, self.egress_chain):
                _run(tool, "-X", chain, check=False)

    def _remove_cgroups(self) -> None:
        """This node's cgroup tree in every hierarchy (deepest first)."""
        for hierarchy in _hierarchies():
            top = hierarchy / self.cgroup
            if not top.is_dir():
                continue
            for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
                with contextlib.suppress(OSError):
                    os.rmdir(dirpath)

    def _our_mounts(self) -> list[str]:
        names = [ns.name for ns in self._our_netns()]
        ours = {f"{d}/{n}" for d in ("/run/netns", "/var/run/netns") for n in names}
        roots = (str(self.run_dir) + "/", str(self.dir) + "/")
        mounts = []
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            target = line.split()[4].replace("\\040", " ")
            if target.startswith(roots) or target in ours or target == str(self.kubelet_root):
                mounts.append(target)
        return mounts

    def _cleanup_cni_cache(self, state: dict) -> None:
        cache = Path("/var/lib/cni")
        for entry in list((cache / "results").glob(f"{CNI_NETWORK}-*")) if cache.exists() else []:
            entry.unlink(missing_ok=True)
        if not state.get("var_lib_cni") and cache.exists():
            shutil.rmtree(cache, ignore_errors=True)

    def _cleanup_logs(self) -> None:
        links = Path("/var/log/containers")
        for link in links.glob("*.log") if links.exists() else []:
            if link.is_symlink() and os.readlink(link).startswith(str(self.pod_logs)):
                link.unlink()

    def leftovers(self) -> dict[str, list[str]]:
        """What this node left on the host if teardown missed something (tests assert empty).
        The machine-wide items (bridge, KUBE-* chains) count only while no other live state
        dir owns the real node."""
        out: dict[str, list[str]] = {}
        out["netns"] = [p.name for p in self._our_netns()] if self.host_file.exists() else []
        out["mounts"] = [m for m in self._our_mounts() if m != str(self.kubelet_root)]
        out["run_dir"] = [str(self.run_dir)] if self.run_dir.exists() else []
        machine_wide = live_owner() is None   # the bridge and KUBE-* are ours to account for
        chains = []
        for tool in ("iptables", "ip6tables"):
            dump = _run(f"{tool}-save", check=False).stdout
            chains += [f"{tool}: {line}" for line in dump.splitlines()
                       if self.id in line or (machine_wide and "KUBE-" in line)]
        out["iptables"] = chains
        if machine_wide:
            out["bridge"] = [BRIDGE] if Path(f"/sys/class/net/{BRIDGE}").exists() else []
        out["cgroups"] = [str(h / self.cgroup) for h in _hierarchies()
                          if (h / self.cgroup).exists()]
        out["shims"] = [pid for pid in os.listdir("/proc") if pid.isdigit()
                        and _comm(pid) == "containerd-shim"
                        and str(self.sock) in _cmdline(pid)]
        return {k: v for k, v in out.items() if v}


def _http_ok(url: str) -> bool:
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=2.0) as resp:
            return resp.status == 200
    except OSError:
        return False


def _cni_netns() -> list[Path]:
    ns_dir = Path("/run/netns")
    return sorted(ns_dir.glob("cni-*")) if ns_dir.exists() else []


def _hierarchies() -> list[Path]:
    """The mounted cgroup hierarchies (v1 controllers, name=systemd, the unified one)."""
    return sorted(p for p in CGROUP_ROOT.iterdir() if p.is_dir() and not p.is_symlink()
                  and (p / "cgroup.procs").exists())


def _cleanup_kube_iptables() -> None:
    """Removes every KUBE-* chain (kubelet's and kube-proxy's) and the jumps to them: called
    only by the owner of the machine's real node, the only kube-proxy here."""
    for tool in ("iptables", "ip6tables"):
        if not shutil.which(tool):
            continue
        dump = _run(f"{tool}-save", check=False).stdout
        table = None
        deletes, chains = [], []
        for line in dump.splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith(":KUBE-"):
                chains.append((table, line[1:].split()[0]))
            elif line.startswith("-A ") and not line.startswith("-A KUBE-") and "KUBE-" in line:
                deletes.append((table, line[3:]))
        for tbl, rule in deletes:
            _run(tool, "-t", tbl, "-D", *shlex.split(rule), check=False)
        for tbl, chain in chains:
            _run(tool, "-t", tbl, "-F", chain, check=False)
        for tbl, chain in chains:
            _run(tool, "-t", tbl, "-X", chain, check=False)


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _comm(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


__all__ = [
    "NODE_IP",
    "NODE_NAME",
    "ControlPlane",
    "RealNode",
    "RealNodeError",
    "live_owner",
    "unavailable_reason",
]
