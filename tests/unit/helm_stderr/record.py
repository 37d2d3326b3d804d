"""Record real helm stderr for the error-mapping tests (never hand-typed).

    python -m tests.unit.helm_stderr.record HELM_BINARY... [--cluster KUBECONFIG] [--out DIR]

(from the repository's root). For each binary, runs helm in failing situations and writes
``helm<major>/<scenario>.stderr`` beside this file (or in DIR). The scenario name's prefix
(before the last ``__``) names the exception vineyard_helm must raise for it. Scenarios that
need a real cluster (a missing release, a name already in use, a wait that times out) run only
with ``--cluster`` (the local cluster: ``python -m localcluster kubeconfig``). The unit tests replay
the others live; tests/e2e/test_e2e_python_api.py replays the cluster ones against a real API
server.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.paths import CHART
from tests.unit.unreachable_cluster import write_unreachable_kubeconfig

HERE = Path(__file__).resolve().parent


@contextmanager
def environments(cluster: Path | None) -> Iterator[dict[str, Path | None]]:
    with tempfile.TemporaryDirectory(prefix="helm-stderr-") as tmp:
        directory = Path(tmp)
        unreachable = write_unreachable_kubeconfig(directory / "unreachable-kubeconfig")
        bad_values = directory / "bad-values.yaml"
        bad_values.write_text("socket:\n  volume:\n    type: nfs\nvineyard:\n  size: 12\n")
        # Problems nested under their parents: two under /vineyard, one under an if/then.
        nested = directory / "nested-values.yaml"
        nested.write_text(
            "socket:\n  volume:\n    type: nfs\nvineyard:\n  size: 12\n  metaTimeout: soon\n"
            "etcd:\n  enabled: false\n"
        )
        unparsable = directory / "unparsable-values.yaml"
        unparsable.write_text("vineyard: [unclosed\n")
        yield {
            "unreachable": unreachable,
            "bad_values": bad_values,
            "nested_values": nested,
            "unparsable_values": unparsable,
            "missing_values": directory / "missing-values.yaml",
            "cluster": cluster,
        }


def scenarios(env: dict[str, Path | None]) -> dict[str, list[str]]:
    unreachable = ["--kubeconfig", str(env["unreachable"])]
    out = {
        "ClusterUnreachableError__status": ["status", "vineyard", "-n", "vineyard", *unreachable],
        "ClusterUnreachableError__install": [
            "install",
            "vineyard",
            str(CHART),
            "-n",
            "vineyard",
            *unreachable,
        ],
        "ClusterUnreachableError__uninstall": [
            "uninstall",
            "vineyard",
            "-n",
            "vineyard",
            *unreachable,
        ],
        "ClusterUnreachableError__missing_context": [
            "status",
            "vineyard",
            *unreachable,
            "--kube-context",
            "no-such-context",
        ],
        "ChartNotFoundError__directory": ["template", "vineyard", "/nonexistent/vineyard-chart"],
        "ChartNotFoundError__repo": ["template", "vineyard", "no-such-repo/vineyard"],
        "InvalidValuesError__chart_check": [
            "template",
            "vineyard",
            str(CHART),
            "--set",
            "vineyard.size=64Gi",
        ],
        "InvalidValuesError__schema": [
            "template",
            "vineyard",
            str(CHART),
            "-f",
            str(env["bad_values"]),
        ],
        "InvalidValuesError__schema_nested": [
            "template",
            "vineyard",
            str(CHART),
            "-f",
            str(env["nested_values"]),
        ],
        "InvalidValuesError__values_file_missing": [
            "template",
            "vineyard",
            str(CHART),
            "-f",
            str(env["missing_values"]),
        ],
        "InvalidValuesError__values_file_unparsable": [
            "template",
            "vineyard",
            str(CHART),
            "-f",
            str(env["unparsable_values"]),
        ],
        "InvalidValuesError__set_syntax": [
            "template",
            "vineyard",
            str(CHART),
            "--set",
            "vineyard.size",
        ],
    }
    cluster = env["cluster"]
    if cluster is not None:
        release = f"stderr-{uuid.uuid4().hex[:6]}"
        ns = [
            "-n",
            f"vh-stderr-{uuid.uuid4().hex[:6]}",
            "--create-namespace",
            "--kubeconfig",
            str(cluster),
        ]
        # A namespace that holds no release (it need not exist).
        nowhere = ["-n", f"vh-stderr-none-{uuid.uuid4().hex[:6]}", "--kubeconfig", str(cluster)]
        out["ReleaseNotFoundError__status"] = ["status", "nothere", *nowhere]
        out["ReleaseNotFoundError__get_metadata"] = ["get", "metadata", "nothere", *nowhere]
        out["ReleaseNotFoundError__uninstall"] = ["uninstall", "nothere", *nowhere]
        out["ReleaseNotFoundError__upgrade"] = ["upgrade", "nothere", str(CHART), *nowhere]
        out["ReleaseExistsError__install"] = ["install", release, str(CHART), *ns]  # run twice
        # No node can fit the pods, so they stay Pending and the wait runs out.
        out["WaitTimeoutError__install"] = [
            "install",
            f"{release}-t",
            str(CHART),
            *ns,
            "--wait",
            "--timeout",
            "5s",
            "--set",
            "resources.requests.cpu=1000",
        ]
        out["cleanup"] = ["uninstall", release, f"{release}-t", *ns[:2], *ns[3:]]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("helm", nargs="+")
    parser.add_argument("--cluster", type=Path)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    for helm in args.helm:
        version = subprocess.run(
            [helm, "version", "--template", "{{ .Version }}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        major = version.lstrip("v").split(".")[0]
        target = args.out / f"helm{major}"
        target.mkdir(parents=True, exist_ok=True)
        with environments(args.cluster) as env:
            for name, command in scenarios(env).items():
                if name == "ReleaseExistsError__install":
                    subprocess.run([helm, *command], capture_output=True, check=False, timeout=120)
                result = subprocess.run(
                    [helm, *command], capture_output=True, text=True, timeout=120
                )
                if name == "cleanup":
                    namespace = command[command.index("-n") + 1]
                    kubectl = ["kubectl", "--kubeconfig", str(args.cluster), "delete", "namespace"]
                    subprocess.run(
                        [*kubectl, namespace, "--wait=false"], capture_output=True, check=False
                    )
                    continue
                if result.returncode == 0:
                    raise SystemExit(f"{helm} {name}: expected a failure, got success")
                (target / f"{name}.stderr").write_text(result.stderr)
                meta = {"helm": version, "returncode": result.returncode, "args": command[:2]}
                (target / f"{name}.json").write_text(json.dumps(meta) + "\n")
                first = result.stderr.splitlines()[:1]
                print(f"{helm} ({version}) {name}: exit {result.returncode}: {first}")


if __name__ == "__main__":
    main()
