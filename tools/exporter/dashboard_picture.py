"""Draws the chart's Grafana dashboard (charts/vineyard/dashboards/vineyard.json) from real data,
for the docs: docs/images/vineyard-dashboard.png. No Grafana here, so each panel's queries run
against a real Prometheus (Debian's package) and are drawn with matplotlib in the panel's place.

    sudo .cache/venv/bin/python tools/exporter/dashboard_picture.py [--minutes 4]

Everything runs in a network namespace of its own holding only loopback (`unshare -n`): etcd
(.cache/bin/etcd, the chart's version and bounds flags), vineyardd 0.24.2 with the chart's flags
against it, the exporter (.cache/bin/vineyard-exporter), Prometheus scraping both every 5 s under
the chart's job names, and a client that puts and deletes objects for --minutes. Every panel
query must return data (a query that returns nothing fails the run): the dashboard's queries are
checked against the real series on the way.
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
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "charts" / "vineyard" / "dashboards" / "vineyard.json"
OUT = REPO / "docs" / "images" / "vineyard-dashboard.png"
BIN = REPO / ".cache" / "bin"
VARIABLES = {"$namespace": "vineyard", "$job": "vineyard-metrics",
             "$etcd_job": "vineyard-etcd-metrics"}

WORKLOAD = r"""
import random, sys, time
import numpy as np, vineyard
end = time.monotonic() + float(sys.argv[2])
clients = [vineyard.connect(sys.argv[1]) for _ in range(3)]
held = []
rng = random.Random(7)
while time.monotonic() < end:
    c = rng.choice(clients)
    if len(held) < 40 and rng.random() < 0.6:
        held.append((c, c.put(np.ones(rng.randint(1, 6) << 17, dtype=np.int64))))
    elif held:
        owner, oid = held.pop(rng.randrange(len(held)))
        owner.delete(oid)
    time.sleep(0.5)
"""


def inside(args: argparse.Namespace) -> None:
    """In the private network namespace: start everything, run the workload, draw."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    work = Path(tempfile.mkdtemp(prefix="vineyard-dashboard-"))
    work.chmod(0o755)
    procs: list[subprocess.Popen[bytes]] = []

    def start(name: str, argv: list[str]) -> None:
        log = (work / f"{name}.log").open("wb")
        procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=work))

    try:
        start("etcd", [str(BIN / "etcd"), "--data-dir", str(work / "etcd"),
                       "--listen-client-urls", "http://127.0.0.1:2379",
                       "--advertise-client-urls", "http://127.0.0.1:2379",
                       "--listen-peer-urls", "http://127.0.0.1:2380",
                       "--auto-compaction-mode=periodic", "--auto-compaction-retention=1h",
                       "--quota-backend-bytes=402653184"])
        wait_http("http://127.0.0.1:2379/health")
        import vineyard

        socket = work / "vineyard.sock"
        start("vineyardd", [str(Path(vineyard.__file__).parent / "bdist" / "vineyardd"),
                            f"--socket={socket}", "--size=256Mi", "--meta=etcd",
                            "--etcd_endpoint=http://127.0.0.1:2379", "--etcd_prefix=/vineyard",
                            "--etcd_cmd=/nonexistent/vineyard-never-launches-etcd",
                            "--logtostderr=true"])
        deadline = time.monotonic() + 30
        while not socket.exists():
            assert time.monotonic() < deadline, (work / "vineyardd.log").read_text()[-2000:]
            time.sleep(0.1)
        start("exporter", [str(BIN / "vineyard-exporter"), f"--socket={socket}",
                           "--listen-address=127.0.0.1:9610", "--node=node-1"])
        config = {
            "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [target], "labels": {
                    "namespace": "vineyard", "pod": pod}}]}
                for job, target, pod in (("vineyard-metrics", "127.0.0.1:9610", "vineyard-x7k2p"),
                                         ("vineyard-etcd-metrics", "127.0.0.1:2379",
                                          "vineyard-etcd-0"))
            ],
        }
        (work / "prometheus.yml").write_text(json.dumps(config))
        start("prometheus", ["prometheus", f"--config.file={work / 'prometheus.yml'}",
                             f"--storage.tsdb.path={work / 'tsdb'}",
                             "--web.listen-address=127.0.0.1:9090"])
        wait_http("http://127.0.0.1:9090/-/ready")
        began = time.time()
        subprocess.run([sys.executable, "-c", WORKLOAD, str(socket), str(args.minutes * 60)],
                       check=True)
        time.sleep(10)
        draw(began, time.time(), args.out)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(20)
        shutil.rmtree(work, ignore_errors=True)


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def query_range(expr: str, start: float, end: float) -> list[dict[str, Any]]:
    for var, value in VARIABLES.items():
        expr = expr.replace(var, value)
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": 5})
    with urllib.request.urlopen(f"http://127.0.0.1:9090/api/v1/query_range?{params}") as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return body["data"]["result"]  # type: ignore[no-any-return]


