"""A real node for the local cluster: kubelet on containerd + runc + a CNI bridge, kube-proxy
(iptables mode) and CoreDNS on the host, all joined to the loopback control plane.

    node = RealNode(cluster)      # one per machine (a lock in /run names the owning state dir)
    node.up()                     # bridge, containerd, images, kubelet, kube-proxy, CoreDNS
    node.down()                   # and every host change undone (see `down`)

Network: the bridge `lcbr0` 10.245.0.1/24 (pods 10.245.0.0/24; kwok nodes report 10.244.0.1)
is the node IP, the kubelet's address and CoreDNS's address; a FORWARD DROP rule keeps pod
traffic off the external interface. Settings needed on this machine are explained inline.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from . import images as images_mod
from . import pki
from .procs import ComponentError, free_port, log_tail, wait_until

if TYPE_CHECKING:
    from .cluster import Cluster

NODE_NAME = "real-node-0"
BRIDGE = "lcbr0"
NODE_IP = "10.245.0.1"
POD_SUBNET = "10.245.0.0/24"
CNI_NETWORK = "localcluster"
CLUSTER_DOMAIN = "cluster.local"
RUN_DIR = Path("/run/localcluster-realnode")   # containerd state: short socket paths
OWNER_FILE = Path("/run/localcluster-realnode.owner")
COMPONENTS = ("containerd", "kubelet", "kube-proxy", "coredns")
# Host settings kubelet, kube-proxy and the bridge plugin change; restored by `down`.
SYSCTLS = ("kernel.panic", "kernel.panic_on_oops", "vm.overcommit_memory",
           "net.ipv4.ip_forward", "net.ipv4.conf.all.route_localnet",
           "net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables")
FORWARD_RULE = ["FORWARD", "-o", "{ext}", "-m", "comment", "--comment",
                "localcluster-realnode: pod traffic stays on this machine", "-j", "DROP"]
CGROUP_ROOT = Path("/sys/fs/cgroup")


class RealNodeError(RuntimeError):
    pass


def _run(*argv: str | Path, check: bool = True, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kw)
    if check and res.returncode:
        raise RealNodeError(f"{' '.join(map(str, argv))} failed ({res.returncode}): "
                            f"{(res.stderr or res.stdout)[-1500:]}")
    return res


def unavailable_reason(bin_dir: Path) -> str | None:
    """Why a real node cannot run here (None when it can): root, binaries, packages."""
    if os.geteuid() != 0:
        return "needs root"
    missing = [str(bin_dir / b) for b in ("kubelet", "kube-proxy", "coredns")
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


class RealNode:
    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.dir = cluster.state_dir / "realnode"
        self.procs = cluster.procs            # pid files beside the control plane's
        self.sock = RUN_DIR / "containerd.sock"
        self.kubelet_root = self.dir / "kubelet"
        self.pod_logs = self.dir / "pod-logs"
        self.host_file = self.dir / "host-state.json"
        self.timings: dict[str, float] = {}

    # --- up ---------------------------------------------------------------------------------

    def running(self) -> bool:
        return all(self.procs.pid(c) for c in COMPONENTS)

    def up(self, *, timeout: float = 180.0) -> float:
        start = time.monotonic()
        if self.running() and self._node_ready():
            return 0.0
        reason = unavailable_reason(self.cluster.bin_dir)
        if reason:
            raise RealNodeError(f"real node: {reason}")
        self._claim_machine()
        self.down()                      # leftovers of an earlier run of this state dir
        self._claim_machine()
        try:
            build = images_mod.Images().build()
            self.timings["images"] = time.monotonic() - start
            self._save_host_state()
            self._bridge()
            self._write_configs()
            self._start("containerd", ["containerd", "--config", str(self.dir / "containerd.toml")],
                        lambda: _run("ctr", "--address", self.sock, "version", check=False)
                        .returncode == 0, timeout)
            images_mod.Images().import_into(self.sock, build.archives)
            self.timings["containerd + images imported"] = time.monotonic() - start
            t_kubelet = time.monotonic()
            self._start("kubelet", self._kubelet_argv(), self._node_ready, timeout)
            self.timings["node join (kubelet start to Ready)"] = time.monotonic() - t_kubelet
            self._start("kube-proxy", self._kube_proxy_argv(),
                        lambda: _http_ok(f"http://127.0.0.1:{self._ports['proxy_health']}/healthz"),
                        timeout)
            self._start("coredns", [str(self.cluster.bin_dir / "coredns"), "-conf",
                                    str(self.dir / "Corefile")],
                        lambda: _http_ok(f"http://127.0.0.1:{self._ports['dns_ready']}/ready"),
                        timeout)
            self.timings["total"] = time.monotonic() - start
        except BaseException:
            self.down()
            raise
        return time.monotonic() - start

    def _claim_machine(self) -> None:
        """One real node per machine: bridge, iptables chains and ports are machine-wide."""
        try:
            owner = OWNER_FILE.read_text().strip()
        except OSError:
            owner = ""
        if owner and owner != str(self.cluster.state_dir) and Path(owner).exists():
            from .procs import Processes
            other = Processes(Path(owner))
            if any(other.pid(c) for c in COMPONENTS):
                raise RealNodeError(f"a real node already runs for {owner}; stop it first "
                                    f"(python -m localcluster --state-dir {owner} down)")
        OWNER_FILE.write_text(str(self.cluster.state_dir) + "\n")

    def _start(self, name: str, argv: list[str], ready, timeout: float) -> None:
        self.procs.start(name, argv)
        ok = wait_until(lambda: (self.procs.check_running(name), ready())[1], timeout,
                        interval=0.1)
        if not ok:
            raise ComponentError(f"{name} not ready after {timeout:.0f}s; last lines of "
                                 f"{self.procs.log(name)}:\n{log_tail(self.procs.log(name))}")

    def _node_ready(self) -> bool:
        try:
            node = self.cluster.api.get(f"/api/v1/nodes/{NODE_NAME}")
        except Exception:
            return False
        return any(c["type"] == "Ready" and c["status"] == "True"
                   for c in node.get("status", {}).get("conditions") or [])

    def _save_host_state(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        state = {"sysctls": {}, "ext": _external_interface(),
                 "var_lib_cni": Path("/var/lib/cni").exists(),
                 "run_netns": Path("/run/netns").exists()}
        for key in SYSCTLS:
            res = _run("sysctl", "-n", key, check=False)
            if res.returncode == 0:
                state["sysctls"][key] = res.stdout.strip()
        self.host_file.write_text(json.dumps(state, indent=2) + "\n")

    def _bridge(self) -> None:
        # The node IP must exist before kubelet starts (it refuses a loopback node IP).
        _run("ip", "link", "add", BRIDGE, "type", "bridge")
        _run("ip", "addr", "add", f"{NODE_IP}/24", "dev", BRIDGE)
        _run("ip", "link", "set", BRIDGE, "up")
        ext = json.loads(self.host_file.read_text())["ext"]
        _run("iptables", "-I", *[a.format(ext=ext) for a in FORWARD_RULE])

    @property
    def _ports(self) -> dict[str, int]:
        return json.loads((self.dir / "ports.json").read_text())

    def _write_configs(self) -> None:
        d, p = self.dir, self.cluster.state_dir / "pki"
        for sub in ("cni/net.d", "cni/data", "kubelet", "pod-logs", "volume-plugins"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        ports = {k: free_port() for k in ("kubelet_health", "proxy_health", "proxy_metrics",
                                          "dns_health", "dns_ready", "dns_metrics")}
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
                pki._leaf_cert(p, name, subject, usage, sans)
        for user in (f"node-{NODE_NAME}", "kube-proxy"):
            pki.write_kubeconfig(d / f"{user}.kubeconfig", server=self.cluster.server, pki=p,
                                 user=user)
        (d / "containerd.toml").write_text(f"""version = 2
