"""Measures the ways to get metrics out of the real vineyardd 0.24.2 (issue 16), on this host.

    sudo .cache/venv/bin/python tools/exporter/measure_alternatives.py [--requests 2000]

Each vineyardd runs with the chart's relevant flags (--meta=local, --logtostderr) in a network
namespace holding only loopback (its RPC binds 0.0.0.0), started by `unshare -n`. Printed as
JSON:

  log         --metrics: bytes and lines vineyardd logs per client put, get and delete (with
              and without the flag), and what the lines carry
  status_ipc  instance_status over the UNIX socket: the fields, vineyardd's CPU per request
              (its utime + stime from /proc, over many requests) and the round trip
  status_rpc  the same over the RPC port
  list_data   list_data_request "*" (the only way to count objects): reply bytes and
              vineyardd's CPU per call, by number of objects held
  exporter    the exporter built from this directory (.cache/bin/vineyard-exporter) scraped
              over HTTP: its CPU and RSS, vineyardd's CPU per scrape, the page's size, and
              `promtool check metrics` on the page (with and without counting objects)

The exporter in this directory speaks the same protocol as `raw_request` below: an 8-byte
little-endian length, then JSON, each way; a connection registers before anything else.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")

# The client side of each measurement runs in the daemon's network namespace, as a separate
# process (the numpy/vineyard client's own CPU is not counted: only vineyardd's).
WORKLOAD = r"""
import json, socket, struct, sys, time
import numpy as np, vineyard

def frame(s, obj):
    body = json.dumps(obj).encode()
    s.sendall(struct.pack("<Q", len(body)) + body)
    head = b""
    while len(head) < 8:
        head += s.recv(8 - len(head))
    n = struct.unpack("<Q", head)[0]
    data = b""
    while len(data) < n:
        data += s.recv(min(1 << 20, n - len(data)))
    return data

op, target, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
if op in ("put", "get", "delete"):
    client = vineyard.connect(target)
    array = np.arange(128)
    ids = [client.put(array) for _ in range(n)] if op != "put" else []
    print("ready", flush=True); sys.stdin.readline()
    t0 = time.perf_counter()
    for i in range(n):
        if op == "put":
            client.put(array)
        elif op == "get":
            client.get(ids[i])
        else:
            client.delete(ids[i])
    print(json.dumps({"seconds": time.perf_counter() - t0}), flush=True)
elif op == "fill":
    client = vineyard.connect(target)
    for _ in range(n):
        client.put(np.arange(16))
    print(json.dumps({"filled": n}), flush=True)
else:  # status-ipc, status-rpc, list
    if op == "status-rpc":
        s = socket.create_connection(("127.0.0.1", int(target)))
    else:
        s = socket.socket(socket.AF_UNIX)
        s.connect(target)
    frame(s, {"type": "register_request", "version": "0.24.2"})
    request = ({"type": "list_data_request", "pattern": "*", "regex": False, "limit": 1 << 30}
               if op == "list" else {"type": "instance_status_request"})
    reply = json.loads(frame(s, request))
    print("ready", flush=True); sys.stdin.readline()
    size = 0
    t0 = time.perf_counter()
    for _ in range(n):
        size = len(frame(s, request))
    seconds = time.perf_counter() - t0
    fields = sorted(reply.get("meta", {})) if op != "list" else []
    count = len(reply.get("content") or {}) if op == "list" else None
    print(json.dumps({"seconds": seconds, "reply_bytes": size, "fields": fields,
                      "reply": reply.get("meta"), "objects": count}), flush=True)
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def vineyardd_binary() -> Path:
    import vineyard

    return Path(vineyard.__file__).parent / "bdist" / "vineyardd"


