"""Reading from vineyardd in a pod against a host process: where the difference comes from.

    python bench/latency_real.py [--rounds 5] [--gets 60]

On the real node (.cache/bench-realnode), with the chart installed (hostPath socket, --size 1Gi),
the same script puts a 256 MiB array (the first touch of its pages) and then gets it `--gets`
times (vineyard maps the blob's memfd once per client; a get after that is the metadata round
trip and building the object). It runs as these readers, interleaved round by round:

- pod: the worker pod the real-node tests use (the worker image's python3 and vineyard, uid
  1001 with the socket group, memory limit 2Gi, no CPU limit, the container runtime's default
  seccomp setting);
- pod, no memory limit: the same without the limit;
- pod, seccomp RuntimeDefault: the same with containerd's default seccomp profile;
- host: this venv's python and vineyard as uid 1001 with the socket group, outside any pod;
- host in a memory cgroup: the same inside a fresh cgroup-v1 memory cgroup limited to 2Gi, as
  a pod's container is.

Each reader prints its python, numpy and vineyard versions beside the figures, since the pod
and the host run different builds.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from common import BIN, CHART, HELM, REPO, load, log, record

from localcluster import Cluster, images
from localcluster.realnode import NODE_NAME

STATE_DIR = REPO / ".cache" / "bench-realnode"
KUBECTL = str(BIN / "kubectl")
NAMESPACE, RELEASE = "bench-latency", "vy"
WORKER_UID, SOCKET_GID = 1001, 2000
MEMCG = Path("/sys/fs/cgroup/memory/localcluster-bench-latency")

SCRIPT = """
import json, sys, time, numpy as np, vineyard
c = vineyard.connect()
a = np.ones(256 << 20, dtype='uint8')
t0 = time.perf_counter(); oid = c.put(a); put = time.perf_counter() - t0
gets = []
for _ in range(GETS):
    t0 = time.perf_counter(); b = c.get(oid); gets.append(time.perf_counter() - t0)
    assert b.nbytes == 256 << 20
    del b
c.delete(oid)
print('RESULT', json.dumps({'put': put, 'gets': gets, 'python': sys.version.split()[0],
      'numpy': np.__version__, 'vineyard': vineyard.__version__}))
