"""Wrapper overhead: what the Python layer costs over plain helm, each pair interleaved.

    python bench/overhead.py [--runs 15] [--install-runs 5] [--nodes 3] [--skip-install]
                             [--package-dir DIR --section NAME]

- render(): vineyard_helm.render() in a warm process vs `helm template` of the same chart and
  values (a subprocess, as render() itself runs one); and the cold CLI `vineyard-helm render`.
- install: vineyard_helm.install(wait=True) vs `helm install --wait` into the bench cluster,
  a fresh namespace each run (the bench cluster: .cache/bench-cluster, never the tests').
- import: `import vineyard_helm` timed inside a fresh interpreter, and a fresh
  `python -c "import vineyard_helm"` against a bare `python -c pass`.
- CLI start-up: `vineyard-helm --version` against `python -c pass` and `helm version`.
Goals (issue 14, GOALS below): render() and install(wait=True) within 5% of plain helm, a cold
`vineyard-helm render` within 2x `helm template`, `vineyard-helm --version` within 1.3x
`helm version`, import within 100 ms. A pair over its goal gets a profile.

`--package-dir DIR` measures the vineyard_helm found in DIR instead of this checkout's (a
`git worktree` of an earlier commit, say) and `--section overhead-before` stores it beside the
current figures: report.py then shows both.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import subprocess
import sys
import tempfile
from pathlib import Path

from common import (
    CHART,
    HELM,
    VALUES,
    bench_cluster,
    interleaved,
    load,
    log,
    ratio,
    record,
    summarize_pairs,
    summary,
    wipe_namespace,
    write_values,
)

IMPORT_PROBE = ("import time; w, c = time.perf_counter(), time.process_time(); "
                "import vineyard_helm; print(time.perf_counter() - w, time.process_time() - c)")
GOALS = {"render": 1.05, "install": 1.05, "cli_render": 2.0, "cli_version": 1.3,
         "import_ms": 100.0}


def run(argv: list[str], **kw) -> None:
    subprocess.run(argv, capture_output=True, check=True, **kw)


PROFILED = ("vineyard_helm/|yaml/|jsonschema/|referencing/|pyhelm3/|subprocess"
            "|base_events.py.*(run_until|subprocess)|reprlib")


def top_of(stats: pstats.Stats, rows: int = 16) -> list[str]:
    """The top `rows` of a profile by cumulative time, our code and its libraries only (the
    asyncio plumbing above it says nothing)."""
    out = io.StringIO()
    stats.stream = out
    stats.sort_stats("cumulative").print_stats(PROFILED, rows)
    lines = [line.rstrip() for line in out.getvalue().splitlines() if line.strip()]
    start = next(i for i, line in enumerate(lines) if "ncalls" in line)
    return [line.replace(str(Path(sys.prefix)), "<venv>") for line in lines[start:]]


def profile(action, calls: int = 1) -> list[str]:
    """cProfile of `calls` calls of `action`, in this (warm) process."""
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        action()
    prof.disable()
    return top_of(pstats.Stats(prof))


def profile_cold(argv: list[str], **kw) -> list[str]:
    """cProfile of a fresh `python -m <argv>`: imports included."""
    with tempfile.NamedTemporaryFile(suffix=".prof") as f:
        subprocess.run([sys.executable, "-m", "cProfile", "-o", f.name, "-m", *argv],
                       capture_output=True, check=True, **kw)
        return top_of(pstats.Stats(f.name))


def measure_render(runs: int, values_file: Path) -> dict:
    import vineyard_helm

    template = [HELM, "template", "vineyard", str(CHART), "--namespace", "vineyard",
                "--values", str(values_file)]
    cli = [sys.executable, "-m", "vineyard_helm", "render", "--helm", HELM, "--chart",
           str(CHART), "-f", str(values_file), "-o", "yaml"]

    def api_render() -> None:
        vineyard_helm.render(VALUES, chart=CHART, helm=HELM)

    api_render()
    run(template)  # warm the page cache and lazy imports
    samples = interleaved({"render()": api_render, "helm template": lambda: run(template),
                           "CLI render": lambda: run(cli)}, runs)
    out = {name: summarize_pairs(s) for name, s in samples.items()}
    base = out["helm template"]
    out["ratio_render"] = {"wall": ratio(out["render()"], base),
                           "cpu": ratio(out["render()"], base, "cpu")}
    out["ratio_cli_render"] = {"wall": ratio(out["CLI render"], base),
                               "cpu": ratio(out["CLI render"], base, "cpu")}
    out["manifest_bytes"] = len(subprocess.run(template, capture_output=True,
                                               check=True).stdout)
    if out["ratio_render"]["wall"] > GOALS["render"]:
        out["profile_render"] = profile(api_render, 10)
    if out["ratio_cli_render"]["wall"] > GOALS["cli_render"]:
        out["profile_cli_render"] = profile_cold(cli[2:])
        out["importtime_cli_render"] = importtime(cli[1:])
    return out


def importtime(argv: list[str], rows: int = 15) -> list[str]:
    """The slowest imports (cumulative microseconds) of a fresh `python <argv>`."""
    lines = subprocess.run([sys.executable, "-X", "importtime", *argv], capture_output=True,
                           text=True).stderr.splitlines()
    return sorted((line for line in lines[1:] if "|" in line),
                  key=lambda line: -int(line.split("|")[1]))[:rows]


def measure_import_and_cli(runs: int) -> dict:
    exe = sys.executable
    probes: list[tuple[float, float]] = []

    def probe() -> None:
        text = subprocess.run([exe, "-c", IMPORT_PROBE], capture_output=True, text=True,
                              check=True).stdout.split()
        probes.append((float(text[0]), float(text[1])))

    entry = str(Path(exe).parent / "vineyard-helm")
    samples = interleaved({
        "python -c pass": lambda: run([exe, "-c", "pass"]),
        "python -c 'import vineyard_helm'": lambda: run([exe, "-c", "import vineyard_helm"]),
        "in-process import": probe,
        "vineyard-helm --version": lambda: run([entry, "--version"]),
        "vineyard-helm --help": lambda: run([entry, "--help"]),
        "helm version": lambda: run([HELM, "version", "--short"]),
    }, runs)
    out = {name: summarize_pairs(s) for name, s in samples.items() if name != "in-process import"}
    out["import_in_process_ms"] = {"wall": summary([w * 1000 for w, _ in probes]),
                                   "cpu": summary([c * 1000 for _, c in probes])}
    bare = out["python -c pass"]["wall"]["median"]
    out["import_over_bare_ms"] = (out["python -c 'import vineyard_helm'"]["wall"]["median"]
                                  - bare) * 1000
    out["ratio_cli_vs_helm_version"] = ratio(out["vineyard-helm --version"], out["helm version"])
    out["cli_over_bare_ms"] = (out["vineyard-helm --version"]["wall"]["median"] - bare) * 1000
    if out["import_in_process_ms"]["wall"]["median"] > GOALS["import_ms"]:
        out["profile_import"] = importtime(["-c", "import vineyard_helm"])
    if out["ratio_cli_vs_helm_version"] > GOALS["cli_version"]:
        out["importtime_cli_version"] = importtime(["-m", "vineyard_helm", "--version"])
    return out


def measure_install(runs: int, nodes: int, values_file: Path) -> dict:
    import vineyard_helm

    with bench_cluster(nodes) as cluster:
        kubeconfig, counter = str(cluster.kubeconfig), {"n": 0}

        def namespace(tag: str) -> str:
            counter["n"] += 1
            return f"bench-ovh-{tag}-{counter['n']}"

        last: list[str] = []

        def api_install() -> None:
            ns = namespace("py")
            last[:] = [ns]
            vineyard_helm.install(VALUES, release="vb", namespace=ns, chart=CHART, wait=True,
                                  timeout=300, kubeconfig=kubeconfig, helm=HELM)

        def helm_install() -> None:
            ns = namespace("helm")
            last[:] = [ns]
            run([HELM, "install", "vb", str(CHART), "--namespace", ns, "--create-namespace",
                 "--values", str(values_file), "--wait", "--wait-for-jobs", "--timeout", "5m"],
                env=cluster.env)

        def cleanup() -> None:
            wipe_namespace(cluster, last[0], release="vb")

        samples = interleaved({"install(wait=True)": api_install,
                               "helm install --wait": helm_install}, runs, between=cleanup)
        out = {name: summarize_pairs(s) for name, s in samples.items()}
        base = out["helm install --wait"]
        out["ratio_install"] = {"wall": ratio(out["install(wait=True)"], base),
                                "cpu": ratio(out["install(wait=True)"], base, "cpu")}
        if out["ratio_install"]["wall"] > GOALS["install"]:
            out["profile_install"] = profile(api_install)
            cleanup()
    out["nodes"] = nodes
    return out


def measured_package(directory: Path | None) -> dict[str, str]:
    """Makes `import vineyard_helm`, here and in every subprocess, load the package in
    `directory` (default: this checkout); returns where it is and its git commit."""
    if directory is not None:
        directory = directory.resolve()
        os.chdir(directory)  # `python -c`/`-m` put the working directory first on sys.path
        sys.path.insert(0, str(directory))
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [str(directory), *filter(None, [os.environ.get("PYTHONPATH")])])
    import vineyard_helm

    where = Path(vineyard_helm.__file__).resolve().parents[1]
    git = subprocess.run(["git", "-C", str(where), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(where), "status", "--porcelain", "vineyard_helm"],
                           capture_output=True, text=True).stdout.strip()
    return {"dir": str(where), "git": git + ("+uncommitted" if dirty else "")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="rounds for render/import/CLI")
    parser.add_argument("--install-runs", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=3, help="fake nodes for the install pair")
    parser.add_argument("--skip-install", action="store_true")
    parser.add_argument("--package-dir", type=Path,
                        help="measure the vineyard_helm in this directory (default: this checkout)")
    parser.add_argument("--section", default="overhead",
                        help="results.json section to write (default: %(default)s)")
    args = parser.parse_args()
    package = measured_package(args.package_dir)
    started = load()
    with tempfile.TemporaryDirectory() as tmp:
        values_file = write_values(Path(tmp) / "values.json", VALUES)
        log("render() vs helm template")
        data = {"render": measure_render(args.runs, values_file)}
        log("import and CLI start-up")
        data["startup"] = measure_import_and_cli(args.runs)
        if not args.skip_install:
            log(f"install(wait=True) vs helm install --wait on {args.nodes} nodes")
            data["install"] = measure_install(args.install_runs, args.nodes, values_file)
    data["goals"] = GOALS
    data["package"] = package
    record(args.section, data, started_load=started)
    r, s = data["render"], data["startup"]
    print(f"render()/helm template: {r['ratio_render']['wall']:.2f} (CPU "
          f"{r['ratio_render']['cpu']:.2f}); CLI render: {r['ratio_cli_render']['wall']:.2f}")
    print(f"import vineyard_helm: {s['import_in_process_ms']['wall']['median']:.0f} ms "
          f"in-process, {s['import_over_bare_ms']:.0f} ms over a bare interpreter")
    print(f"vineyard-helm --version: {s['vineyard-helm --version']['wall']['median'] * 1000:.0f}"
          f" ms ({s['cli_over_bare_ms']:.0f} ms over bare python)")
    if "install" in data:
        print(f"install(wait=True)/helm install --wait: "
              f"{data['install']['ratio_install']['wall']:.2f}")


if __name__ == "__main__":
    main()
