"""etcd soak: the chart's etcd, run with exactly its rendered flags, under the write pattern of
vineyardd heartbeats from N nodes, time compressed; revision, dbSize and dbSizeInUse over
simulated time.

    python bench/etcd_soak.py [--nodes 1000] [--days 0.2] [--max-minutes 5]
                              [--restarts-per-day 1] [--measure-seconds 60]
    (the committed figures: --days 1.5 --max-minutes 50 --measure-seconds 120
     --after-restart-seconds 200 --check-nodes 200 --check-rounds 10)

Everything runs in a private network namespace holding only loopback (`unshare -n`, as root):
etcd, the vineyardd daemons (whose RPC binds 0.0.0.0) and the generator's clients, all on
127.0.0.1. The run is niced (--nice 10): the machine is shared.

1. **The real pattern.** Three real vineyardd 0.24.2 daemons (the chart's rendered flags, each
   with its own socket, RPC port and MY_NODE_NAME/MY_POD_NAME) join a real etcd 3.6.16 started
   with the chart's flags; `etcdctl watch --prefix '' --rev=1 -w json` records every event,
   etcd's /metrics counts the RPCs (txns, locks, lease grants and revokes, lease TTLs). After an
   idle window two daemons are restarted (one by SIGTERM with the same pod name, as a container
   restart; one by SIGKILL with a new pod name, as a crash and a replaced pod), 20 s later all
   three, and the key space is watched: do the dead instances' entries stay, and who removes
   them when?
2. **The generator** replays that pattern (keys, value sizes, leases, order per key): joins,
   heartbeats, and the live daemons' removal of dead instances' entries (one every
   `cleanup_every_s`, measured). It is checked first: given the real daemons' identities it
   must produce the same operations per heartbeat, join and removal (type, key template, value
   bytes, lease), the same order and the same revisions per heartbeat.
   vineyardd sends every operation as its own request (one heartbeat: LeaseGrant, Lock on the
   one cluster-wide `meta_sync_lock`, a txn putting its timestamp, Unlock, LeaseRevoke: three
   revisions). To reach days of 1,000 nodes the soak groups the same step of up to 128
   heartbeats (etcd's --max-txn-ops) into one txn under one lease: every key gets the same
   versions, values and lease attachment in the same order and each operation is still its
   own record in etcd's backend (revision main_sub); only fewer main revisions are spent, so
   the results give etcd's revision and the revisions vineyardd would have spent (3 per
   heartbeat, join and removal). A check run writes the same heartbeats both ways into two
   fresh members and compares their sizes.
3. **Time.** Simulated time is the heartbeats written: N nodes each send one every `interval`
   (measured: 10 s). etcd's periodic compactor runs on the wall clock, so with the chart's
   `--auto-compaction-mode=periodic --auto-compaction-retention=1h` it would not act within a
   compressed run; the soak runs etcd's own compactor algorithm on the simulated clock instead
   (server/etcdserver/api/v3compactor/periodic.go of etcd 3.6.16: every retention/10 record the
   revision, keep the last 11, and once a retention has passed since the last success compact
   to the oldest recorded), through etcd's Compact RPC, pausing the writers while it runs (in a
   real cluster it takes seconds, during which 1,000 nodes write a few thousand revisions).
   etcd's own compactor stays on, as rendered: in runs longer than the retention in wall time
   it compacts to a revision older than the simulated one, which does nothing. The defrag
   CronJob's schedule (rendered: `17 3 * * *`, `etcdctl defrag --cluster`) becomes a
   Defragment RPC at each simulated 03:17. `--restarts-per-day` rolling restarts of every node
   (the first at 04:00) add joins, and the removals of the old entries follow at the measured
   pace.
4. **Records**: every simulated 6 minutes and after each compaction, defragmentation and
   restart, etcd's revision, dbSize and dbSizeInUse (`/v3/maintenance/status`), in
   bench/results.json (`etcd-soak`); bench/report.py writes the table into results.md and draws
   bench/plots/etcd_soak.png.

Defaults fit 10 minutes on 2 busy cores (about 4 of them measuring the real daemons);
`--max-minutes` caps the soak's wall time and the run records how far it got.
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import itertools
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from common import load, log, record

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
BIN = REPO / ".cache" / "bin"
ETCD, ETCDCTL, HELM = BIN / "etcd", BIN / "etcdctl", BIN / "helm"
CHART = REPO / "charts" / "vineyard"
SECTION = "etcd-soak"
IN_NETNS = "VINEYARD_HELM_SOAK_NETNS"
MAX_TXN_OPS = 128  # etcd's --max-txn-ops default; the chart does not set it
JOIN_GROUP = 16  # joins per grouped txn: 16 x 7 instance keys + next_instance_id <= 128
CLEANUP_GROUP = 18  # dead instances' entries deleted per grouped txn: 18 x 7 <= 128
ENTRY_FIELDS = ("hostid", "member_id", "hostname", "nodename", "rpc_endpoint", "ipc_socket",
                "timestamp")  # an instance's entry, in the order vineyardd writes it

# etcd flags that say where a member lives (names, URLs, data dir): replaced by local
# equivalents. Every other rendered flag is passed exactly as rendered.
PLACEMENT_FLAGS = ("name", "data-dir", "listen-client-urls", "advertise-client-urls",
                   "listen-peer-urls", "initial-advertise-peer-urls", "initial-cluster",
                   "initial-cluster-state", "initial-cluster-token")


# --- the chart as rendered ---------------------------------------------------------------------

@dataclass
class Rendered:
    etcd_args: list[str]
    vineyardd_args: list[str]
    defrag_schedule: str
    defrag_command: list[str]

    @property
    def etcd_kept(self) -> list[str]:
        return [a for a in self.etcd_args
                if a.lstrip("-").split("=", 1)[0] not in PLACEMENT_FLAGS]

    def etcd_flag(self, name: str) -> str:
        for a in self.etcd_args:
            if a.startswith(f"--{name}="):
                return a.split("=", 1)[1]
        raise KeyError(name)

    def vineyardd_flag(self, name: str) -> str:
        for a in self.vineyardd_args:
            if a.startswith(f"--{name}="):
                return a.split("=", 1)[1]
        raise KeyError(name)


def render_chart() -> Rendered:
    """`helm template` of the chart with its default values: the etcd StatefulSet's and the
    vineyardd DaemonSet's container args, the defrag CronJob's schedule and command."""
    out = subprocess.run([str(HELM), "template", "soak", str(CHART)], capture_output=True,
                         text=True, check=True).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]

    def container(kind: str, name: str) -> dict[str, Any]:
        for d in docs:
            if d["kind"] != kind:
                continue
            spec = d["spec"]["jobTemplate"]["spec"] if kind == "CronJob" else d["spec"]
            for c in spec["template"]["spec"]["containers"]:
                if c["name"] == name or kind == "CronJob":
                    return c | {"_doc": d}
        raise LookupError(f"no {kind} container {name} in the rendered chart")

    etcd = container("StatefulSet", "etcd")
    vineyardd = container("DaemonSet", "vineyardd")
    defrag = container("CronJob", "")
    return Rendered(etcd_args=[str(a) for a in etcd["args"]],
                    vineyardd_args=[str(a) for a in vineyardd["args"]],
                    defrag_schedule=defrag["_doc"]["spec"]["schedule"],
                    defrag_command=[str(a) for a in (defrag.get("command") or [])
                                    + (defrag.get("args") or [])])


def periodic_retention_seconds(value: str) -> float:
    """--auto-compaction-retention in periodic mode: a Go duration, or hours when unitless."""
    if re.fullmatch(r"\d+", value):
        return int(value) * 3600.0
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3}
    total, pos = 0.0, 0
    for m in re.finditer(r"(\d+(?:\.\d+)?)(ms|h|m|s)", value):
        assert m.start() == pos, value
        total += float(m.group(1)) * units[m.group(2)]
        pos = m.end()
    assert pos == len(value), value
    assert total > 0, value
    return total


def cron_minute_hour(schedule: str) -> tuple[int, int]:
    minute, hour, *rest = schedule.split()
    daily = rest == ["*", "*", "*"] and minute.isdigit() and hour.isdigit()
    assert daily, f"the soak models a daily defrag schedule, not {schedule!r}"
    return int(minute), int(hour)


# --- processes ---------------------------------------------------------------------------------

def end_group(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
    """Ends a process started with start_new_session=True, and its group, by its pid."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def plain(x: Any) -> Any:
    """x as it reads back from JSON (tuples become lists), for comparisons with stored runs."""
    return json.loads(json.dumps(x))


