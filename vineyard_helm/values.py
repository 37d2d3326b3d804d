"""Values: loading, merging and ``--set`` parsing the way helm does it, and schema validation.

- :func:`merge_values` merges layers like several ``helm -f`` files: maps are merged key by
  key, everything else (lists included) is replaced by the later layer. pyhelm3 concatenates
  lists instead, so we always hand it one merged dict.
- :func:`apply_set` is a port of helm's ``strvals`` parser (``--set`` / ``--set-string``).
- :func:`schema_problems` checks the values helm would compute (:func:`coalesce_with_defaults`:
  chart defaults under the user's values, ``null`` deleting a default) against
  values.schema.json with a Draft 7 validator and reports every problem with its dotted path;
  ``vineyard_helm.validate`` runs it before helm or the cluster is involved.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Union

from .errors import InvalidValuesError

#: What the ``values=`` arguments accept: a mapping, a YAML file path, or a sequence of those
#: (merged in order, later wins).
ValuesSource = Union[Mapping[str, Any], str, "os.PathLike[str]"]
ValuesInput = Union[ValuesSource, Sequence[ValuesSource], None]  # noqa: UP007

# The same limits as helm's strvals parser.
_MAX_INDEX = 65536
_MAX_NESTED_NAME_LEVEL = 30


def merge_values(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Merge value layers like ``helm -f a.yaml -f b.yaml``: later layers win, maps are merged
    recursively, lists and scalars are replaced whole. Inputs are not modified."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = _merge_maps(merged, layer)
    return merged


def _merge_maps(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        current = out.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            out[key] = _merge_maps(current, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def coalesce_with_defaults(defaults: Mapping[str, Any], user: Mapping[str, Any]) -> dict[str, Any]:
    """The values a chart's templates see: user values over chart defaults, maps merged,
    lists replaced, and a user ``null`` deleting the key (helm's coalescing)."""
    out: dict[str, Any] = copy.deepcopy(dict(defaults))
    for key, value in user.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = coalesce_with_defaults(out[key], value)
        elif isinstance(value, Mapping):
            out[key] = coalesce_with_defaults({}, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_yaml(text: str) -> Any:
    """One YAML document, with libyaml's C loader when present (several times faster)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(text, Loader=loader)


def load_values_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read one YAML values file (``-`` is not supported: pass a dict instead)."""
    import yaml

    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise InvalidValuesError(
            [f"{file}: {error.strerror or error}"], source="values file"
        ) from None
    try:
        loaded = load_yaml(text)
    except yaml.YAMLError as error:
        raise InvalidValuesError(
            [f"{file}: not valid YAML: {error}"], source="values file"
        ) from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise InvalidValuesError(
            [f"{file}: top level must be a mapping, got {type(loaded).__name__}"],
            source="values file",
        )
    return loaded


def collect_values(values: ValuesInput) -> dict[str, Any]:
    """Turn the ``values=`` argument (dict, path, or a sequence of them) into one merged dict."""
    if values is None:
        return {}
    if isinstance(values, (Mapping, str, os.PathLike)):
        sources: Iterable[ValuesSource] = [values]
    else:
        sources = values
    layers: list[Mapping[str, Any]] = []
    for source in sources:
        if isinstance(source, Mapping):
            layers.append(source)
        elif isinstance(source, (str, os.PathLike)):
            layers.append(load_values_file(source))
        else:
            raise InvalidValuesError(
                [f"values: expected a mapping or a YAML file path, got {type(source).__name__}"]
            )
    return merge_values(*layers)


# --------------------------------------------------------------------------------------------
# --set parsing: a port of helm's pkg/strvals/parser.go (same grammar, errors and type rules).


class _SetSyntaxError(ValueError):
    pass


class _EOF(Exception):
    """End of input while scanning, with the runes read so far."""


def typed_value(text: str, *, as_string: bool = False) -> Any:
    """helm's type inference for ``--set``: true/false/null (any case), integers without a
    leading zero (and 0 itself) become int; everything else, floats included, stays a string."""
    if as_string:
        return text
    lowered = text.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    if lowered == "null":
        return None
    if text == "0":
        return 0
    if text and text[0] != "0":
        body = text[1:] if text[0] in "+-" else text
        if body.isascii() and body.isdigit():
            number = int(text)
            if -(2**63) <= number < 2**63:
                return number
    return text


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def read(self) -> str | None:
        if self.pos >= len(self.text):
            return None
        char = self.text[self.pos]
        self.pos += 1
        return char

    def unread(self) -> None:
        self.pos -= 1

    def until(self, stop: str) -> tuple[str, str | None]:
        """Runes up to (not including) one of ``stop``; backslash escapes the next rune.
        Returns (runes, stop rune); the stop rune is None at end of input."""
        out: list[str] = []
        while True:
            char = self.read()
            if char is None:
                return "".join(out), None
            if char in stop:
                return "".join(out), char
            if char == "\\":
                escaped = self.read()
                if escaped is None:
                    return "".join(out), None
                out.append(escaped)
            else:
                out.append(char)


class _SetParser:
    def __init__(self, text: str, *, as_string: bool) -> None:
        self.sc = _Scanner(text)
        self.as_string = as_string

    def parse_into(self, data: dict[str, Any]) -> None:
        while True:
            try:
                self.key(data, 0)
            except _EOF:
                return

    def key(self, data: dict[str, Any], level: int) -> None:
        runes, last = self.sc.until("=[,.")
        if last is None:
            if not runes:
                raise _EOF
            raise _SetSyntaxError(f"key {runes!r} has no value")
        if last == "[":
            index = self.key_index()
            existing = data.get(runes, [])
            if not isinstance(existing, list):
                raise _SetSyntaxError(f"unable to parse key: {runes!r} is not a list")
            _set(data, runes, existing)  # helm keeps the list even when the item fails
            _set(data, runes, self.list_item(existing, index, level))
            return
        if last == "=":
            is_list, items, at_end = self.value_list()
            if is_list:
                _set(data, runes, items)
                return
            if at_end:
                _set(data, runes, "")
                raise _EOF
            value, _ = self.sc.until(",")
            _set(data, runes, typed_value(value, as_string=self.as_string))
            return
        if last == ",":
            _set(data, runes, "")
            raise _SetSyntaxError(f"key {runes!r} has no value (cannot end with ,)")
        # last == "."
        level += 1
        if level > _MAX_NESTED_NAME_LEVEL:
            raise _SetSyntaxError(
                "value name nested level is greater than maximum supported nested level of "
                f"{_MAX_NESTED_NAME_LEVEL}"
            )
        inner = data.get(runes, {})
        if not isinstance(inner, dict):
            raise _SetSyntaxError(f"unable to parse key: {runes!r} is not a map")
        try:
            self.key(inner, level)
        except _EOF:
            if inner:
                _set(data, runes, inner)
            raise
        if not inner:
            raise _SetSyntaxError(f"key map {runes!r} has no value")
        _set(data, runes, inner)

    def key_index(self) -> int:
        runes, last = self.sc.until("]")
        if last is None:
            # Helm 3 rejects an index cut short by the end of input; Helm 4 wraps io.EOF here
            # and so silently drops the whole expression. A typo should not vanish: Helm 3 wins.
            raise _SetSyntaxError("error parsing index: EOF")

        if not re.fullmatch(r"[+-]?[0-9]+", runes):
            raise _SetSyntaxError(f"error parsing index: {runes!r} is not an integer")
        return int(runes)

    def list_item(self, items: list[Any], index: int, level: int) -> list[Any]:
        if index < 0:
            raise _SetSyntaxError(f"negative {index} index not allowed")
        runes, last = self.sc.until("[.=")
        if runes:
            raise _SetSyntaxError(f"unexpected data at end of array index: {runes!r}")
        if last is None:
            raise _EOF
        if last == "=":
            is_list, values, at_end = self.value_list()
            if is_list:
                return _set_index(items, index, values)
            if at_end:
                return _set_index(items, index, "")
            value, _ = self.sc.until(",")
            return _set_index(items, index, typed_value(value, as_string=self.as_string))
        if last == "[":
            next_index = self.key_index()
            current = items[index] if index < len(items) and items[index] is not None else []
            if not isinstance(current, list):
                raise _SetSyntaxError(f"unable to parse key: index {index} is not a list")
            return _set_index(items, index, self.list_item(current, next_index, level))
        # last == "."
        inner = items[index] if index < len(items) else {}
        if not isinstance(inner, dict):
            inner = {}
        self.key(inner, level)
        return _set_index(items, index, inner)

    def value_list(self) -> tuple[bool, list[Any], bool]:
        """(is a {a,b} list, its items, input ended before any value)."""
        char = self.sc.read()
        if char is None:
            return False, [], True
        if char != "{":
            self.sc.unread()
            return False, [], False
        items: list[Any] = []
        while True:
            runes, last = self.sc.until(",}")
            if last is None:
                raise _SetSyntaxError("list must terminate with '}'")
            items.append(typed_value(runes, as_string=self.as_string))
            if last == "}":
                following = self.sc.read()
                if following is not None and following != ",":
                    self.sc.unread()
                return True, items, False


def _set(data: dict[str, Any], key: str, value: Any) -> None:
    if key:
        data[key] = value


def _set_index(items: list[Any], index: int, value: Any) -> list[Any]:
    if index < 0:
        raise _SetSyntaxError(f"negative {index} index not allowed")
    if index > _MAX_INDEX:
        raise _SetSyntaxError(
            f"index of {index} is greater than maximum supported index of {_MAX_INDEX}"
        )
    if len(items) <= index:
        items.extend([None] * (index + 1 - len(items)))
    items[index] = value
    return items


def apply_set(
    values: dict[str, Any], expression: str, *, as_string: bool = False
) -> dict[str, Any]:
    """Apply one ``--set`` (or ``--set-string`` with ``as_string=True``) expression to
    ``values`` in place, exactly as helm does, and return it.

    Raises InvalidValuesError naming the expression when it does not parse.
    """
    try:
        _SetParser(expression, as_string=as_string).parse_into(values)
    except _SetSyntaxError as error:
        flag = "--set-string" if as_string else "--set"
        raise InvalidValuesError([f"{flag} {expression}: {error}"], source=flag) from None
    return values


def parse_set(expression: str, *, as_string: bool = False) -> dict[str, Any]:
    """Parse one ``--set`` expression into a fresh dict."""
    return apply_set({}, expression, as_string=as_string)


# --------------------------------------------------------------------------------------------
# Validation.


def format_path(path: Iterable[Any]) -> str:
    """``["socket", "volume", "type"]`` -> ``socket.volume.type``; list indexes as ``[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(root)"


# Compiled validators by schema object: the chart's schema is read once (api's cache keeps the
# same dict alive), so building its validator once saves the work on every later call.
_VALIDATORS: dict[int, tuple[Mapping[str, Any], Any]] = {}


def _validator(schema: Mapping[str, Any]) -> Any:
    cached = _VALIDATORS.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    from jsonschema import Draft7Validator

    validator = Draft7Validator(schema)
    if len(_VALIDATORS) >= 16:  # charts from many places: keep the cache small
        _VALIDATORS.clear()
    _VALIDATORS[id(schema)] = (schema, validator)
    return validator


def schema_problems(values: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """Every violation of ``schema`` by ``values``, as ``<dotted.path>: <message>``, sorted by
    path so the output is stable."""
    validator = _validator(schema)
    problems = []
    for error in validator.iter_errors(values):
        problems.append(
            (list(error.absolute_path), f"{format_path(error.absolute_path)}: {error.message}")
        )
    problems.sort(key=lambda item: (format_path(item[0]), item[1]))
    return [text for _, text in problems]
