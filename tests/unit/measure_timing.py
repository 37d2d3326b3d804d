"""Import time of vineyard_helm and render() against a plain `helm template` (medians).

    python tests/unit/measure_timing.py [--runs 7] [--helm PATH]

Import: a fresh interpreter per run, timing `import vineyard_helm` inside it.
Render: in one warm process, vineyard_helm.render() (validation + helm template + YAML parse)
against `helm template` of the same chart as a bare subprocess; also the cold CLI
(`python -m vineyard_helm render`) against `helm template` from the shell.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

IMPORT_PROBE = (
    "import time; t = time.perf_counter(); import vineyard_helm; print(time.perf_counter() - t)"
)


def median_seconds(action: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--helm", default=os.environ.get("VINEYARD_HELM_BINARY", "helm"))
    args = parser.parse_args()
    import vineyard_helm

    chart = str(vineyard_helm.chart_path())
    imports = [
        float(
            subprocess.run(
                [sys.executable, "-c", IMPORT_PROBE], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(args.runs)
    ]
    template = [args.helm, "template", "vineyard", chart, "--namespace", "vineyard"]
    vineyard_helm.render(helm=args.helm)  # warm up: lazy imports, page cache
    subprocess.run(template, capture_output=True, check=True)
    render = median_seconds(lambda: vineyard_helm.render(helm=args.helm), args.runs)
    plain = median_seconds(
        lambda: subprocess.run(template, capture_output=True, check=True), args.runs
    )
    cli = [sys.executable, "-m", "vineyard_helm", "render", "--helm", args.helm]
    cold = median_seconds(lambda: subprocess.run(cli, capture_output=True, check=True), args.runs)
    print(f"helm: {args.helm}; runs: {args.runs}; load average: {os.getloadavg()[0]:.2f}")
    print(f"import vineyard_helm: median {statistics.median(imports) * 1000:.1f} ms")
    print(f"vineyard_helm.render(): median {render * 1000:.1f} ms")
    print(f"helm template:          median {plain * 1000:.1f} ms")
    print(f"ratio render/template:  {render / plain:.2f}")
    print(f"cold CLI render:        median {cold * 1000:.1f} ms (ratio {cold / plain:.2f})")


if __name__ == "__main__":
    main()