def b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def unb64(text: str | None) -> bytes:
    return base64.b64decode(text or "")


class Etcd:
    """One etcd member on 127.0.0.1, with the chart's non-placement flags; its JSON gateway."""

    def __init__(self, root: Path, flags: list[str], port: int = 2379) -> None:
        self.root, self.flags, self.port = root, flags, port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None
        self._local = threading.local()

    def argv(self) -> list[str]:
        peer = f"http://127.0.0.1:{self.port + 1}"
        return [str(ETCD), "--name=soak-0", f"--data-dir={self.root / 'data'}",
                f"--listen-client-urls={self.url}", f"--advertise-client-urls={self.url}",
                f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=soak-0={peer}", "--initial-cluster-state=new",
                *self.flags]

    def start(self) -> Etcd:
        self.root.mkdir(parents=True, exist_ok=True)
        self.log = (self.root / "etcd.log").open("wb")
        self.proc = subprocess.Popen(self.argv(), stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
                if json.loads(self.get("/health")).get("health") == "true":
                    return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited: see {self.root / 'etcd.log'}")
            time.sleep(0.2)
        raise RuntimeError("etcd did not become healthy in 30 s")

    def stop(self) -> None:
        if self.proc:
            end_group(self.proc)
            self.log.close()

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                                 timeout=600)
        return conn

    def _request(self, method: str, path: str, body: bytes | None) -> bytes:
        for attempt in range(3):
            conn = self._conn()
            try:
                conn.request(method, path, body=body,
                             headers={"Content-Type": "application/json"} if body else {})
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                self._local.conn = None
                if attempt == 2:
                    raise
                continue
            if resp.status != 200:
                raise RuntimeError(f"etcd {path}: {resp.status} {data[:300]!r}")
            return data
        raise AssertionError("unreachable")

    def get(self, path: str) -> bytes:
        return self._request("GET", path, None)

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return json.loads(self._request("POST", path, json.dumps(body).encode()))

    def status(self) -> dict[str, int]:
        s = self.post("/v3/maintenance/status", {})
        return {"revision": int(s["header"]["revision"]), "db_size": int(s["dbSize"]),
                "db_size_in_use": int(s["dbSizeInUse"]), "quota": int(s["dbSizeQuota"])}

    def compact(self, revision: int, physical: bool = True) -> None:
        self.post("/v3/kv/compaction", {"revision": revision, "physical": physical})

    def defrag(self) -> None:
        self.post("/v3/maintenance/defragment", {})

    def alarms(self) -> list[dict[str, Any]]:
        return self.post("/v3/maintenance/alarm", {"action": "GET"}).get("alarms") or []

    def all_keys(self) -> list[dict[str, Any]]:
        kvs = self.post("/v3/kv/range", {"key": b64(b"\0"), "range_end": b64(b"\0")})
        return kvs.get("kvs") or []

    def leases(self) -> list[int]:
        return [int(x["ID"]) for x in self.post("/v3/lease/leases", {}).get("leases") or []]

    def metrics(self) -> dict[str, float]:
        """The RPC and lease counters of /metrics, summed per name and interesting label."""
        out: dict[str, float] = defaultdict(float)
        for line in self.get("/metrics").decode().splitlines():
            m = re.match(r"(grpc_server_handled_total|etcd_debugging_lease_\w+|"
                         r"etcd_server_proposals_committed_total)(\{[^}]*\})? (\S+)$", line)
            if not m:
                continue
            name, labels, value = m.group(1), m.group(2) or "", float(m.group(3))
            if name == "grpc_server_handled_total":
                method = re.search(r'grpc_method="(\w+)"', labels).group(1)
                out[f"rpc {method}"] += value
            elif name == "etcd_debugging_lease_ttl_total_bucket":
                bound = re.search(r'le="([^"]+)"', labels).group(1)
                out[f"lease ttl <= {bound}"] += value
            else:
                out[name] += value
        return dict(out)


# --- 1. the real pattern -----------------------------------------------------------------------

def vineyardd_binary() -> Path:
    import vineyard

    path = Path(vineyard.__file__).parent / "bdist" / "vineyardd"
    if not path.is_file():
        sys.exit(f"vineyardd not found at {path}: pip install vineyard==0.24.2")
    return path


