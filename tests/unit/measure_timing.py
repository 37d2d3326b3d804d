"""Import time of vineyard_helm and render() against a plain `helm template` (medians).

    python tests/unit/measure_timing.py [--runs 9] [--helm PATH]

Import: a fresh interpreter per run, timing `import vineyard_helm` inside it.
Render: in one warm process, vineyard_helm.render() (validation + helm template + YAML parse)
against `helm template` of the same chart as a bare subprocess; also the cold CLI
(`python -m vineyard_helm render`) against `helm template` from the shell.
Wall time and CPU time (this process plus its children) are both reported: on a busy shared
machine the CPU time is the steadier figure.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

IMPORT_PROBE = (
    "import time; w, c = time.perf_counter(), time.process_time(); import vineyard_helm; "
    "print(time.perf_counter() - w, time.process_time() - c)"
)


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def medians(action: Callable[[], object], runs: int) -> tuple[float, float]:
    """(median wall seconds, median CPU seconds) of ``action``."""
    walls, cpus = [], []
    for _ in range(runs):
        wall, cpu = time.perf_counter(), _cpu()
        action()
        walls.append(time.perf_counter() - wall)
        cpus.append(_cpu() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--helm", default=os.environ.get("VINEYARD_HELM_BINARY", "helm"))
    args = parser.parse_args()
    import vineyard_helm

    chart = str(vineyard_helm.chart_path())
    probes = [
        [
            float(x)
            for x in subprocess.run(
                [sys.executable, "-c", IMPORT_PROBE], capture_output=True, text=True, check=True
            ).stdout.split()
        ]
        for _ in range(args.runs)
    ]
    template = [args.helm, "template", "vineyard", chart, "--namespace", "vineyard"]
    vineyard_helm.render(helm=args.helm)  # warm up: lazy imports, page cache
    subprocess.run(template, capture_output=True, check=True)
    render = medians(lambda: vineyard_helm.render(helm=args.helm), args.runs)
    plain = medians(lambda: subprocess.run(template, capture_output=True, check=True), args.runs)
    cli = [sys.executable, "-m", "vineyard_helm", "render", "--helm", args.helm]
    cold = medians(lambda: subprocess.run(cli, capture_output=True, check=True), args.runs)
    print(f"helm: {args.helm}; runs: {args.runs}; load average: {os.getloadavg()[0]:.2f}")
    print("                         wall (ms)  CPU (ms)")
    wall = statistics.median(p[0] for p in probes) * 1000
    cpu = statistics.median(p[1] for p in probes) * 1000
    print(f"import vineyard_helm     {wall:9.1f} {cpu:9.1f}")
    for label, (w, c) in (
        ("render()", render),
        ("helm template", plain),
        ("cold CLI render", cold),
    ):
        print(f"{label:24} {w * 1000:9.1f} {c * 1000:9.1f}")
    print(f"ratio render()/template  {render[0] / plain[0]:9.2f} {render[1] / plain[1]:9.2f}")
    print(f"ratio cold CLI/template  {cold[0] / plain[0]:9.2f} {cold[1] / plain[1]:9.2f}")


if __name__ == "__main__":
    main()