class Daemon:
    """vineyardd in its own network namespace (unshare -n), its log in a file."""

    def __init__(self, root: Path, *, metrics: bool) -> None:
        self.root = root
        self.socket = root / "vineyard.sock"
        self.log = root / "vineyardd.log"
        flags = [
            f"--socket={self.socket}",
            "--meta=local",
            "--size=1Gi",
            "--logtostderr",
            f"--metrics={'true' if metrics else 'false'}",
        ]
        # The shell keeps the namespace (lo up) and execs vineyardd: its PID is the daemon's.
        script = f"ip link set lo up && exec {vineyardd_binary()} {' '.join(flags)}"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                ["unshare", "-n", "sh", "-c", script], stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 30
        while not self.socket.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"vineyardd did not start:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.01)
        time.sleep(0.2)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def run(self, op: str, target: str, n: int) -> dict[str, Any]:
        """Runs one client op in the daemon's network namespace; measures vineyardd's CPU and
        log growth between the client's "ready" and its result."""
        cmd = ["nsenter", "-t", str(self.pid), "-n", sys.executable, "-c", WORKLOAD, op, target]
        client = subprocess.Popen(
            [*cmd, str(n)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert client.stdin is not None
        assert client.stdout is not None
        line = client.stdout.readline().strip()
        if op == "fill":
            client.wait(600)
            return json.loads(line)  # type: ignore[no-any-return]
        assert line == "ready", line
        time.sleep(0.2)  # let the set-up's log lines land
        log0, cpu0 = self.log.stat().st_size, cpu_seconds(self.pid)
        client.stdin.write("\n")
        client.stdin.flush()
        result: dict[str, Any] = json.loads(client.stdout.readline())
        client.wait(60)
        time.sleep(0.2)
        result["log_bytes"] = self.log.stat().st_size - log0
        result["cpu_s"] = cpu_seconds(self.pid) - cpu0
        result["log_tail"] = self.log.read_bytes()[log0:].decode(errors="replace")
        return result

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


@contextlib.contextmanager
def daemon(*, metrics: bool) -> Iterator[Daemon]:
    root = Path(tempfile.mkdtemp(prefix="vineyard-metrics-"))
    d = Daemon(root, metrics=metrics)
    try:
        yield d
    finally:
        d.close()
        shutil.rmtree(root, ignore_errors=True)


def metric_names(log: str) -> list[str]:
    """The distinct metric lines of a --metrics log ("v6d <labels> <name> <value>")."""
    names = set()
    for line in log.splitlines():
        _, _, rest = line.partition("] ")
        if rest.startswith("v6d "):
            parts = rest.split()
            names.add(" ".join(["v6d", "<label>", parts[-2]]))
    return sorted(names)


def measure_log(n: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for metrics in (False, True):
        with daemon(metrics=metrics) as d:
            per_op = {}
            for op in ("put", "get", "delete"):
                r = d.run(op, str(d.socket), n)
                lines = r["log_tail"].count("\n")
                per_op[op] = {
                    "bytes_per_request": round(r["log_bytes"] / n, 1),
                    "lines_per_request": round(lines / n, 2),
                    "vineyardd_cpu_us_per_request": round(r["cpu_s"] / n * 1e6, 1),
                    "metric_lines": metric_names(r["log_tail"]),
                    "example": r["log_tail"].splitlines()[:3],
                }
            out["with_metrics" if metrics else "without_metrics"] = per_op
    return out


def measure_status(n: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with daemon(metrics=False) as d:
        for op, target in (("status-ipc", str(d.socket)), ("status-rpc", "9600")):
            r = d.run(op, target, n)
            out[op.replace("-", "_")] = {
                "fields": r["fields"],
                "example": r["reply"],
                "reply_bytes": r["reply_bytes"],
                "vineyardd_cpu_us_per_request": round(r["cpu_s"] / n * 1e6, 1),
                "round_trip_us": round(r["seconds"] / n * 1e6, 1),
                "log_bytes_per_request": round(r["log_bytes"] / n, 2),
            }
    return out


def measure_list(counts: list[int], calls: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with daemon(metrics=False) as d:
        held = 0
        for count in counts:
            d.run("fill", str(d.socket), count - held)
            held = count
            r = d.run("list", str(d.socket), calls)
            out[str(count)] = {
                "objects_listed": r["objects"],
                "reply_bytes": r["reply_bytes"],
                "vineyardd_cpu_ms_per_call": round(r["cpu_s"] / calls * 1e3, 2),
                "round_trip_ms": round(r["seconds"] / calls * 1e3, 2),
            }
    return out


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure_exporter(exporter: Path, scrapes: int, objects: int) -> dict[str, Any]:

    out: dict[str, Any] = {}
    with daemon(metrics=False) as d:
        d.run("fill", str(d.socket), objects)
        for limit in (0, 1000):
            # In the daemon's network namespace, on its loopback only.
            proc = subprocess.Popen(
                ["nsenter", "-t", str(d.pid), "-n", str(exporter), f"--socket={d.socket}",
                 "--listen-address=127.0.0.1:9610", f"--objects-limit={limit}", "--node=n1"],
                stderr=subprocess.DEVNULL,
            )
            try:
                time.sleep(0.5)
                url = "http://127.0.0.1:9610/metrics"
                getter = ["nsenter", "-t", str(d.pid), "-n", sys.executable, "-c",
                          "import sys, urllib.request\n"
                          "for _ in range(int(sys.argv[2])):\n"
                          "    page = urllib.request.urlopen(sys.argv[1]).read()\n"
                          "sys.stdout.buffer.write(page)", url]
                subprocess.run([*getter, "1"], check=True, capture_output=True)
                e0, v0 = cpu_seconds(proc.pid), cpu_seconds(d.pid)
                page = subprocess.run([*getter, str(scrapes)], check=True,
                                      capture_output=True).stdout
                e1, v1 = cpu_seconds(proc.pid), cpu_seconds(d.pid)
                check = subprocess.run(["promtool", "check", "metrics"], input=page,
                                       capture_output=True)
                out[f"objects_limit_{limit}"] = {
                    "objects_held": objects,
                    "exporter_cpu_ms_per_scrape": round((e1 - e0) / scrapes * 1e3, 3),
                    "vineyardd_cpu_ms_per_scrape": round((v1 - v0) / scrapes * 1e3, 3),
                    "exporter_rss_mib": round(rss_mib(proc.pid), 1),
                    "page_bytes": len(page),
                    "vineyard_lines": [ln for ln in page.decode().splitlines()
                                       if ln.startswith("vineyard_")],
                    "promtool_check_metrics": {
                        "returncode": check.returncode,
                        "output": (check.stdout + check.stderr).decode().strip(),
                    },
                }
            finally:
                proc.terminate()
                proc.wait(10)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per measurement")
    parser.add_argument("--objects", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--list-calls", type=int, default=20)
    parser.add_argument("--scrapes", type=int, default=500, help="exporter scrapes measured")
    built = Path(__file__).resolve().parents[2] / ".cache" / "bin" / "vineyard-exporter"
    parser.add_argument("--exporter", type=Path, default=built)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (unshare -n, nsenter)")
    figures = {
        "vineyardd": "0.24.2",
        "load_average": os.getloadavg(),
        "log": measure_log(args.requests),
        "status": measure_status(args.requests),
        "list_data": measure_list(args.objects, args.list_calls),
        "exporter": measure_exporter(args.exporter, args.scrapes, 100),
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