class Watcher(threading.Thread):
    """`etcdctl watch --prefix '' -w json`: every event, with the time it arrived."""

    def __init__(self, etcd: Etcd) -> None:
        super().__init__(daemon=True)
        self.events: list[dict[str, Any]] = []
        self.proc = subprocess.Popen([str(ETCDCTL), f"--endpoints={etcd.url}", "watch",
                                      "--prefix", "", "--rev=1", "-w", "json"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        self.command = f"etcdctl --endpoints={etcd.url} watch --prefix '' --rev=1 -w json"

    def run(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if not line.strip():
                continue
            now, wall = time.monotonic(), time.time()
            resp = json.loads(line)
            for i, e in enumerate(resp.get("Events") or []):
                kv = e["kv"]
                self.events.append({
                    "t": now, "wall": wall, "type": "DELETE" if e.get("type") == 1 else "PUT",
                    "key": unb64(kv["key"]).decode(), "value": unb64(kv.get("value")).decode(),
                    "rev": int(kv["mod_revision"]), "sub": i,
                    "version": int(kv.get("version", 0)), "lease": int(kv.get("lease", 0))})

    def stop(self) -> None:
        end_group(self.proc)
        self.join(10)


class Daemon:
    """One real vineyardd with the chart's flags, as the pod of `node` named `pod`."""

    def __init__(self, binary: Path, rendered: Rendered, root: Path, etcd: Etcd, index: int):
        self.binary, self.rendered, self.etcd, self.index = binary, rendered, etcd, index
        self.dir = root / f"vineyardd-{index}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket = self.dir / "vineyard.sock"
        self.rpc_port = 9600 + index
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def argv(self) -> list[str]:
        mapped = {"socket": str(self.socket), "etcd_endpoint": self.etcd.url,
                  "rpc_socket_port": str(self.rpc_port)}
        out = [str(self.binary)]
        for a in self.rendered.vineyardd_args:
            name = a.lstrip("-").split("=", 1)[0]
            out.append(f"--{name}={mapped[name]}" if name in mapped else a)
        return out

    def start(self, pod: str) -> None:
        self.pod = pod
        self.starts += 1
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.dir), "TMPDIR": str(self.dir),
               "MY_NODE_NAME": f"soak-node-{self.index}", "MY_POD_NAME": pod,
               "MY_POD_NAMESPACE": "default", "MY_HOST_NAME": "127.0.0.1"}
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        log_file = (self.dir / f"vineyardd.{self.starts}.log").open("wb")
        self.proc = subprocess.Popen(self.argv(), env=env, stdout=log_file,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while not self.socket.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"vineyardd {self.index} did not start: see {log_file.name}")
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc:
            end_group(self.proc, sig)


INSTANCE = re.compile(r"/instances/i(\d+)/")
CLIENT_VIEW = """
import json, sys, vineyard
meta = vineyard.connect(sys.argv[1]).meta
print(json.dumps({str(i): {"nodename": m.get("nodename"), "timestamp": m.get("timestamp")}
                  for i, m in sorted(meta.items())}))
"""


def client_view(socket: Path) -> dict[str, Any]:
    """The instances a vineyard client is told about (IPCClient.meta) by a live daemon."""
    proc = subprocess.run([sys.executable, "-c", CLIENT_VIEW, str(socket)], capture_output=True,
                          text=True, timeout=120)
    if proc.returncode:
        return {"error": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout)


def template(key: str, prefix: str) -> str:
    key = key.replace(prefix, "{prefix}", 1)
    key = INSTANCE.sub("/instances/i{id}/", key)
    return re.sub(r"/meta_sync_lock/[0-9a-f]{16}$", "/meta_sync_lock/{lease}", key)


def shape(e: dict[str, Any], prefix: str) -> tuple[str, str, int, bool]:
    """An operation without its ids and timing: type, key template, value bytes, under a lease."""
    return e["type"], template(e["key"], prefix), len(e["value"]), e["lease"] != 0


def signature(events: list[dict[str, Any]], prefix: str) -> dict[str, Any]:
    """What a run of events writes: the join revisions (those bumping next_instance_id), and
    every other operation counted per heartbeat (a put of an instance's timestamp), with the
    revisions they took per heartbeat."""
    by_rev: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        by_rev[e["rev"]].append(e)
    joins, ops, revisions = [], Counter(), 0
    for rev_ops in by_rev.values():
        if any(o["key"].endswith("/next_instance_id") for o in rev_ops):
            joins.append(sorted(shape(o, prefix) for o in rev_ops))
            continue
        revisions += 1
        ops.update(shape(o, prefix) for o in rev_ops)
    beats = sum(n for (kind, key, _, _), n in ops.items()
                if kind == "PUT" and key.endswith("/timestamp"))
    return {"joins": joins, "heartbeats": beats,
            "per_heartbeat": sorted([*k, round(n / beats, 3)] for k, n in ops.items())
            if beats else [],
            "revisions_per_heartbeat": round(revisions / beats, 3) if beats else None}


def heartbeat_order(events: list[dict[str, Any]], prefix: str) -> list[tuple]:
    """The operations of one heartbeat in revision order: the lock key put just before an
    instance's timestamp put, the timestamp put, and the lock key's next operation."""
    events = sorted(events, key=lambda e: (e["rev"], e["sub"]))
    for i, e in enumerate(events):
        if e["key"].endswith("/timestamp") and i > 0 and "/meta_sync_lock/" in events[i - 1][
                "key"]:
            lock = events[i - 1]
            unlock = next((x for x in events[i + 1:] if x["key"] == lock["key"]), None)
            if unlock:
                return [shape(o, prefix) for o in (lock, e, unlock)]
    raise LookupError("no heartbeat in the events")


def instance_deletes(events: list[dict[str, Any]], beats: dict[int, list[dict[str, Any]]],
                     t_restart: float, prefix: str) -> list[dict[str, Any]]:
    """Deletes of instance entries: which instance, when (seconds after the restarts and after
    that instance's last heartbeat), how many keys, in how many revisions."""
    deleted: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        if e["type"] == "DELETE" and (m := INSTANCE.search(e["key"])):
            deleted[int(m.group(1))].append(e)
    out = []
    for instance, dels in sorted(deleted.items()):
        last = max((b["t"] for b in beats.get(instance, [])), default=None)
        rev = min(e["rev"] for e in dels)
        around = [[e["rev"] - rev, *shape(e, prefix)] for e in events
                  if rev - 2 <= e["rev"] <= rev + 2]
        out.append({"instance": instance, "keys": len(dels), "around": sorted(around),
                    "revisions": len({e["rev"] for e in dels}),
                    "key_templates": sorted({template(e["key"], prefix) for e in dels}),
                    "s_after_restart": round(min(e["t"] for e in dels) - t_restart, 1),
                    "s_after_last_heartbeat": round(min(e["t"] for e in dels) - last, 1)
                    if last else None})
    return out


def cleanup_of(deletes: list[dict[str, Any]]) -> dict[str, Any]:
    """How live daemons remove dead instances' entries: the first removal after the dead
    instance's last heartbeat, the median gap between successive removals, the revision's
    operations and what surrounds it."""
    if not deletes:
        return {"first_s": None, "every_s": None, "removed": 0}
    times = sorted(d["s_after_restart"] for d in deletes)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    first = min(d["s_after_last_heartbeat"] for d in deletes if d["s_after_last_heartbeat"])
    return {"first_s": first, "every_s": statistics.median(gaps) if gaps else None,
            "removed": len(deletes), "removal_s_after_restart": times,
            "around": deletes[0]["around"]}


def measure_real(root: Path, rendered: Rendered, idle_s: float, after_s: float,
                 daemons_n: int = 3) -> dict[str, Any]:
    """Real daemons against the chart's etcd: the heartbeat pattern, its rate, and what a
    restart leaves behind."""
    etcd = Etcd(root / "etcd-real", rendered.etcd_kept).start()
    watcher = Watcher(etcd)
    watcher.start()
    binary = vineyardd_binary()
    daemons = [Daemon(binary, rendered, root, etcd, i) for i in range(daemons_n)]
    out: dict[str, Any] = {"daemons": daemons_n, "watch_command": watcher.command,
                           "vineyardd_flags": daemons[0].argv()[1:]}
    try:
        for d in daemons:
            d.start(f"vineyard-{random.randbytes(3).hex()[:5]}")
        time.sleep(12)  # past everyone's first heartbeat
        log(f"real vineyardd x{daemons_n}: idle for {idle_s:.0f} s")
        s0, m0, t0 = etcd.status(), etcd.metrics(), time.monotonic()
        time.sleep(idle_s)
        t1, m1, s1 = time.monotonic(), etcd.metrics(), etcd.status()
        per = daemons_n * (t1 - t0) / 60
        delta = {k: m1.get(k, 0) - m0.get(k, 0) for k in m1}
        out["idle"] = {
            "seconds": round(t1 - t0, 1),
            "revisions": s1["revision"] - s0["revision"],
            "revisions_per_minute_per_instance": round(
                (s1["revision"] - s0["revision"]) / per, 2),
            "rpcs_per_minute_per_instance": {k.split(" ", 1)[1]: round(v / per, 2)
                                             for k, v in sorted(delta.items())
                                             if k.startswith("rpc ") and v},
            "raft_proposals_per_minute_per_instance": round(
                delta.get("etcd_server_proposals_committed_total", 0) / per, 2),
            "lease_grants_per_minute_per_instance": round(
                delta.get("etcd_debugging_lease_granted_total", 0) / per, 2),
            "lease_revokes_per_minute_per_instance": round(
                delta.get("etcd_debugging_lease_revoked_total", 0) / per, 2),
        }
        ttl_n = delta.get("etcd_debugging_lease_ttl_total_count", 0)
        out["lease_ttl_s"] = (round(delta["etcd_debugging_lease_ttl_total_sum"] / ttl_n)
                              if ttl_n else None)
        idle_events = [e for e in watcher.events if t0 <= e["t"] <= t1]
        out["identities"] = [{"name": f"soak-node-{d.index}", "host": "127.0.0.1",
                              "socket": str(d.socket), "rpc_port": d.rpc_port}
                             for d in daemons]
        log(f"restarts: 2 daemons, then 20 s later all {daemons_n}; watching {after_s:.0f} s")
        daemons[0].stop(signal.SIGTERM)  # a container restart: same pod name
        daemons[0].start(daemons[0].pod)
        daemons[1].stop(signal.SIGKILL)  # a crash, and the pod replaced: a new pod name
        daemons[1].start(f"vineyard-{random.randbytes(3).hex()[:5]}")
        t_restart = time.monotonic()
        time.sleep(15.0)
        out["client_view_15s"] = client_view(daemons[-1].socket)
        time.sleep(max(0.0, 20.0 - (time.monotonic() - t_restart)))
        for d, sig in zip(daemons, itertools.cycle((signal.SIGKILL, signal.SIGTERM)),
                          strict=False):
            d.stop(sig)
            d.start(f"vineyard-{random.randbytes(3).hex()[:5]}" if sig == signal.SIGKILL
                    else d.pod)
        time.sleep(max(0.0, after_s - (time.monotonic() - t_restart)))
        keys, status, t_end = etcd.all_keys(), etcd.status(), time.monotonic()
        live_leases = etcd.leases()
        out["client_view"] = client_view(daemons[-1].socket)
    finally:
        for d in daemons:
            d.stop()
        watcher.stop()
        etcd.stop()
    events = watcher.events
    prefix = next(e["key"].split("/instances/")[0] for e in events if "/instances/" in e["key"])
    beats: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        if ((m := INSTANCE.search(e["key"])) and e["key"].endswith("/timestamp")
                and e["type"] == "PUT"):
            beats[int(m.group(1))].append(e)
    gaps = [(int(b["value"]) >> 32) - (int(a["value"]) >> 32)
            for bs in beats.values() for a, b in itertools.pairwise(bs)]
    skew = [abs((int(e["value"]) >> 32) - e["wall"]) for bs in beats.values() for e in bs]
    kept: dict[int, list[tuple[str, bytes]]] = defaultdict(list)
    for kv in keys:
        key = unb64(kv["key"]).decode()
        if m := INSTANCE.search(key):
            kept[int(m.group(1))].append((key, unb64(kv.get("value"))))
    quiet = max(25.0, 2.5 * statistics.median(gaps))
    stale = sorted(i for i in kept if t_end - max(e["t"] for e in beats[i]) > quiet)
    member_id = next(v.decode() for kvs in kept.values() for k, v in kvs
                     if k.endswith("/member_id"))
    hostids = sorted(len(v) for kvs in kept.values() for k, v in kvs if k.endswith("/hostid"))
    idle = whole_heartbeats(idle_events)
    deletes = instance_deletes(events, beats, t_restart, prefix)
    out.update({
        "prefix": prefix, "member_id_value": member_id, "hostid_digits_seen": hostids,
        "heartbeat_interval_s": statistics.median(gaps),
        "timestamp_value": ("(unix seconds << 32) | microseconds" if max(skew) < 5
                            else f"unknown (seconds field off by {max(skew)})"),
        "heartbeat_order": plain(heartbeat_order(idle, prefix)),
        "idle_signature": plain(signature(idle, prefix)),
        "join": plain(signature(events, prefix)["joins"][0]),
        "restart": {
            "how": "daemon 0 stopped by SIGTERM and started with the same pod name (a container "
                   "restart), daemon 1 by SIGKILL and started with a new pod name (a crash, the "
                   f"pod replaced); 20 s later all {daemons_n} again, alternately so",
            "seconds_watched_after": round(t_end - t_restart, 1),
            "instance_ids_with_keys": sorted(kept),
            "stale_instance_ids": stale,
            "stale_keys_per_instance": sorted({len(kept[i]) for i in stale}),
            "stale_bytes_per_instance": sorted({sum(len(k) + len(v) for k, v in kept[i])
                                                for i in stale}),
            "keys_total": len(keys), "live_leases": len(live_leases),
            "revision": status["revision"],
            "next_instance_id": next((unb64(kv.get("value")).decode() for kv in keys
                                      if unb64(kv["key"]).decode().endswith(
                                          "/next_instance_id")), None),
        },
        "events": len(events),
        "instance_key_deletes": deletes,
        "cleanup": cleanup_of(deletes),
    })
    return out


# --- 2. the generator --------------------------------------------------------------------------

@dataclass
class Node:
    """One vineyardd pod's identity, as the daemon writes it into its instance entry."""
    name: str  # MY_NODE_NAME
    host: str  # MY_HOST_NAME (the pod IP)
    socket: str  # --socket
    rpc_port: int
    instance: int = -1


@dataclass
class Pattern:
    """What the real daemons wrote (measure_real), as the generator needs it."""
    prefix: str
    interval_s: float
    lease_ttl_s: int
    member_id: str  # the value of instances/i<id>/member_id (the same for every instance)
    hostid_digits: int  # instances/i<id>/hostid: a decimal number, 13 or 14 digits seen
    # A live daemon deletes a dead instance's entry this long after its last heartbeat, then
    # the next dead one every cleanup_every_s (None: never seen).
    cleanup_first_s: float | None
    cleanup_every_s: float | None

    @classmethod
    def of(cls, real: dict[str, Any]) -> Pattern:
        hostid = next(op[2] for op in real["join"] if op[1].endswith("/hostid"))
        cleanup = real["cleanup"]
        return cls(real["prefix"], float(real["heartbeat_interval_s"]),
                   int(real["lease_ttl_s"]), real["member_id_value"], hostid,
                   cleanup["first_s"], cleanup["every_s"])


class Generator:
    """Writes vineyardd's key pattern for a set of nodes.

    join: as the daemon does on start (LeaseGrant, Lock on {prefix}/meta_sync_lock, one txn
    putting the instance's seven keys and next_instance_id, Unlock, LeaseRevoke).
    heartbeat: `exact` sends each as vineyardd does (LeaseGrant, Lock, a txn putting the
    instance's timestamp, Unlock, LeaseRevoke: three revisions); `grouped` writes the same steps
    of up to 128 heartbeats as one txn each (the lock keys with one lease, the timestamps, the
    lock keys' deletes). Reads (the daemon's Range and the Lock's own) are not replayed: they
    do not change the backend."""

    def __init__(self, etcd: Etcd, pattern: Pattern, epoch: float) -> None:
        self.etcd, self.pattern, self.epoch = etcd, pattern, epoch
        self.lock_name = f"{pattern.prefix}/meta_sync_lock"
        self.next_id = 0
        self._ids = threading.Lock()
        self._seq = iter(range(0x6000000000000000, 0x7000000000000000))
        self._seq_lock = threading.Lock()
        self.joins = self.heartbeats = self.cleanups = 0

    def timestamp(self, sim_s: float) -> str:
        secs = self.epoch + sim_s
        return str((int(secs) << 32) | int(secs % 1 * 1e6))

    def instance_key(self, node: Node, name: str) -> str:
        return f"{self.pattern.prefix}/instances/i{node.instance}/{name}"

    def _grant(self) -> int:
        return int(self.etcd.post("/v3/lease/grant", {"TTL": self.pattern.lease_ttl_s})["ID"])

    def _lock(self, lease: int) -> str:
        return self.etcd.post("/v3/lock/lock", {"name": b64(self.lock_name),
                                                "lease": lease})["key"]

    def _instance_ops(self, node: Node, sim_s: float) -> list[dict[str, Any]]:
        """The puts of an instance's entry, in the daemon's order (measured)."""
        digits = self.pattern.hostid_digits
        values = {"hostid": str(random.randrange(10**(digits - 1), 10**digits)),
                  "member_id": self.pattern.member_id, "hostname": json.dumps(node.host),
                  "nodename": json.dumps(node.name),
                  "rpc_endpoint": json.dumps(f"{node.host}:{node.rpc_port}"),
                  "ipc_socket": json.dumps(node.socket), "timestamp": self.timestamp(sim_s)}
        return [{"request_put": {"key": b64(self.instance_key(node, f)),
                                 "value": b64(values[f])}} for f in ENTRY_FIELDS]

    def _next_ids(self, nodes: list[Node]) -> dict[str, Any]:
        """Gives the nodes new instance ids; the put of next_instance_id that follows."""
        with self._ids:
            for node in nodes:
                node.instance, self.next_id = self.next_id, self.next_id + 1
            nxt = self.next_id
        return {"request_put": {"key": b64(f"{self.pattern.prefix}/next_instance_id"),
                                "value": b64(str(nxt))}}

    def join(self, node: Node, sim_s: float) -> None:
        lease = self._grant()
        key = self._lock(lease)
        bump = self._next_ids([node])  # under the etcd lock, as vineyardd does
        self.etcd.post("/v3/kv/txn", {"success": [*self._instance_ops(node, sim_s), bump]})
        self.etcd.post("/v3/lock/unlock", {"key": key})
        self.etcd.post("/v3/lease/revoke", {"ID": lease})
        self.joins += 1

    def joins_grouped(self, nodes: list[Node], sim_s: float) -> None:
        """Up to 16 joins as three txns: their lock keys (one lease), their entries with one
        put of next_instance_id (vineyardd puts it once per join), the lock keys' deletes."""
        assert len(nodes) * 7 + 1 <= MAX_TXN_OPS
        lease = self._grant()
        locks = self._lock_keys(len(nodes))
        self.etcd.post("/v3/kv/txn", {"success": [
            {"request_put": {"key": k, "value": "", "lease": lease}} for k in locks]})
        bump = self._next_ids(nodes)
        self.etcd.post("/v3/kv/txn", {"success": [
            *(op for n in nodes for op in self._instance_ops(n, sim_s)), bump]})
        self.etcd.post("/v3/kv/txn", {"success": [
            {"request_delete_range": {"key": k}} for k in locks]})
        self.etcd.post("/v3/lease/revoke", {"ID": lease})
        self.joins += len(nodes)

    def _lock_keys(self, n: int) -> list[str]:
        """Lock keys shaped like the Lock RPC's ({name}/{lease id as 16 hex digits}), unique."""
        with self._seq_lock:
            return [b64(f"{self.lock_name}/{next(self._seq):016x}") for _ in range(n)]

    def _entry_deletes(self, instance: int) -> list[dict[str, Any]]:
        return [{"request_delete_range": {"key": b64(
            f"{self.pattern.prefix}/instances/i{instance}/{f}")}} for f in ENTRY_FIELDS]

    def cleanup(self, instance: int) -> None:
        """A live daemon removing a dead instance's entry (measured): Lock, one txn deleting
        its seven keys, Unlock."""
        lease = self._grant()
        key = self._lock(lease)
        self.etcd.post("/v3/kv/txn", {"success": self._entry_deletes(instance)})
        self.etcd.post("/v3/lock/unlock", {"key": key})
        self.etcd.post("/v3/lease/revoke", {"ID": lease})
        self.cleanups += 1

    def cleanups_grouped(self, instances: list[int]) -> None:
        """Up to 18 cleanups as three txns: lock keys (one lease), the entries' deletes, the
        lock keys' deletes."""
        assert len(instances) * len(ENTRY_FIELDS) <= MAX_TXN_OPS
        lease = self._grant()
        locks = self._lock_keys(len(instances))
        self.etcd.post("/v3/kv/txn", {"success": [
            {"request_put": {"key": k, "value": "", "lease": lease}} for k in locks]})
        self.etcd.post("/v3/kv/txn", {"success": [
            op for i in instances for op in self._entry_deletes(i)]})
        self.etcd.post("/v3/kv/txn", {"success": [
            {"request_delete_range": {"key": k}} for k in locks]})
        self.etcd.post("/v3/lease/revoke", {"ID": lease})
        self.cleanups += len(instances)

    def heartbeat(self, node: Node, sim_s: float) -> None:
        lease = self._grant()
        key = self._lock(lease)
        self.etcd.post("/v3/kv/txn", {"success": [
            {"request_put": {"key": b64(self.instance_key(node, "timestamp")),
                             "value": b64(self.timestamp(sim_s))}}]})
        self.etcd.post("/v3/lock/unlock", {"key": key})
        self.etcd.post("/v3/lease/revoke", {"ID": lease})
        self.heartbeats += 1

    def heartbeats_grouped(self, beats: list[tuple[Node, float]]) -> None:
        assert len(beats) <= MAX_TXN_OPS
        assert len({n.instance for n, _ in beats}) == len(beats), "a node twice in one group"
        lease = self._grant()
        locks = self._lock_keys(len(beats))
        self.etcd.post("/v3/kv/txn", {"success": [
            {"request_put": {"key": k, "value": "", "lease": lease}} for k in locks]})
        self.etcd.post("/v3/kv/txn", {"success": [
            {"request_put": {"key": b64(self.instance_key(n, "timestamp")),
                             "value": b64(self.timestamp(t))}} for n, t in beats]})
        self.etcd.post("/v3/kv/txn", {"success": [
            {"request_delete_range": {"key": k}} for k in locks]})
        self.etcd.post("/v3/lease/revoke", {"ID": lease})
        self.heartbeats += len(beats)


def cluster_nodes(n: int, socket: str, rpc_port: int) -> list[Node]:
    """n pods as a cluster would name them: node names, pod IPs of a /16 pod network."""
    return [Node(f"node-{i:04d}", f"10.244.{i // 250}.{i % 250 + 2}", socket, rpc_port)
            for i in range(n)]


def groups_of(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def whole_heartbeats(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events from the first lock put to the last lock delete: no heartbeat cut by a window."""
    events = sorted(events, key=lambda e: (e["rev"], e["sub"]))
    first = next(i for i, e in enumerate(events)
                 if e["type"] == "PUT" and "/meta_sync_lock/" in e["key"])
    last = max(i for i, e in enumerate(events)
               if e["type"] == "DELETE" and "/meta_sync_lock/" in e["key"])
    return events[first:last + 1]


def check_generator(root: Path, rendered: Rendered, real: dict[str, Any],
                    rounds: int = 4) -> dict[str, Any]:
    """The generator, given the real daemons' identities, against what they wrote: the same
    operations per heartbeat (type, key template, value bytes, lease) and per join; `exact`
    also in the same order and revisions."""
    pattern = Pattern.of(real)
    want = real["idle_signature"]
    entry = Counter(tuple(op) for op in real["join"] if not op[1].endswith("/next_instance_id"))
    out: dict[str, Any] = {"real": {k: want[k] for k in ("per_heartbeat",
                                                         "revisions_per_heartbeat")},
                           "rounds": rounds, "nodes": len(real["identities"])}
    for mode in ("exact", "grouped"):
        etcd = Etcd(root / f"etcd-check-{mode}", rendered.etcd_kept).start()
        watcher = Watcher(etcd)
        watcher.start()
        nodes = [Node(**i) for i in real["identities"]]
        try:
            gen = Generator(etcd, pattern, time.time())
            if mode == "exact":
                for n in nodes:
                    gen.join(n, 0.0)
            else:
                gen.joins_grouped(nodes, 0.0)
            joined = etcd.status()["revision"]
            for k in range(1, rounds + 1):
                beats = [(n, k * pattern.interval_s) for n in nodes]
                if mode == "exact":
                    for n, t in beats:
                        gen.heartbeat(n, t)
                else:
                    gen.heartbeats_grouped(beats)
            beaten = etcd.status()["revision"]
            if mode == "exact" and real["cleanup"]["removed"]:
                gen.cleanup(nodes[0].instance)
            time.sleep(1)
        finally:
            watcher.stop()
            etcd.stop()
        beats = [e for e in watcher.events if joined < e["rev"] <= beaten]
        got = plain(signature(whole_heartbeats(beats), pattern.prefix))
        joins = signature(watcher.events, pattern.prefix)["joins"]
        entries = Counter(op for j in joins for op in j if not op[1].endswith("/next_instance_id"))
        out[mode] = {"per_heartbeat": got["per_heartbeat"],
                     "revisions_per_heartbeat": got["revisions_per_heartbeat"],
                     "join_revisions": len(joins),
                     "same_operations_per_heartbeat": got["per_heartbeat"] ==
                     want["per_heartbeat"],
                     "same_instance_entries": entries == Counter(
                         {op: n * len(nodes) for op, n in entry.items()})}
        if mode == "exact":
            out[mode]["same_join"] = plain(joins) == [real["join"]] * len(nodes)
            out[mode]["same_order"] = plain(heartbeat_order(beats, pattern.prefix)) == \
                real["heartbeat_order"]
            out[mode]["same_revisions_per_heartbeat"] = got["revisions_per_heartbeat"] == \
                want["revisions_per_heartbeat"]
            if real["cleanup"]["removed"]:
                removal = instance_deletes(watcher.events, {}, 0.0, pattern.prefix)

                def near(around: list[list[Any]]) -> list[list[Any]]:
                    return sorted(op for op in plain(around) if -1 <= op[0] <= 1)

                out[mode]["same_cleanup"] = len(removal) == 1 and near(
                    removal[0]["around"]) == near(real["cleanup"]["around"])
    out["ok"] = all(out[m][k] for m in ("exact", "grouped") for k in out[m]
                    if k.startswith("same_"))
    return out


def size_equivalence(root: Path, rendered: Rendered, pattern: Pattern, nodes_n: int,
                     rounds: int, workers: int) -> dict[str, Any]:
    """The same joins and heartbeats written exact (as vineyardd: one request per operation,
    one lease per heartbeat) and grouped, each into a fresh member: sizes and rates."""
    out: dict[str, Any] = {"nodes": nodes_n, "rounds": rounds}
    for mode in ("exact", "grouped"):
        etcd = Etcd(root / f"etcd-equiv-{mode}", rendered.etcd_kept).start()
        try:
            gen = Generator(etcd, pattern, time.time())
            nodes = cluster_nodes(nodes_n, rendered.vineyardd_flag("socket"),
                                  int(rendered.vineyardd_flag("rpc_socket_port")))
            with ThreadPoolExecutor(workers) as pool:
                if mode == "exact":
                    list(pool.map(lambda n, g=gen: g.join(n, 0.0), nodes))
                else:
                    list(pool.map(lambda ns, g=gen: g.joins_grouped(ns, 0.0),
                                  groups_of(nodes, JOIN_GROUP)))
                joined = etcd.status()
                start = time.monotonic()
                for r in range(1, rounds + 1):
                    beats = [(n, r * pattern.interval_s) for n in nodes]
                    if mode == "exact":
                        list(pool.map(lambda b, g=gen: g.heartbeat(*b), beats))
                    else:
                        list(pool.map(gen.heartbeats_grouped,
                                      groups_of(beats, min(MAX_TXN_OPS, nodes_n))))
                took = time.monotonic() - start
            st = etcd.status()
            out[mode] = st | {"seconds": round(took, 1),
                              "heartbeats_per_s": round(gen.heartbeats / took),
                              "heartbeats_in_use_bytes": st["db_size_in_use"]
                              - joined["db_size_in_use"]}
        finally:
            etcd.stop()
    ex, gr = out["exact"], out["grouped"]
    out["in_use_grouped_over_exact"] = round(gr["db_size_in_use"] / ex["db_size_in_use"], 3)
    out["heartbeats_in_use_grouped_over_exact"] = round(
        gr["heartbeats_in_use_bytes"] / ex["heartbeats_in_use_bytes"], 3)
    out["size_grouped_over_exact"] = round(gr["db_size"] / ex["db_size"], 3)
    return out


@dataclass
class Compactor:
    """etcd 3.6.16's periodic compactor (server/etcdserver/api/v3compactor/periodic.go) on the
    simulated clock: every retry interval (retention/10, at most 6 min) it records the
    revision, keeping the last retention/retry + 1; once `base` has passed since the last
    success it compacts to the oldest recorded (the revision one retention ago)."""
    retention: float
    revs: list[int] = field(default_factory=list)
    last_rev: int = 0
    last_success: float = 0.0

    def __post_init__(self) -> None:
        self.interval = min(self.retention, 3600.0)
        self.retry = self.interval / 10
        self.keep = int(self.retention / self.retry) + 1
        self.base = self.retention
        self.next_tick = 0.0

    def tick(self, now: float, current_rev: int) -> int | None:
        """The loop body at `now` (a multiple of retry): the revision to compact to, if any;
        the caller compacts, then calls done()."""
        target = None
        if now > 0 and self.revs:
            rev = self.revs[0]
            if not (now - self.last_success < self.base or rev == self.last_rev):
                if self.base == self.retention:
                    self.base = self.interval
                target = rev
        self.revs.append(current_rev)
        if len(self.revs) > self.keep:
            self.revs = self.revs[1:]
        self.next_tick = now + self.retry
        return target

    def done(self, now: float, rev: int) -> None:
        self.last_rev, self.last_success = rev, now


COLUMNS = ["sim_h", "wall_s", "revision", "vineyardd_revision", "db_size", "db_size_in_use",
           "heartbeats", "event"]


def soak(root: Path, rendered: Rendered, pattern: Pattern, nodes_n: int, days: float,
         restarts_per_day: float, max_wall_s: float, workers: int) -> dict[str, Any]:
    """N nodes for `days` simulated days: grouped heartbeats as fast as etcd takes them; the
    periodic compactor and the daily defrag on the simulated clock; rolling restarts."""
    mode = rendered.etcd_flag("auto-compaction-mode")
    assert mode == "periodic", f"the soak models periodic compaction, the chart renders {mode}"
    compactor = Compactor(periodic_retention_seconds(
        rendered.etcd_flag("auto-compaction-retention")))
    d_min, d_hour = cron_minute_hour(rendered.defrag_schedule)
    etcd = Etcd(root / "etcd-soak", rendered.etcd_kept).start()
    gen = Generator(etcd, pattern, time.time())
    nodes = cluster_nodes(nodes_n, rendered.vineyardd_flag("socket"),
                          int(rendered.vineyardd_flag("rpc_socket_port")))
    group = min(MAX_TXN_OPS, nodes_n)
    end_s = days * 86400.0
    next_defrag = d_hour * 3600.0 + d_min * 60.0
    restarts = ([4 * 3600.0 + k * 86400.0 / restarts_per_day
                 for k in range(int(days * restarts_per_day) + 1)] if restarts_per_day else [])
    samples: list[list[Any]] = []
    cleanups: list[tuple[float, int]] = []  # (simulated time, dead instance id)
    wall0 = time.monotonic()
    events: list[dict[str, Any]] = []

    def sample(sim_s: float, event: str) -> dict[str, int]:
        st = etcd.status()
        samples.append([round(sim_s / 3600, 3), round(time.monotonic() - wall0, 1),
                        st["revision"], 3 * (gen.heartbeats + gen.joins + gen.cleanups),
                        st["db_size"],
                        st["db_size_in_use"], gen.heartbeats, event])
        return st

    h, minute, stopped_early = 0, 0, False
    per_minute = nodes_n * 60 / pattern.interval_s
    try:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda ns: gen.joins_grouped(ns, 0.0), groups_of(nodes, JOIN_GROUP)))
            sample(0.0, "joined")
            while minute * 60 < end_s:
                now = minute * 60.0
                while compactor.next_tick <= now:
                    at = compactor.next_tick
                    target = compactor.tick(at, sample(at, "tick")["revision"])
                    if target is not None:
                        t = time.monotonic()
                        etcd.compact(target)
                        compactor.done(at, target)
                        events.append({"sim_h": at / 3600, "compact_to": target,
                                       "seconds": round(time.monotonic() - t, 1)})
                        sample(at, "compacted")
                while next_defrag <= now:
                    t = time.monotonic()
                    etcd.defrag()
                    events.append({"sim_h": next_defrag / 3600, "defrag": True,
                                   "seconds": round(time.monotonic() - t, 1)})
                    sample(next_defrag, "defragmented")
                    next_defrag += 86400.0
                due = [i for t, i in cleanups if t <= now]
                if due:
                    cleanups = [(t, i) for t, i in cleanups if t > now]
                    list(pool.map(gen.cleanups_grouped, groups_of(due, CLEANUP_GROUP)))
                while restarts and restarts[0] <= now:
                    at = restarts.pop(0)
                    t = time.monotonic()
                    dead = [n.instance for n in nodes]
                    list(pool.map(lambda ns, at=at: gen.joins_grouped(ns, at),
                                  groups_of(nodes, JOIN_GROUP)))
                    if pattern.cleanup_first_s is not None:
                        every = pattern.cleanup_every_s or 0.0
                        start = max([at + pattern.cleanup_first_s,
                                     *(t + every for t, _ in cleanups)])
                        cleanups += [(start + k * every, i) for k, i in enumerate(dead)]
                    events.append({"sim_h": at / 3600, "rolling_restart": nodes_n,
                                   "seconds": round(time.monotonic() - t, 1)})
                    sample(at, "restarted")
                end = round((minute + 1) * per_minute)
                beats = [(nodes[i % nodes_n], i * pattern.interval_s / nodes_n)
                         for i in range(h, end)]
                list(pool.map(gen.heartbeats_grouped, groups_of(beats, group)))
                h, minute = end, minute + 1
                if minute % 360 == 0:
                    last = samples[-1]
                    log(f"simulated {minute / 60:.0f} h of {nodes_n} nodes in "
                        f"{time.monotonic() - wall0:.0f} s: revision {last[2]}, dbSize "
                        f"{last[4] / 2**20:.0f} MiB, in use {last[5] / 2**20:.0f} MiB")
                if time.monotonic() - wall0 > max_wall_s:
                    stopped_early = True
                    break
            sample(minute * 60.0, "end")
        alarms = etcd.alarms()
        # Not the chart's schedule: everything compacted and defragmented, the live keys weighed.
        etcd.compact(etcd.status()["revision"])
        etcd.defrag()
        live = etcd.status()
        keys = etcd.all_keys()
    finally:
        etcd.stop()
    wall = time.monotonic() - wall0
    sim_s = minute * 60.0
    instances = {m.group(1) for kv in keys if (m := INSTANCE.search(unb64(kv["key"]).decode()))}
    return {
        "nodes": nodes_n, "days_asked": days, "simulated_hours": round(sim_s / 3600, 2),
        "node_days": round(nodes_n * sim_s / 86400, 1), "stopped_early": stopped_early,
        "wall_s": round(wall, 1), "compression": round(sim_s / wall, 1),
        "heartbeats": gen.heartbeats, "joins": gen.joins, "cleanups": gen.cleanups,
        "cleanups_pending_at_end": len(cleanups),
        "heartbeats_per_s": round(gen.heartbeats / wall),
        "group": group, "workers": workers, "restarts_per_day": restarts_per_day,
        "compactor": {"retention_s": compactor.retention, "retry_s": compactor.retry,
                      "interval_s": compactor.interval, "kept": compactor.keep},
        "defrag_at": f"{d_hour:02d}:{d_min:02d}", "events": events,
        "alarms": alarms, "keys_at_end": len(keys), "instances_with_keys_at_end": len(instances),
        "live_only": {"db_size": live["db_size"], "keys": len(keys),
                      "key_and_value_bytes": sum(len(unb64(kv["key"])) + len(unb64(kv.get(
                          "value"))) for kv in keys)},
        "columns": COLUMNS, "samples": samples,
    }


def summarize(s: dict[str, Any], quota: int) -> dict[str, Any]:
    """The curve in a few numbers: the highest dbSize and dbSizeInUse per simulated 6 hours,
    and overall after the first 3 hours (the plateau), against the quota."""
    idx = {c: i for i, c in enumerate(s["columns"])}
    windows: dict[int, list[list[Any]]] = defaultdict(list)
    for row in s["samples"]:
        windows[max(0, int((row[idx["sim_h"]] - 1e-9) // 6))].append(row)
    late = [r for r in s["samples"] if r[idx["sim_h"]] >= 3] or s["samples"]
    plateau = max(r[idx["db_size"]] for r in late)
    return {
        "quota_bytes": quota,
        "max_db_size": max(r[idx["db_size"]] for r in s["samples"]),
        "max_db_size_in_use": max(r[idx["db_size_in_use"]] for r in s["samples"]),
        "plateau_db_size": plateau, "plateau_fraction_of_quota": round(plateau / quota, 3),
        "per_6h": [{"from_h": w * 6,
                    "max_db_size": max(r[idx["db_size"]] for r in rows),
                    "max_db_size_in_use": max(r[idx["db_size_in_use"]] for r in rows),
                    "min_db_size_in_use": min(r[idx["db_size_in_use"]] for r in rows),
                    "revision_end": rows[-1][idx["revision"]],
                    "vineyardd_revision_end": rows[-1][idx["vineyardd_revision"]]}
                   for w, rows in sorted(windows.items())],
    }


# --- netns -------------------------------------------------------------------------------------

def enter_netns() -> None:
    """Re-executes this script in a new network namespace holding only loopback, up."""
    if os.environ.get(IN_NETNS) != "1":
        if os.geteuid() != 0:
            sys.exit("etcd_soak.py runs its daemons in a private network namespace: run as root")
        os.environ[IN_NETNS] = "1"
        os.environ[IN_NETNS + "_FROM"] = os.readlink("/proc/self/ns/net")
        os.execvp("unshare", ["unshare", "-n", "--", sys.executable, *sys.argv])
    assert os.readlink("/proc/self/ns/net") != os.environ[IN_NETNS + "_FROM"], "host netns"
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000, help="simulated nodes (%(default)s)")
    parser.add_argument("--days", type=float, default=0.2,
                        help="simulated days (%(default)s: 4.8 h, past the 03:17 defrag and the "
                             "04:00 restart)")
    parser.add_argument("--restarts-per-day", type=float, default=1,
                        help="rolling restarts of every node per simulated day, the first at "
                             "04:00 (%(default)s)")
    parser.add_argument("--max-minutes", type=float, default=5,
                        help="wall-time cap of the soak itself; the run records how far it got "
                             "(%(default)s)")
    parser.add_argument("--measure-seconds", type=float, default=60,
                        help="idle window of the real daemons (%(default)s)")
    parser.add_argument("--after-restart-seconds", type=float, default=150,
                        help="how long the real daemons are watched after the restarts "
                             "(%(default)s)")
    parser.add_argument("--reuse-measurement", action="store_true",
                        help="take the real pattern from results.json instead of measuring")
    parser.add_argument("--check-nodes", type=int, default=200,
                        help="nodes of the exact/grouped size check (%(default)s)")
    parser.add_argument("--check-rounds", type=int, default=5,
                        help="heartbeat rounds of every node in that check (%(default)s)")
    parser.add_argument("--workers", type=int, default=8, help="concurrent requests")
    parser.add_argument("--nice", type=int, default=10,
                        help="niceness of the run (the machine is shared; %(default)s)")
    parser.add_argument("--keep", type=Path, help="keep the data directories here")
    parser.add_argument("--no-record", action="store_true",
                        help="print the results instead of writing results.json")
    args = parser.parse_args()
    for tool in (ETCD, ETCDCTL, HELM):
        if not tool.exists():
            sys.exit(f"missing {tool}: run `make setup` (hack/build-tools.sh builds it)")
    enter_netns()
    os.nice(args.nice)
    # SIGTERM ends the run through the finally blocks, which end every process it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    started = load()
    rendered = render_chart()
    if args.reuse_measurement:
        real = json.loads((BENCH / "results.json").read_text())[SECTION]["real"]
    root = Path(tempfile.mkdtemp(prefix="etcd-soak-", dir=args.keep))
    try:
        if not args.reuse_measurement:
            real = measure_real(root, rendered, args.measure_seconds, args.after_restart_seconds)
        log(f"real heartbeat: {real['idle']['revisions_per_minute_per_instance']} revisions per "
            f"minute per instance; every {real['heartbeat_interval_s']} s: "
            f"{real['heartbeat_order']}")
        check = check_generator(root, rendered, real)
        log(f"generator check: {'same pattern' if check['ok'] else 'DIFFERENT'}")
        if not check["ok"]:
            print(json.dumps({"check": check, "real": real}, indent=None))
            sys.exit("the generator does not write what vineyardd writes: nothing recorded")
        pattern = Pattern.of(real)
        equivalence = size_equivalence(root, rendered, pattern, args.check_nodes,
                                       args.check_rounds, args.workers)
        log(f"exact vs grouped, {args.check_nodes} nodes x {args.check_rounds} heartbeats: in use "
            f"{equivalence['exact']['db_size_in_use']} vs "
            f"{equivalence['grouped']['db_size_in_use']} bytes (heartbeats alone: x"
            f"{equivalence['heartbeats_in_use_grouped_over_exact']}); exact "
            f"{equivalence['exact']['heartbeats_per_s']} heartbeats/s, grouped "
            f"{equivalence['grouped']['heartbeats_per_s']}")
        log(f"soak: {args.nodes} nodes, {args.days} simulated days, cap {args.max_minutes} min")
        result = soak(root, rendered, pattern, args.nodes, args.days, args.restarts_per_day,
                      args.max_minutes * 60, args.workers)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    quota = int(rendered.etcd_flag("quota-backend-bytes"))
    summary = summarize(result, quota)
    data = {
        "real": real, "check": check, "equivalence": equivalence, "soak": result,
        "summary": summary,
        "etcd_flags": rendered.etcd_kept,
        "etcd_flags_replaced": [a for a in rendered.etcd_args if a not in rendered.etcd_kept],
        "defrag": {"schedule": rendered.defrag_schedule, "command": rendered.defrag_command},
        "etcd_version": subprocess.run([str(ETCD), "--version"], capture_output=True,
                                       text=True).stdout.splitlines()[0],
        "vineyardd": str(vineyardd_binary().relative_to(REPO)),
    }
    if args.no_record:
        print(json.dumps(data, indent=None))
    else:
        record(SECTION, data, started_load=started)
    print(f"{result['node_days']} node-days ({result['simulated_hours']} h of {args.nodes} "
          f"nodes) in {result['wall_s']:.0f} s: dbSize at most "
          f"{summary['max_db_size'] / 2**20:.1f} MiB, after 3 h at most "
          f"{summary['plateau_db_size'] / 2**20:.1f} MiB = "
          f"{summary['plateau_fraction_of_quota']:.0%} of the {quota / 2**20:.0f} MiB quota")


if __name__ == "__main__":
    main()