def legend(template: str, labels: dict[str, str]) -> str:
    for key, value in labels.items():
        template = template.replace("{{" + key + "}}", value)
    return template


def scaled(values: list[float], unit: str | None) -> tuple[list[float], str]:
    if unit == "bytes":
        return [v / 2**20 for v in values], "MiB"
    if unit == "percentunit":
        return [v * 100 for v in values], "%"
    return values, ""


def draw(start: float, end: float, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    plt.style.use("dark_background")
    fig = plt.figure(figsize=(16, rows * 0.36))
    fig.patch.set_facecolor("#111217")
    fig.suptitle(f"{dashboard['title']}  (namespace vineyard, real vineyardd 0.24.2 and etcd "
                 "3.6.16, this host)", x=0.01, y=0.995, ha="left", color="#ccccdc",
                 fontsize=12)
    grid = fig.add_gridspec(rows, 24, hspace=1.2, wspace=0.9, top=0.96, bottom=0.03,
                            left=0.04, right=0.99)
    empty = []
    for panel in panels:
        pos = panel["gridPos"]
        ax = fig.add_subplot(grid[pos["y"]:pos["y"] + pos["h"], pos["x"]:pos["x"] + pos["w"]])
        ax.set_facecolor("#181b1f")
        for side in ax.spines.values():
            side.set_color("#2c3235")
        if panel["type"] == "row":
            ax.axis("off")
            ax.text(0, 0.5, panel["title"], fontsize=12, weight="bold", color="#ccccdc",
                    va="center")
            continue
        ax.set_title(panel["title"], loc="left", fontsize=9, color="#ccccdc")
        unit = panel["fieldConfig"]["defaults"].get("unit")
        series = []
        for target in panel["targets"]:
            result = query_range(target["expr"], start, end)
            if not result:
                empty.append(f"{panel['title']}: {target['expr']}")
            for s in result:
                times = [(float(t) - start) / 60 for t, _ in s["values"]]
                values, suffix = scaled([float(v) for _, v in s["values"]], unit)
                series.append((legend(target["legendFormat"], s["metric"]), times, values,
                               suffix))
        if panel["type"] == "timeseries":
            for name, times, values, _ in series:
                ax.plot(times, values, label=f"{name}", linewidth=1.4)
            ax.set_xlabel("minutes", fontsize=7)
            ax.set_ylabel(series[0][3] if series else "", fontsize=7)
            ax.tick_params(labelsize=7)
            ax.grid(color="#2c3235", linewidth=0.5)
            if series:
                ax.legend(fontsize=7, loc="upper left", framealpha=0.3)
        else:  # stat and bargauge: the last value, large
            ax.set_xticks([])
            ax.set_yticks([])
            mappings = panel["fieldConfig"]["defaults"].get("mappings") or [{"options": {}}]
            texts = mappings[0]["options"]
            for i, (name, _, values, suffix) in enumerate(series):
                last = values[-1]
                key = str(int(last)) if float(last).is_integer() else ""
                shown = texts.get(key, {}).get("text") or f"{last:.0f}{suffix}"
                color = texts.get(key, {}).get("color", "#73bf69")
                if panel["type"] == "bargauge":
                    color = "#f2495c" if last >= 90 else "#ff9830" if last >= 80 else "#73bf69"
                    ax.barh([i], [last], color=color, height=0.5)
                    ax.set_xlim(0, 100)
                    ax.text(1, i, f"{name}  {shown}", va="center", fontsize=9, color="white")
                else:
                    ax.text(0.5, 0.5 - 0.25 * i, f"{shown}", ha="center", va="center",
                            fontsize=18, color=color, transform=ax.transAxes)
                    ax.text(0.5, 0.2 - 0.25 * i, name, ha="center", fontsize=7,
                            color="#9fa7b3", transform=ax.transAxes)
    if empty:
        raise SystemExit("panel queries without data:\n" + "\n".join(empty))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80, facecolor=fig.get_facecolor(), bbox_inches="tight")
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=4)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        inside(args)
        return
    if os.geteuid() != 0:
        sys.exit("needs root (unshare -n)")
    # --kill-child: whatever the run started dies with it, even if it is interrupted.
    subprocess.run(["unshare", "-n", "--fork", "--kill-child", sys.executable, __file__,
                    "--inside", "--minutes", str(args.minutes), "--out", str(args.out)],
                   check=True)


if __name__ == "__main__":
    main()
