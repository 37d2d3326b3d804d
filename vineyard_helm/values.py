"""Values go to helm as they are: helm alone merges them, parses ``--set`` and checks them.

The ``values=`` argument of every verb is a mapping, a YAML file path, or a sequence of those;
:func:`values_args` turns it into helm's own flags, in the order given: a path as
``--values PATH``, the first mapping on helm's stdin (``--values -``), any further mapping as a
temporary JSON file (JSON is YAML). ``--set-json``, ``--set`` and ``--set-string`` expressions
follow unchanged. helm then merges the layers exactly as ``helm -f a -f b --set ...`` would
(later files win, maps merge, lists are replaced; the ``--set`` family last), checks the
result against the chart's values.schema.json, and the chart's own checks run as it renders.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Union

#: What the ``values=`` arguments accept: a mapping, a YAML file path, or a sequence of those
#: (helm merges them in order, later wins).
ValuesSource = Union[Mapping[str, Any], str, "os.PathLike[str]"]
ValuesInput = Union[ValuesSource, Sequence[ValuesSource], None]  # noqa: UP007


def _sources(values: ValuesInput) -> Sequence[ValuesSource]:
    if values is None:
        return ()
    if isinstance(values, (Mapping, str, os.PathLike)):
        return (values,)
    return values


@contextlib.contextmanager
def values_args(
    values: ValuesInput,
    *,
    set_values: Sequence[str] = (),
    set_string_values: Sequence[str] = (),
    set_json_values: Sequence[str] = (),
) -> Iterator[tuple[list[str], bytes | None]]:
    """(helm's flags for these values, the bytes for helm's stdin); temporary files (mappings
    after the first) live as long as the block. Raises TypeError for a source that is neither
    a mapping nor a path."""
    import json

    args: list[str] = []
    stdin: bytes | None = None
    with contextlib.ExitStack() as cleanup:
        for source in _sources(values):
            if isinstance(source, Mapping):
                document = json.dumps(source)
                if stdin is None:
                    stdin = document.encode()
                    args += ["--values", "-"]
                else:
                    args += ["--values", cleanup.enter_context(_temporary_file(document))]
            elif isinstance(source, (str, os.PathLike)):
                args += ["--values", os.fspath(source)]
            else:
                raise TypeError(
                    f"values: expected a mapping or a YAML file path, got {type(source).__name__}"
                )
        for flag, expressions in (
            ("--set-json", set_json_values),
            ("--set", set_values),
            ("--set-string", set_string_values),
        ):
            for expression in expressions:
                args += [flag, expression]
        yield args, stdin


@contextlib.contextmanager
def _temporary_file(text: str) -> Iterator[str]:
    import tempfile

    descriptor, path = tempfile.mkstemp(prefix="vineyard-helm-values-", suffix=".json")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        yield path
    finally:
        os.unlink(path)
