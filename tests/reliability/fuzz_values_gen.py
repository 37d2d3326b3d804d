"""Values documents made by mutating valid ones (the ci scenarios), for the fuzzing checks.

A mutation picks one path the schema declares and breaks it in a way the schema itself says
is wrong (a type it does not allow, a number past its bounds, a string its pattern or enum
refuses, a key a closed object does not have), or makes two valid keys conflict (the schema's
if/then rules, the chart's cross-field rules). Each invalid document carries the names a good
error message must mention. Valid mutations stay inside the declared types, bounds, enums and
patterns. Everything is seeded: the same seed gives the same documents.
"""
from __future__ import annotations

import copy
import json
import random
import re
from dataclasses import dataclass, field
from typing import Any

from tests.support.chart_render import scenario_values
from tests.support.paths import SCENARIOS, SCHEMA_PATH

SCHEMA: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
Path_ = tuple[Any, ...]


@dataclass(frozen=True)
class SchemaPath:
    path: Path_              # keys, and 0 for "the first item of a list"
    node: dict[str, Any]     # its sub-schema, $ref resolved
    closed: bool             # an object with additionalProperties: false


@dataclass
class Case:
    # wrong-type, out-of-range, bad-pattern, bad-enum, malformed-quantity, unknown-key, conflict
    kind: str
    values: dict[str, Any]
    names: tuple[str, ...]   # the message must mention one of these
    scenario: str
    description: str = ""
    needs_render: bool = False   # a chart rule (templates/_validate.tpl), not the schema
    extra: dict[str, Any] = field(default_factory=dict)


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        node = {**SCHEMA["definitions"][name], **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def schema_paths() -> list[SchemaPath]:
    out: list[SchemaPath] = []

    def walk(node: dict[str, Any], path: Path_) -> None:
        node = resolve(node)
        closed = node.get("additionalProperties") is False
        if path:
            out.append(SchemaPath(path, node, closed))
        for key, sub in node.get("properties", {}).items():
            walk(sub, (*path, key))
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            # A map (resources.limits, podLabels, ...): one key of it stands for all.
            walk(extra, (*path, "memory" if is_quantity(resolve(extra)) else "example-key"))
        items = node.get("items")
        if isinstance(items, dict) and len(path) < 6:
            walk(items, (*path, 0))

    walk(SCHEMA, ())
    return out


def dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


def types_of(node: dict[str, Any]) -> set[str]:
    t = node.get("type")
    if t is None:
        return set()
    return {t} if isinstance(t, str) else set(t)


def set_path(doc: dict[str, Any], path: Path_, value: Any) -> bool:
    """Sets doc[path] = value, making maps on the way; a list on the way must already hold the
    item. Returns False when the path cannot be made (a scalar or short list in the way)."""
    cur: Any = doc
    for i, part in enumerate(path[:-1]):
        nxt = path[i + 1]
        if isinstance(part, int):
            if not isinstance(cur, list) or len(cur) <= part:
                return False
            if not isinstance(cur[part], (dict, list)):
                return False
            cur = cur[part]
            continue
        if not isinstance(cur, dict):
            return False
        if part not in cur or cur[part] is None:
            if isinstance(nxt, int):
                return False
            cur[part] = {}
        cur = cur[part]
    last = path[-1]
    if isinstance(last, int):
        if not isinstance(cur, list) or len(cur) <= last:
            return False
        cur[last] = value
        return True
    if not isinstance(cur, dict):
        return False
    cur[last] = value
    return True


# One sample of each JSON type, and what the schema's `type` keyword calls it. No null: in a
# values file null is helm's "delete this key" (the default applies, or `required` reports it).
SAMPLES: list[tuple[str, Any]] = [
    ("string", "not-a-number"), ("integer", 7), ("number", 0.5), ("boolean", True),
    ("array", [1, "two"]), ("object", {"unexpected": 1}),
]


def wrong_type_values(allowed: set[str]) -> list[Any]:
    out = []
    for name, value in SAMPLES:
        if name in allowed or (name == "integer" and "number" in allowed):
            continue
        out.append(value)
    return out


MALFORMED_QUANTITIES = ["12Qi", "-1Gi", "1.5.3G", "Gi", "1 Gi", "0x10Mi", "1GiB", "ten", "+-5M",
                        "1e", "Mi1", "∞"]
GARBAGE_STRINGS = ["-", "Ünïcödé", "a b", "../../etc", "$(rm -rf /)", "UPPER_case!", " ",
                   "x" * 300, "\u00a0", "{{ .Values }}", "a\\b", "@@"]


def is_quantity(node: dict[str, Any]) -> bool:
    return "Ki" in node.get("pattern", "") or "Mi" in node.get("pattern", "")


def pattern_rejects(pattern: str, text: str) -> bool:
    # The schema's patterns use the ECMA subset Python's re shares: an independent oracle.
    return re.search(pattern, text) is None


def invalid_mutations(sp: SchemaPath) -> list[tuple[str, Any, str]]:
    """(kind, value, description) that the schema at `sp` refuses by its own declarations."""
    node, out = sp.node, []
    allowed = types_of(node)
    if allowed:
        out += [("wrong-type", v, f"{type(v).__name__} where {sorted(allowed)}")
                for v in wrong_type_values(allowed)]
    if "enum" in node:
        out += [("bad-enum", v, "not one of the enum") for v in ("not-in-enum", "ETCD", "")
                if v not in node["enum"]]
    for key, delta in (("minimum", -1), ("maximum", 1)):
        if key in node and allowed & {"integer", "number"}:
            out.append(("out-of-range", node[key] + delta, f"{key} {node[key]} {delta:+}"))
    if "minLength" in node and node["minLength"] > 0 and "string" in allowed:
        out.append(("out-of-range", "", f"minLength {node['minLength']}"))
    if "maxLength" in node and "string" in allowed:
        too_long = "a" * (node["maxLength"] + 1)
        out.append(("out-of-range", too_long, f"maxLength {node['maxLength']}"))
    if "pattern" in node and "string" in allowed:
        pool = MALFORMED_QUANTITIES if is_quantity(node) else GARBAGE_STRINGS
        kind = "malformed-quantity" if is_quantity(node) else "bad-pattern"
        out += [(kind, s, f"{s!r} against {node['pattern']}") for s in pool
                if pattern_rejects(node["pattern"], s)]
    return out


def _base(rng: random.Random) -> tuple[str, dict[str, Any]]:
    scenario = rng.choice(SCENARIOS)
    return scenario, copy.deepcopy(scenario_values(scenario))


def _path_exists_or_makeable(doc: dict[str, Any], path: Path_) -> bool:
    return set_path(copy.deepcopy(doc), path, None)


CONFLICTS = ("emptydir-without-sidecar", "pvc-without-storageclass", "etcd-off-without-endpoints",
             "limit-below-size", "spill-rates-reversed")


def conflict(rng: random.Random, which: str) -> Case:
    """Two or more valid keys that contradict each other."""
    scenario, doc = _base(rng)
    if which == "emptydir-without-sidecar":
        set_path(doc, ("socket", "volume", "type"), "emptyDir")
        doc["sidecars"] = []
        return Case("conflict", doc, ("sidecars",), scenario, which)
    if which == "pvc-without-storageclass":
        set_path(doc, ("socket", "volume", "type"), "persistentVolumeClaim")
        set_path(doc, ("socket", "volume", "persistentVolumeClaim", "existingClaim"), "")
        set_path(doc, ("socket", "volume", "persistentVolumeClaim", "storageClass"), None)
        return Case("conflict", doc, ("storageClass",), scenario, which)
    if which == "etcd-off-without-endpoints":
        set_path(doc, ("vineyard", "meta"), "etcd")
        set_path(doc, ("etcd", "enabled"), False)
        set_path(doc, ("etcd", "external", "endpoints"), [])
        return Case("conflict", doc, ("endpoints",), scenario, which)
    if which == "limit-below-size":
        size = rng.choice([256, 512, 1024, 2048])
        set_path(doc, ("vineyard", "size"), f"{size}Mi")
        set_path(doc, ("resources", "limits", "memory"), f"{rng.randint(1, size - 1)}Mi")
        return Case("conflict", doc, ("resources.limits.memory", "vineyard.size"), scenario, which,
                    needs_render=True)
    lower = round(rng.uniform(0.5, 1.0), 2)
    set_path(doc, ("vineyard", "spill", "path"), "/spill")
    set_path(doc, ("vineyard", "spill", "lowerRate"), lower)
    set_path(doc, ("vineyard", "spill", "upperRate"), round(rng.uniform(0.0, lower), 2))
    return Case("conflict", doc, ("vineyard.spill.lowerRate",), scenario, which, needs_render=True)


def invalid_cases(seed: int, count: int, *, conflicts_every: int = 25) -> list[Case]:
    rng = random.Random(seed)
    paths = schema_paths()
    closed = [p for p in paths if p.closed]
    quantities = [p for p in paths if "string" in types_of(p.node) and is_quantity(p.node)]
    cases: list[Case] = []
    while len(cases) < count:
        n = len(cases)
        if n % conflicts_every == conflicts_every - 1:
            cases.append(conflict(rng, CONFLICTS[(n // conflicts_every) % len(CONFLICTS)]))
            continue
        scenario, doc = _base(rng)
        if rng.random() < 0.2:
            sp = rng.choice(closed)
            key = f"unknownKey{rng.randint(0, 9999)}"
            target = (*sp.path, key)
            if not set_path(doc, target, rng.choice([1, "x", True, {"a": 1}])):
                continue
            cases.append(Case("unknown-key", doc, (key,), scenario, f"{dotted(target)} added"))
            continue
        # One in ten aims at a quantity (sizes, memory, storage): few paths, many ways to break.
        sp = rng.choice(quantities if rng.random() < 0.1 else paths)
        options = invalid_mutations(sp)
        if not options:
            continue
        kind, value, description = rng.choice(options)
        if not set_path(doc, sp.path, copy.deepcopy(value)):
            continue
        cases.append(Case(kind, doc, (dotted(sp.path),), scenario,
                          f"{dotted(sp.path)}: {description}"))
    return cases


# --- valid mutations -------------------------------------------------------------------------

QUANTITIES = ["64Mi", "128Mi", "256Mi", "512Mi", "1Gi", "2Gi", "100M", "1G", "500Ki"]
NAMES = ["a", "worker", "side-car-2", "x1", "vineyard-extra"]


def valid_mutations(sp: SchemaPath, rng: random.Random) -> list[Any]:
    node = sp.node
    allowed = types_of(node)
    out: list[Any] = []
    if "enum" in node:
        out += list(node["enum"])
    if "boolean" in allowed:
        out += [True, False]
    if allowed & {"integer", "number"} and "enum" not in node:
        lo = node.get("minimum", 0)
        hi = node.get("maximum", lo + 1000)
        if "integer" in allowed:
            out += [int(lo), int(hi), rng.randint(int(lo), int(hi))]
        else:
            out += [lo, hi, round(rng.uniform(lo, hi), 3)]
    if "string" in allowed and "enum" not in node and "pattern" in node:
        pool = QUANTITIES if is_quantity(node) else NAMES
        out += [s for s in pool if not pattern_rejects(node["pattern"], s)
                and len(s) <= node.get("maxLength", 10**6)]
    if "null" in allowed:
        out.append(None)
    return out


def valid_candidates(seed: int, count: int, mutations: int = 3) -> list[tuple[str, dict[str, Any]]]:
    """Scenario documents with 1..`mutations` in-schema changes each (not yet checked against
    the if/then rules or the chart's cross-field rules: the caller sorts those out)."""
    rng = random.Random(seed)
    paths = [p for p in schema_paths() if not p.closed and types_of(p.node)]
    out: list[tuple[str, dict[str, Any]]] = []
    while len(out) < count:
        scenario, doc = _base(rng)
        for _ in range(rng.randint(1, mutations)):
            sp = rng.choice(paths)
            options = valid_mutations(sp, rng)
            if options:
                set_path(doc, sp.path, copy.deepcopy(rng.choice(options)))
        out.append((scenario, doc))
    return out
