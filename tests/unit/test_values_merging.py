"""Values are merged like helm merges `-f` files: maps deep-merged, lists and scalars replaced."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vineyard_helm import InvalidValuesError, merge_values
from vineyard_helm.values import coalesce_with_defaults, collect_values


def test_maps_are_merged_key_by_key() -> None:
    merged = merge_values(
        {"vineyard": {"size": "256Mi", "rpc": {"enabled": True, "port": 9600}}},
        {"vineyard": {"rpc": {"port": 9601}}},
    )
    assert merged == {"vineyard": {"size": "256Mi", "rpc": {"enabled": True, "port": 9601}}}


def test_lists_are_replaced_not_concatenated() -> None:
    # pyhelm3 would concatenate these into three secrets; helm -f keeps only the last list.
    merged = merge_values(
        {"imagePullSecrets": [{"name": "a"}, {"name": "b"}]},
        {"imagePullSecrets": [{"name": "c"}]},
    )
    assert merged == {"imagePullSecrets": [{"name": "c"}]}


def test_a_scalar_replaces_a_map_and_a_map_replaces_a_scalar() -> None:
    assert merge_values({"a": {"b": 1}}, {"a": 2}) == {"a": 2}
    assert merge_values({"a": 2}, {"a": {"b": 1}}) == {"a": {"b": 1}}


def test_null_is_kept_for_helm_to_delete_the_default() -> None:
    assert merge_values({"a": {"b": 1}}, {"a": None}) == {"a": None}


def test_later_layers_win() -> None:
    assert merge_values({"x": 1}, {"x": 2}, {"x": 3}) == {"x": 3}


def test_inputs_are_not_modified() -> None:
    first = {"a": {"b": [1, 2]}}
    second = {"a": {"c": 3}}
    snapshot = copy.deepcopy((first, second))
    merged = merge_values(first, second)
    merged["a"]["b"].append(99)
    assert (first, second) == snapshot


json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
values_trees = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from("abcd"), children, max_size=4)
    ),
    max_leaves=12,
)
values_maps = st.dictionaries(st.sampled_from("abcd"), values_trees, max_size=4)


def _reference_merge(base: Any, override: Any) -> Any:
    """helm's mergeMaps, written as directly as possible."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = _reference_merge(base[key], value) if key in base else value
        return out
    return override


@settings(deadline=None)  # a shared 2-core machine: time per example is noise
@given(values_maps, values_maps)
def test_merge_matches_helms_merge_maps(base: dict[str, Any], override: dict[str, Any]) -> None:
    assert merge_values(base, override) == _reference_merge(base, override)


@settings(deadline=None)  # a shared 2-core machine: time per example is noise
@given(values_maps, values_maps)
def test_every_list_in_the_result_comes_whole_from_one_layer(
    base: dict[str, Any], override: dict[str, Any]
) -> None:
    def lists(tree: Any) -> list[Any]:
        if isinstance(tree, dict):
            return [item for value in tree.values() for item in lists(value)]
        return [tree] if isinstance(tree, list) else []

    sources = lists(base) + lists(override)
    for merged_list in lists(merge_values(base, override)):
        assert merged_list in sources


def test_yaml_files_and_dicts_merge_in_order(tmp_path: Path) -> None:
    first = tmp_path / "a.yaml"
    first.write_text("vineyard:\n  size: 1Gi\n  extraArgs: [--a]\n")
    second = tmp_path / "b.yaml"
    second.write_text("vineyard:\n  extraArgs: [--b]\n")
    merged = collect_values([first, str(second), {"vineyard": {"meta": "local"}}])
    assert merged == {"vineyard": {"size": "1Gi", "extraArgs": ["--b"], "meta": "local"}}


def test_an_empty_yaml_file_is_no_values(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    assert collect_values(empty) == {}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("- a\n- b\n", "top level must be a mapping, got list"),
        ("a: [\n", "not valid YAML"),
    ],
)
def test_a_bad_values_file_is_reported_with_its_name(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(InvalidValuesError) as caught:
        collect_values(path)
    assert str(path) in caught.value.problems[0]
    assert problem in caught.value.problems[0]


def test_a_missing_values_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(InvalidValuesError, match=r"missing\.yaml"):
        collect_values(tmp_path / "missing.yaml")


def test_coalescing_deletes_a_default_set_to_null_and_replaces_lists() -> None:
    defaults = {"a": {"b": 1, "c": 2}, "l": [1, 2], "keep": True}
    coalesced = coalesce_with_defaults(defaults, {"a": {"b": None}, "l": [3]})
    assert coalesced == {"a": {"c": 2}, "l": [3], "keep": True}
    assert defaults == {"a": {"b": 1, "c": 2}, "l": [1, 2], "keep": True}


def test_pyhelm3_would_concatenate_lists_which_is_why_one_merged_dict_is_passed() -> None:
    from pyhelm3.client import mergeconcat

    layers = ({"imagePullSecrets": [{"name": "a"}]}, {"imagePullSecrets": [{"name": "b"}]})
    assert mergeconcat(*layers) == {"imagePullSecrets": [{"name": "a"}, {"name": "b"}]}
    assert merge_values(*layers) == {"imagePullSecrets": [{"name": "b"}]}
