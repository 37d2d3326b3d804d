"""Record real helm release JSON from a cluster, for the status and release parsing tests.

    python -m tests.unit.helm_json.record --cluster KUBECONFIG HELM4 HELM3   # from the repo's root

Installs the bundled chart as release `rec` in a fresh namespace (waiting until ready), then
writes, per helm major version: install.json (`helm install -o json`, Helm 4 only: the
install is done once), status.json (`helm status -o json`, with --show-resources on Helm 3)
and metadata.json (`helm get metadata -o json`). Uninstalls and deletes the namespace after.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import uuid
from pathlib import Path

from tests.support.paths import CHART

HERE = Path(__file__).resolve().parent


def helm_json(helm: str, *args: str) -> dict[str, object]:
    out = subprocess.run(
        [helm, *args, "-o", "json"], capture_output=True, text=True, check=True
    ).stdout
    loaded: dict[str, object] = json.loads(out[out.index("{") :])
    return loaded


def without_managed_fields(value: object) -> object:
    """Drop metadata.managedFields (server-side apply bookkeeping: most of the bytes)."""
    if isinstance(value, dict):
        return {k: without_managed_fields(v) for k, v in value.items() if k != "managedFields"}
    if isinstance(value, list):
        return [without_managed_fields(v) for v in value]
    return value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cluster", required=True)
    parser.add_argument("helm4")
    parser.add_argument("helm3")
    args = parser.parse_args()
    namespace = f"vh-json-{uuid.uuid4().hex[:6]}"
    cluster = ["--kubeconfig", args.cluster, "-n", namespace]
    install = helm_json(
        args.helm4,
        "install",
        "rec",
        str(CHART),
        *cluster,
        "--create-namespace",
        "--wait",
        "--timeout",
        "120s",
    )
    try:
        install.pop("chart", None)  # the whole chart (templates included): not needed
        (HERE / "helm4-install.json").write_text(json.dumps(install, indent=1) + "\n")
        for name, helm, extra in (
            ("helm4", args.helm4, []),
            ("helm3", args.helm3, ["--show-resources"]),
        ):
            status = without_managed_fields(helm_json(helm, "status", "rec", *cluster, *extra))
            (HERE / f"{name}-status.json").write_text(json.dumps(status, indent=1) + "\n")
            metadata = helm_json(helm, "get", "metadata", "rec", *cluster)
            (HERE / f"{name}-metadata.json").write_text(json.dumps(metadata, indent=1) + "\n")
    finally:
        subprocess.run(
            [args.helm4, "uninstall", "rec", *cluster, "--wait"], capture_output=True, check=False
        )
        subprocess.run(
            [
                "kubectl",
                "--kubeconfig",
                args.cluster,
                "delete",
                "namespace",
                namespace,
                "--wait=false",
            ],
            capture_output=True,
            check=False,
        )


if __name__ == "__main__":
    main()