"""


def kubectl(cluster: Cluster, *args: str, stdin: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KUBECTL, "--kubeconfig", str(cluster.kubeconfig), *args],
                          input=stdin, capture_output=True, text=True, check=check)


def parse(out: str) -> dict[str, Any]:
    return json.loads(out.split("RESULT", 1)[1].strip().splitlines()[0])


def pod_reader(cluster: Cluster, script: str, *, limit: bool, seccomp: str | None) -> str:
    name = f"lat-{uuid.uuid4().hex[:6]}"
    sc: dict[str, Any] = {"runAsUser": WORKER_UID, "runAsGroup": WORKER_UID,
                          "runAsNonRoot": True, "supplementalGroups": [SOCKET_GID]}
    if seccomp:
        sc["seccompProfile"] = {"type": seccomp}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NAMESPACE},
           "spec": {"restartPolicy": "Never", "nodeName": NODE_NAME, "securityContext": sc,
                    "enableServiceLinks": False, "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "worker", "image": images.WORKER, "imagePullPolicy": "Never",
                        "command": ["python3", "-c", script],
                        "env": [{"name": "VINEYARD_IPC_SOCKET",
                                 "value": "/var/run/vineyard/vineyard.sock"}],
                        "volumeMounts": [{"name": "sock", "mountPath": "/var/run/vineyard",
                                          "readOnly": True}],
                        "resources": {"limits": {"memory": "2Gi"}} if limit else {}}],
                    "volumes": [{"name": "sock", "hostPath": {
                        "path": f"/var/run/vineyard/{NAMESPACE}/{RELEASE}",
                        "type": "Directory"}}]}}
    kubectl(cluster, "create", "-f", "-", stdin=json.dumps(pod))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        phase = kubectl(cluster, "-n", NAMESPACE, "get", "pod", name, "-o",
                        "jsonpath={.status.phase}").stdout
        if phase in ("Succeeded", "Failed"):
            break
        time.sleep(0.5)
    out = kubectl(cluster, "-n", NAMESPACE, "logs", name, check=False).stdout
    kubectl(cluster, "-n", NAMESPACE, "delete", "pod", name, "--wait=false", check=False)
    if "RESULT" not in out:
        raise RuntimeError(f"pod reader {name} ({phase}): {out[-2000:]}")
    return out


def host_reader(script: str, *, memcg: bool) -> str:
    argv = ["setpriv", f"--reuid={WORKER_UID}", f"--regid={WORKER_UID}",
            f"--groups={SOCKET_GID}", sys.executable, "-c", script]
    if memcg:
        # Join the cgroup first (as root), then drop to the worker's uid.
        argv = ["sh", "-c", f'echo $$ > {MEMCG}/cgroup.procs && exec "$@"', "sh", *argv]
    env = {**os.environ, "HOME": "/tmp",
           "VINEYARD_IPC_SOCKET": f"/var/run/vineyard/{NAMESPACE}/{RELEASE}/vineyard.sock"}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--gets", type=int, default=60)
    parser.add_argument("--keep", action="store_true", help="leave the cluster running")
    args = parser.parse_args()
    started = load()
    script = SCRIPT.replace("GETS", str(args.gets))
    cluster = Cluster(STATE_DIR)
    was_up = cluster.is_healthy()
    cluster.up(nodes=0, real_nodes=1, timeout=300)
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
    readers = {
        "pod": lambda: pod_reader(cluster, script, limit=True, seccomp=None),
        "pod, no memory limit": lambda: pod_reader(cluster, script, limit=False, seccomp=None),
        "pod, seccomp RuntimeDefault": lambda: pod_reader(cluster, script, limit=True,
                                                          seccomp="RuntimeDefault"),
        "host": lambda: host_reader(script, memcg=False),
        "host in a memory cgroup": lambda: host_reader(script, memcg=True),
    }
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in readers}
    try:
        subprocess.run([HELM, "install", RELEASE, str(CHART), "-n", NAMESPACE,
                        "--create-namespace", "--wait", "--timeout=300s",
                        "--set", "vineyard.size=1Gi",
                        "--set", "resources.requests.memory=1536Mi",
                        "--set", "resources.limits.memory=1536Mi"],
                       env=env, check=True, capture_output=True)
        MEMCG.mkdir(exist_ok=True)
        (MEMCG / "memory.limit_in_bytes").write_text(str(2 << 30))
        log("warm-up")
        readers["pod"]()
        readers["host"]()
        for i in range(args.rounds):
            for name, reader in readers.items():
                result = parse(reader())
                runs[name].append(result)
                log(f"round {i + 1}/{args.rounds} {name}: put "
                    f"{result['put'] * 1e3:.1f} ms, get median "
                    f"{statistics.median(result['gets']) * 1e3:.3f} ms")
    finally:
        subprocess.run([HELM, "uninstall", RELEASE, "-n", NAMESPACE, "--wait"], env=env,
                       capture_output=True)
        kubectl(cluster, "delete", "namespace", NAMESPACE, "--wait=true", check=False)
        if MEMCG.exists():
            MEMCG.rmdir()
        if not (args.keep or was_up):
            cluster.down()
    summary = {}
    for name, rs in runs.items():
        gets = [g for r in rs for g in r["gets"]]
        summary[name] = {
            "get_median_ms": round(statistics.median(gets) * 1e3, 3),
            "get_p10_ms": round(sorted(gets)[len(gets) // 10] * 1e3, 3),
            "get_p90_ms": round(sorted(gets)[len(gets) * 9 // 10] * 1e3, 3),
            "put_median_ms": round(statistics.median(r["put"] for r in rs) * 1e3, 1),
            "versions": {k: rs[0][k] for k in ("python", "numpy", "vineyard")}}
    host = summary["host"]
    for s in summary.values():
        s["get_ratio_to_host"] = round(s["get_median_ms"] / host["get_median_ms"], 2)
        s["put_ratio_to_host"] = round(s["put_median_ms"] / host["put_median_ms"], 2)
    print(json.dumps(summary, indent=1))
    record("latency_real", {"summary": summary, "runs": runs, "gets_per_run": args.gets},
           started_load=started)


if __name__ == "__main__":
    main()
