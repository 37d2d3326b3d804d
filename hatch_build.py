"""Hatch build hook: a platform wheel that carries helm, when asked for one.

With ``VINEYARD_HELM_BUNDLE`` naming a directory staged by hack/helm_wheels.py (the helm binary,
helm's LICENSE and ``bundle.json``), the wheel gets them in ``vineyard_helm/_helm/``, the
record also in ``.dist-info/extra_metadata/bundled-helm.json``, and the platform tag the record
names instead of ``py3-none-any``. Without it (``pip install .``, an sdist build, an editable
install) the wheel is the pure one and helm comes from PATH, as before.

The hook only copies what it is given, after checking the binary against the record's sha256:
building helm and choosing the tags is hack/release.py's job.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

BUNDLE_ENV = "VINEYARD_HELM_BUNDLE"
#: Where the files go in the wheel (vineyard_helm/bundled.py looks there).
TARGET = "vineyard_helm/_helm"


class BundledHelmHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        source = os.environ.get(BUNDLE_ENV)
        if not source or self.target_name != "wheel" or version == "editable":
            return
        bundle = Path(source).resolve()
        record = json.loads((bundle / "bundle.json").read_text(encoding="utf-8"))
        binary = bundle / record["binary"]
        digest = hashlib.sha256(binary.read_bytes()).hexdigest()
        if digest != record["sha256"]:
            raise RuntimeError(
                f"{binary} has sha256 {digest}, its bundle.json records {record['sha256']}"
            )
        if not os.access(binary, os.X_OK):
            raise RuntimeError(f"{binary} is not executable: the wheel would carry it so")
        for name in (record["binary"], "bundle.json", *record["licenses"]):
            build_data["force_include"][str(bundle / name)] = f"{TARGET}/{name}"
        build_data["extra_metadata"][str(bundle / "bundle.json")] = "bundled-helm.json"
        build_data["tag"] = record["wheel_tag"]
        build_data["pure_python"] = False
