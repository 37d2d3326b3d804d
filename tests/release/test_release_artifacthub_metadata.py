"""Chart.yaml is complete for Artifact Hub, beyond the presence checks of
tests/chart/test_chart_metadata.py: every annotation has the shape Artifact Hub parses, and the
metadata agrees with the Python package's (license) and with what the release publishes."""
from __future__ import annotations

import re
from typing import Any

import pytest
import tomllib
import yaml

from tests.release.release_kit import Published
from tests.support.paths import CHART, REPO

# https://artifacthub.io/docs/topics/annotations/helm/
CATEGORIES = {"ai-machine-learning", "database", "integration-delivery", "monitoring-logging",
              "networking", "security", "storage", "streaming-messaging"}
CHANGE_KINDS = {"added", "changed", "deprecated", "removed", "fixed", "security"}
BOOLEAN_ANNOTATIONS = ("artifacthub.io/operator", "artifacthub.io/prerelease",
                       "artifacthub.io/containsSecurityUpdates")


def chart() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CHART / "Chart.yaml").read_text())
    return loaded


def annotation(key: str) -> Any:
    return yaml.safe_load(chart()["annotations"][key])


def test_category_is_one_artifact_hub_knows() -> None:
    assert chart()["annotations"]["artifacthub.io/category"] in CATEGORIES


@pytest.mark.parametrize("key", BOOLEAN_ANNOTATIONS)
def test_boolean_annotations_are_the_strings_true_or_false(key: str) -> None:
    # Chart annotations are map[string]string: an unquoted YAML boolean breaks `helm package`.
    assert chart()["annotations"][key] in ("true", "false")


def test_changes_are_typed_entries_with_descriptions() -> None:
    changes = annotation("artifacthub.io/changes")
    assert isinstance(changes, list)
    assert changes
    for change in changes:
        assert set(change) <= {"kind", "description", "links"}, change
        assert change["kind"] in CHANGE_KINDS, change
        assert isinstance(change["description"], str)
        assert change["description"].strip()


def test_links_are_named_https_urls() -> None:
    links = annotation("artifacthub.io/links")
    assert links
    for link in links:
        assert set(link) == {"name", "url"}, link
        assert link["name"].strip(), link
        assert link["url"].startswith("https://"), link


def test_images_are_pinned_references() -> None:
    for image in annotation("artifacthub.io/images"):
        assert set(image) <= {"name", "image", "platforms", "whitelisted"}, image
        ref = image["image"]
        assert re.fullmatch(r"[a-z0-9.-]+(:\d+)?/[a-z0-9._/-]+(:[\w.-]+|@sha256:[0-9a-f]{64})",
                            ref), ref
        assert not ref.endswith(":latest"), ref


def test_license_is_the_python_packages_spdx_license() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert chart()["annotations"]["artifacthub.io/license"] == pyproject["project"]["license"]


def test_maintainers_can_be_reached() -> None:
    for maintainer in chart()["maintainers"]:
        assert maintainer.get("name"), maintainer
        assert maintainer.get("email") or str(maintainer.get("url", "")).startswith("https://")


def test_icon_home_and_sources_are_https() -> None:
    meta = chart()
    assert re.fullmatch(r"https://\S+\.(png|svg|jpg|jpeg)", meta["icon"]), meta["icon"]
    assert meta["home"].startswith("https://")
    assert all(s.startswith("https://") for s in meta["sources"])


def test_keywords_name_the_project_and_are_unique() -> None:
    keywords = chart()["keywords"]
    assert {"vineyard", "v6d"} <= set(keywords)
    assert len(keywords) == len(set(keywords))


def test_description_is_a_short_paragraph() -> None:
    # Artifact Hub shows the description in search results: one paragraph, no markup.
    description = chart()["description"]
    assert 40 <= len(description) <= 400
    assert "\n" not in description.strip()


def test_published_index_carries_the_artifact_hub_metadata(published: Published) -> None:
    """Artifact Hub reads an HTTP repository's index.yaml: the annotations must survive
    packaging and indexing unchanged."""
    index = yaml.safe_load((published.site / "index.yaml").read_text())
    [entry] = [e for e in index["entries"]["vineyard"] if e["version"] == published.version]
    assert entry["annotations"] == chart()["annotations"]
    for key in ("icon", "home", "sources", "keywords", "maintainers", "kubeVersion", "appVersion"):
        assert entry[key] == chart()[key], key
    assert re.fullmatch(r"[0-9a-f]{64}", entry["digest"])
