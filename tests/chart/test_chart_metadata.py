"""Chart.yaml metadata and the generated README stay true to the values."""

from __future__ import annotations

import subprocess
import sys

import yaml

from tests.support.chart_render import default_values, find, render
from tests.support.paths import CHART, REPO


def chart_yaml() -> dict:
    return yaml.safe_load((CHART / "Chart.yaml").read_text())


def test_chart_readme_values_table_is_up_to_date() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "hack" / "gen_chart_docs.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_chart_declares_what_artifact_hub_and_helm_need() -> None:
    chart = chart_yaml()
    assert chart["apiVersion"] == "v2"
    assert chart["type"] == "application"
    assert chart["kubeVersion"] == ">=1.25.0-0"
    assert isinstance(chart["appVersion"], str)
    for key in ("description", "home", "icon", "sources", "keywords", "maintainers"):
        assert chart[key], key
    annotations = chart["annotations"]
    for key in (
        "artifacthub.io/license",
        "artifacthub.io/images",
        "artifacthub.io/changes",
        "artifacthub.io/links",
    ):
        assert annotations[key], key


def test_listed_images_are_the_images_the_chart_deploys() -> None:
    listed = {
        i["name"]: i["image"]
        for i in yaml.safe_load(chart_yaml()["annotations"]["artifacthub.io/images"])
    }
    manifests = render({"metrics": {"enabled": True}})
    containers = find(manifests, "DaemonSet")["spec"]["template"]["spec"]["containers"]
    images = {c["name"]: c["image"] for c in containers}
    etcd = find(manifests, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert listed == {
        "vineyardd": images["vineyardd"],
        "etcd": etcd,
        "exporter": images["metrics-exporter"],
    }


def test_the_exporter_image_is_the_one_released_with_the_chart() -> None:
    """hack/release.py publishes the exporter image under the chart's version."""
    listed = {
        i["name"]: i["image"]
        for i in yaml.safe_load(chart_yaml()["annotations"]["artifacthub.io/images"])
    }
    assert listed["exporter"].endswith(":" + chart_yaml()["version"])
    assert default_values()["metrics"]["exporter"]["image"]["tag"] == ""


def test_default_vineyardd_tag_is_the_app_version_and_pinned() -> None:
    values = default_values()
    image = find(render(), "DaemonSet")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert values["image"]["tag"] == ""
    assert image.endswith(":v" + chart_yaml()["appVersion"])
    assert not values["etcd"]["image"]["tag"].endswith("latest")


def test_digest_pins_the_image_exactly() -> None:
    digest = "sha256:" + "a" * 64
    image = find(render({"image": {"digest": digest}}), "DaemonSet")["spec"]["template"]["spec"][
        "containers"
    ][0]["image"]
    assert image == f"docker.io/vineyardcloudnative/vineyardd@{digest}"