root = "{d / 'containerd'}"
state = "{RUN_DIR / 'state'}"
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
        kubeconfig {self.cluster.kubeconfig} localcluster
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 5
}}
""")

    def _kubelet_argv(self) -> list[str]:
        return [str(self.cluster.bin_dir / "kubelet"), f"--config={self.dir / 'kubelet.json'}",
                f"--kubeconfig={self.dir / f'node-{NODE_NAME}.kubeconfig'}",
                f"--root-dir={self.kubelet_root}", f"--cert-dir={self.dir / 'kubelet-pki'}",
                f"--hostname-override={NODE_NAME}", f"--node-ip={NODE_IP}",
                "--node-labels=localcluster/node=real", "--v=1"]

    def _kube_proxy_argv(self) -> list[str]:
        ports = self._ports
        return [str(self.cluster.bin_dir / "kube-proxy"),
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
        """Stops the node and undoes its host changes: pods and sandboxes (through kubelet,
        then ctr), shims, mounts, network namespaces, the bridge, KUBE-* and our iptables
        rules, sysctls, kubepods cgroups, /var/log/containers links. Returns what it had to
        clean up by force (empty when kubelet did it all)."""
        forced: list[str] = []
        if self.procs.pid("kubelet"):
            self._drain(forced)
        for name in ("coredns", "kube-proxy", "kubelet"):
            self.procs.stop(name)
        if self.procs.pid("containerd"):
            self._remove_containers(forced)
        self.procs.stop("containerd", timeout=15.0)
        self._cleanup_host(forced)
        return forced

    def _drain(self, forced: list[str]) -> None:
        """Taints the node NoExecute (DaemonSet and StatefulSet controllers then place no new
        pod on it), deletes its pods and lets kubelet stop them and tear down their sandboxes
        (CNI DEL) while containerd still runs; then deletes the Node."""
        api = self.cluster.api
        path = f"/api/v1/nodes/{NODE_NAME}"
        on_node = f"/api/v1/pods?fieldSelector=spec.nodeName={NODE_NAME}"
        try:
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
        wait_until(lambda: not self._netns(), 15, 0.3)
        with contextlib.suppress(Exception):
            api.delete(path)

    def _netns(self) -> list[Path]:
        ns_dir = Path("/run/netns")
        return sorted(ns_dir.glob("cni-*")) if ns_dir.exists() else []

    def _ctr(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        return _run("ctr", "--address", self.sock, "-n", "k8s.io", *args, check=check)

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
        try:
            state = json.loads(self.host_file.read_text())
        except (OSError, ValueError):
            state = None
        for ns in self._netns():
            forced.append(f"netns {ns.name}")
            _run("ip", "netns", "delete", ns.name, check=False)
        for mount in reversed(self._our_mounts()):
            if mount != str(self.kubelet_root):   # kubelet bind-mounts its root on itself
                forced.append(f"mount {mount}")
            _run("umount", "-l", mount, check=False)
        if Path(f"/sys/class/net/{BRIDGE}").exists():
            _run("ip", "link", "delete", BRIDGE, check=False)
        _cleanup_iptables()
        if state:
            ext = state["ext"]
            while _run("iptables", "-D", *[a.format(ext=ext) for a in FORWARD_RULE],
                       check=False).returncode == 0:
                pass
            for key, value in state["sysctls"].items():
                _run("sysctl", "-q", "-w", f"{key}={value}", check=False)
            self._cleanup_cni_cache(state)
            if not state.get("run_netns", True):
                with contextlib.suppress(OSError):
                    Path("/run/netns").rmdir()   # made by containerd for pod network namespaces
            self.host_file.unlink()
        _remove_kubepods_cgroups()
        self._cleanup_logs()
        # The containerd root (content store, unpacked images) is kept: the next `up` imports
        # the images again in a fraction of the time. Nothing in it is mounted any more.
        # host-local's reservations go too, or addresses of dead pods fill the /24 over runs.
        for path in (RUN_DIR, self.kubelet_root, self.pod_logs, self.dir / "cni" / "data"):
            shutil.rmtree(path, ignore_errors=True)
        with contextlib.suppress(OSError):
            if OWNER_FILE.read_text().strip() == str(self.cluster.state_dir):
                OWNER_FILE.unlink()

    def _our_mounts(self) -> list[str]:
        roots = (str(RUN_DIR), str(self.dir), "/run/netns/cni-", "/var/run/netns/cni-")
        mounts = []
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            target = line.split()[4].replace("\\040", " ")
            if target.startswith(roots):
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


def _http_ok(url: str) -> bool:
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=2.0) as resp:
            return resp.status == 200
    except OSError:
        return False


def _cleanup_iptables() -> None:
    """Removes every KUBE-* chain (kubelet's and kube-proxy's) and the jumps to them."""
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
            import shlex
            _run(tool, "-t", tbl, "-D", *shlex.split(rule), check=False)
        for tbl, chain in chains:
            _run(tool, "-t", tbl, "-F", chain, check=False)
        for tbl, chain in chains:
            _run(tool, "-t", tbl, "-X", chain, check=False)


def _remove_kubepods_cgroups() -> None:
    """kubelet's kubepods hierarchy in every cgroup v1 controller (deepest first)."""
    for top in CGROUP_ROOT.glob("*/kubepods"):
        for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)


def leftovers() -> dict[str, list[str]]:
    """What a real node leaves on the host if teardown missed something (tests assert empty)."""
    out: dict[str, list[str]] = {}
    ns = Path("/run/netns")
    out["netns"] = [p.name for p in ns.glob("cni-*")] if ns.exists() else []
    out["mounts"] = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text()
                     .splitlines() if str(RUN_DIR) in line.split()[4]
                     or "/realnode/" in line.split()[4] or "/run/netns/cni-" in line.split()[4]]
    dump = _run("iptables-save", check=False).stdout
    out["iptables"] = [line for line in dump.splitlines()
                       if "KUBE-" in line or "localcluster-realnode" in line]
    out["bridge"] = [BRIDGE] if Path(f"/sys/class/net/{BRIDGE}").exists() else []
    out["cgroups"] = [str(p) for p in CGROUP_ROOT.glob("*/kubepods")]
    out["shims"] = [pid for pid in os.listdir("/proc") if pid.isdigit()
                    and _comm(pid) == "containerd-shim"]
    return {k: v for k, v in out.items() if v}


def _comm(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


__all__ = [
    "NODE_IP",
    "NODE_NAME",
    "RealNode",
    "RealNodeError",
    "leftovers",
    "unavailable_reason",
]
