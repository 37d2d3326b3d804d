"""Values fuzzing: mutated ci scenarios (tests/reliability/fuzz_values_gen.py) through
vineyard_helm.validate, the CLI and `helm install`/`helm upgrade` on a cluster. Every invalid
document is refused with a message naming the key, without a traceback, creating nothing and
leaving a running release as it was; valid mutations render into objects the Kubernetes
OpenAPI schema accepts. Seeds are fixed, so the counts in docs/reliability.md are reproducible."""
from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

import vineyard_helm
from localcluster import Cluster
from tests.reliability.fuzz_values_gen import Case, invalid_cases, valid_candidates
from tests.support.chart_render import HelmFailed, render
from tests.support.helm import helm_binary
from tests.support.paths import BIN, CHART

# How many cases of each kind: the full counts under `make reliability` (RELIABILITY_FUZZ_SCALE=1,
# the figures docs/reliability.md quotes), a quarter inside `make test`, where every case costs
# a helm run and the whole suite has a time budget (the same generators, the same seeds: the
# quarter is the first quarter of the full run's cases).
SCALE = float(os.environ.get("RELIABILITY_FUZZ_SCALE", "0.25"))
IN_PROCESS = max(100, int(2000 * SCALE))
CLI = max(20, int(200 * SCALE))
HELM_DOCS = 30
VALID_SCHEMA = max(300, int(3000 * SCALE))
VALID_RENDER = max(30, int(300 * SCALE))
K8S = kubernetes_validate.latest_version()
HELM = helm_binary(4)

# 208 cold CLI runs, 30 helm runs against a cluster, 300 renders validated against the OpenAPI
# schema: minutes each on a loaded 2-core machine.
pytestmark = pytest.mark.timeout(1200)


def names_key(text: str, case: Case) -> bool:
    """The message names one of the keys: dotted (vineyard.rpc.port) or, as helm 4 writes
    paths, as a JSON pointer (/vineyard/rpc/port); an unknown key by its own name."""
    for name in case.names:
        pointer = "/" + name.replace(".", "/").replace("[", "/").replace("]", "")
        if name in text or pointer in text:
            return True
    return False


def coalesce(defaults: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    """The values the schema sees (helm's coalescing): user values over the chart's defaults,
    maps merged, anything else replaced, a null deleting the key."""
    out = dict(defaults)
    for key, value in user.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict):
            out[key] = coalesce(out[key] if isinstance(out.get(key), dict) else {}, value)
        else:
            out[key] = value
    return out


def summary(cases: list[Case]) -> str:
    kinds = collections.Counter(c.kind for c in cases)
    return ", ".join(f"{n} {k}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1]))


def test_invalid_values_are_refused_in_process_naming_the_key(record) -> None:
    cases = invalid_cases(seed=9, count=IN_PROCESS)
    accepted, unnamed, crashed = [], [], []
    for case in cases:
        try:
            vineyard_helm.validate(case.values, helm=HELM)
        except vineyard_helm.InvalidValuesError as error:
            if not names_key(str(error), case):
                unnamed.append((case.description, str(error)))
        except Exception as error:
            crashed.append((case.description, repr(error)))
        else:
            accepted.append(case.description)
    assert not accepted, f"{len(accepted)} accepted, e.g. {accepted[:5]}"
    assert not unnamed, f"{len(unnamed)} messages without the key, e.g. {unnamed[:5]}"
    assert not crashed, f"{len(crashed)} other exceptions, e.g. {crashed[:5]}"
    record("Invalid values, Python API", area="Values fuzzing",
           figure=f"{len(cases)} documents ({summary(cases)})",
           result=f"{len(cases)} refused with InvalidValuesError naming the key; 0 accepted, "
                  "0 other exceptions")


def _cli(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vineyard_helm", "validate", "-f", str(path)],
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"})


# helm reads the values files (vineyard_helm passes them on unchanged), so what it cannot read is
# what counts: Go's YAML ignores an unknown tag such as !!python/object (`vineyard: {}` to helm,
# a valid file), but not an alias that names nothing.
UNREADABLE = ["vineyard: [unclosed", "- a\n- list\n", "just a string", "vineyard:\n\tsize: 1",
              "vineyard: {size: [1", "vineyard: *nothing", "\x00\x01", "42"]


def test_invalid_values_files_are_refused_by_the_cli_with_exit_3(tmp_path, record) -> None:
    cases = invalid_cases(seed=10, count=CLI)
    failures = []
    for i, case in enumerate(cases):
        path = tmp_path / f"values-{i}.yaml"
        path.write_text(yaml.safe_dump(case.values))
        proc = _cli(path)
        if proc.returncode != 3 or "Traceback" in proc.stderr or not names_key(proc.stderr, case):
            failures.append((case.description, proc.returncode, proc.stderr[-300:]))
    unreadable_codes = []
    for i, text in enumerate(UNREADABLE):
        path = tmp_path / f"unreadable-{i}.yaml"
        path.write_bytes(text.encode())
        proc = _cli(path)
        unreadable_codes.append(proc.returncode)
        if proc.returncode != 3 or "Traceback" in proc.stderr or str(path) not in proc.stderr:
            failures.append((repr(text), proc.returncode, proc.stderr[-300:]))
    assert not failures, f"{len(failures)} failures, e.g.\n" + "\n".join(map(str, failures[:8]))
    record("Invalid values, CLI", area="Values fuzzing",
           figure=f"{len(cases)} generated files + {len(UNREADABLE)} unparseable YAML files "
                  "(`python -m vineyard_helm validate -f`)",
           result=f"all {len(cases) + len(UNREADABLE)} exit 3 naming the key (or the file); "
                  "0 tracebacks")


def _objects(cluster: Cluster, namespace: str) -> dict[str, str]:
    """Every object of the namespace that a release could make: uid/resourceVersion by name."""
    out = cluster.kubectl("get", "all,configmap,secret,serviceaccount,networkpolicy,"
                          "poddisruptionbudget,persistentvolumeclaim", "-n", namespace,
                          "-o", "json").stdout
    return {f"{o['kind']}/{o['metadata']['name']}":
            f"{o['metadata']['uid']}@{o['metadata']['resourceVersion']}"
            for o in json.loads(out)["items"] if o["kind"] not in ("Pod", "Event", "Endpoints")
            and o["metadata"]["name"] != "kube-root-ca.crt"}


def _helm(cluster: Cluster, *args: str, values: Any = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(cluster.bin_dir / "helm"), *args],
                          input=json.dumps(values) if values is not None else None,
                          env=cluster.env, capture_output=True, text=True, check=False)


def test_invalid_values_never_touch_the_cluster_or_a_running_release(
        cluster: Cluster, namespace_factory, record) -> None:
    ns = namespace_factory("fuzz-helm")
    # --wait: the objects settle before the snapshot (etcd's claim binds when its pod is
    # scheduled, and the StatefulSet's status moves until that pod is Ready).
    keeper = _helm(cluster, "install", "keeper", str(CHART), "-n", ns, "-f", "-",
                   "--wait", "--timeout", "5m", values={"vineyard": {"size": "64Mi"}})
    assert keeper.returncode == 0, keeper.stderr

    def state() -> tuple[Any, ...]:
        # Helm 4 lists releases in every status (failed, pending) by default.
        listing = json.loads(_helm(cluster, "list", "-n", ns, "-o", "json").stdout)
        manifest = _helm(cluster, "get", "manifest", "keeper", "-n", ns).stdout
        return listing, manifest, _objects(cluster, ns)

    before = state()
    assert [r["name"] for r in before[0]] == ["keeper"]
    cases = invalid_cases(seed=11, count=HELM_DOCS, conflicts_every=5)
    failures = []
    for i, case in enumerate(cases):
        if i % 2:
            args = ("upgrade", "keeper", str(CHART), "-n", ns, "-f", "-")
        else:
            args = ("install", f"fuzz-{i}", str(CHART), "-n", ns, "-f", "-")
        proc = _helm(cluster, *args, values=case.values)
        if proc.returncode == 0 or "panic" in proc.stderr or not names_key(proc.stderr, case):
            failures.append((args[0], case.description, proc.returncode, proc.stderr[-400:]))
    after = state()
    assert not failures, f"{len(failures)} failures, e.g.\n" + "\n".join(map(str, failures[:8]))
    assert after[0] == before[0], "the release list or the running release's revision changed"
    assert after[1] == before[1], "the running release's manifest changed"
    assert after[2] == before[2], "objects were created, changed or deleted"
    revision = before[0][0]["revision"]
    record("Invalid values, helm on a cluster", area="Values fuzzing",
           figure=f"{len(cases)} documents ({len(cases) // 2} `helm upgrade` of a running "
                  f"release, {len(cases) - len(cases) // 2} `helm install`; {summary(cases)})",
           result=f"all refused naming the key; running release still revision {revision} with "
                  f"the same manifest; {len(before[2])} objects unchanged, none created")


def test_valid_mutations_pass_the_schema_and_render_valid_kubernetes_objects(record) -> None:
    schema = jsonschema.Draft7Validator(json.loads((CHART / "values.schema.json").read_text()))
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    candidates = valid_candidates(seed=12, count=VALID_SCHEMA)
    schema_valid: list[tuple[str, dict[str, Any]]] = []
    for scenario, doc in candidates:
        if schema.is_valid(coalesce(defaults, doc)):
            schema_valid.append((scenario, doc))
    assert len(schema_valid) >= VALID_SCHEMA // 2, "the generator mostly breaks the if/then rules"
    rendered = refused_by_rule = objects = 0
    failures = []
    for _scenario, doc in schema_valid[:VALID_RENDER]:
        try:
            manifests = render(doc)
        except HelmFailed as error:
            # The chart's cross-field rules (a memory limit below vineyard.size, an etcd volume
            # smaller than its quota needs, ...): each listed problem names a value.
            if _names_values(error.stderr, set(schema.schema["properties"])):
                refused_by_rule += 1
            else:
                failures.append(error.stderr[-400:])
            continue
        rendered += 1
        for manifest in manifests:
            objects += 1
            try:
                kubernetes_validate.validate(manifest, K8S, strict=True)
            except kubernetes_validate.ValidationError as error:
                failures.append(f"{manifest['kind']}: {error.message}")
    assert not failures, f"{len(failures)} failures, e.g.\n" + "\n".join(map(str, failures[:8]))
    assert rendered >= VALID_RENDER * 0.8
    record("Valid values (mutations within the schema)", area="Values fuzzing",
           figure=f"{len(candidates)} generated; {len(schema_valid)} schema-valid (the rest broke "
                  f"an if/then rule); first {min(VALID_RENDER, len(schema_valid))} rendered with "
                  "helm template",
           result=f"{rendered} rendered, {objects} objects valid against the Kubernetes {K8S} "
                  f"OpenAPI schema (strict); {refused_by_rule} refused by a chart cross-field rule "
                  "naming the keys; 0 template errors")


def _names_values(stderr: str, top_level: set[str]) -> bool:
    """True when stderr is the chart's own refusal: "INVALID VALUES:" and then problems, each
    naming a value by its dotted path (its first word starts with a top-level key)."""
    if "INVALID VALUES:" not in stderr:
        return False
    problems = [line[2:] for line in stderr.split("INVALID VALUES:", 1)[1].splitlines()
                if line.startswith("- ")]
    return bool(problems) and all(
        problem.split(".", 1)[0].split()[0].strip("`'\"") in top_level for problem in problems)
