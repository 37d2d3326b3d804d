"""One version: Chart.yaml's version, the Python package as built, the changelog and the chart's
Artifact Hub change list agree; the release command refuses to run when they do not."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from hack import release
from tests.release.release_kit import (
    Key,
    Published,
    chart_version,
    exporter_image,
    public_path,
    python_dist,
    release_cmd,
    run,
)
from tests.support.helm import HELM
from tests.support.paths import CHART, REPO


def test_chart_changelog_and_change_annotation_agree() -> None:
    assert release.version_problems() == []


def test_release_check_command_reports_agreement() -> None:
    result = subprocess.run([sys.executable, str(REPO / "hack" / "release.py"), "check"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert f"vineyard {chart_version()}:" in result.stdout


def test_built_wheels_are_the_chart_version_and_carry_that_chart(published: Published) -> None:
    pure, platform_wheels = python_dist(published.dist)
    assert pure.name == f"vineyard_helm-{published.version}-py3-none-any.whl"
    assert len(platform_wheels) == 1  # this machine's: published is cut with --platforms host
    for wheel in (pure, *platform_wheels):
        assert wheel.name.startswith(f"vineyard_helm-{published.version}-py3-none-")
        python_version, carried = release.wheel_version(wheel)
        assert release.same_version(python_version, published.version)
        assert carried == published.version
        names = zipfile.ZipFile(wheel).namelist()
        assert "vineyard_helm/chart/values.schema.json" in names


def test_built_sdist_is_the_chart_version_and_carries_the_chart(published: Published) -> None:
    (sdist,) = (published.dist / "python").glob("*.tar.gz")
    root = f"vineyard_helm-{published.version}"
    assert sdist.name == f"{root}.tar.gz"
    with tarfile.open(sdist) as archive:
        names = set(archive.getnames())
        pkg_info = archive.extractfile(f"{root}/PKG-INFO")
        assert pkg_info is not None
        assert f"\nVersion: {published.version}\n" in pkg_info.read().decode()
    assert f"{root}/charts/vineyard/Chart.yaml" in names
    assert f"{root}/hatch_build.py" in names  # pip builds the pure wheel from it


def test_release_writes_checksums_of_every_artifact(published: Published) -> None:
    import hashlib

    lines = (published.dist / "SHA256SUMS").read_text().splitlines()
    listed = {line.split("  ", 1)[1]: line.split("  ", 1)[0] for line in lines}
    v = published.version
    _, (platform_wheel,) = python_dist(published.dist)
    assert set(listed) == {f"repo/vineyard-{v}.tgz", f"repo/vineyard-{v}.tgz.prov",
                           f"python/vineyard_helm-{v}-py3-none-any.whl",
                           f"python/{platform_wheel.name}",
                           f"python/vineyard_helm-{v}.tar.gz",
                           f"images/vineyard-exporter-{v}.oci.tar",
                           f"images/vineyard-exporter-{v}.manifest.json"}
    for name, digest in listed.items():
        assert hashlib.sha256((published.dist / name).read_bytes()).hexdigest() == digest


# ---- drift is caught ------------------------------------------------------------------------


def _bump_changelog(chart: Path, changelog: Path) -> None:
    changelog.write_text(changelog.read_text().replace(f"## [{chart_version()}]", "## [9.9.9]", 1))


def _drop_annotated_change(chart: Path, changelog: Path) -> None:
    meta = chart / "Chart.yaml"
    text = meta.read_text()
    start = text.index("    - kind: added\n", text.index("artifacthub.io/changes"))
    end = text.index("\n", text.index("description:", start)) + 1
    meta.write_text(text[:start] + text[end:])


def _add_unannotated_chart_change(chart: Path, changelog: Path) -> None:
    text = changelog.read_text()
    anchor = "### Added\n\n"
    at = text.index(anchor, text.index(f"## [{chart_version()}]")) + len(anchor)
    changelog.write_text(text[:at] + "- a chart change nobody annotated\n" + text[at:])


def _bump_chart(chart: Path, changelog: Path) -> None:
    meta = chart / "Chart.yaml"
    meta.write_text(meta.read_text().replace(f"version: {chart_version()}\n", "version: 9.9.9\n"))


def _prerelease_without_flag(chart: Path, changelog: Path) -> None:
    version = chart_version()
    meta = chart / "Chart.yaml"
    meta.write_text(meta.read_text().replace(f"version: {version}\n", f"version: {version}-rc.1\n"))
    changelog.write_text(changelog.read_text().replace(f"## [{version}]", f"## [{version}-rc.1]"))


def _security_fix_without_flag(chart: Path, changelog: Path) -> None:
    meta = chart / "Chart.yaml"
    meta.write_text(meta.read_text().replace(
        "  artifacthub.io/changes: |\n",
        "  artifacthub.io/changes: |\n    - kind: security\n      description: a CVE fixed\n"))
    text = changelog.read_text()
    at = text.index("### Added", text.index(f"## [{chart_version()}]"))
    changelog.write_text(text[:at] + "### Security\n\n- a CVE fixed\n\n" + text[at:])


DRIFTS: dict[str, Callable[[Path, Path], None]] = {
    "changelog-version": _bump_changelog,
    "chart-version": _bump_chart,
    "annotation-not-in-changelog": _drop_annotated_change,
    "changelog-not-in-annotation": _add_unannotated_chart_change,
    "prerelease-flag": _prerelease_without_flag,
    "security-flag": _security_fix_without_flag,
}


@pytest.mark.parametrize("drift", DRIFTS, ids=list(DRIFTS))
def test_drift_between_chart_and_changelog_is_reported(drift: str, tmp_path: Path) -> None:
    chart, changelog = tmp_path / "vineyard", tmp_path / "CHANGELOG.md"
    shutil.copytree(CHART, chart)
    shutil.copyfile(REPO / "CHANGELOG.md", changelog)
    assert release.version_problems(chart, changelog) == []
    DRIFTS[drift](chart, changelog)
    assert release.version_problems(chart, changelog), drift


def test_chart_yaml_names_the_exporter_image_the_release_publishes(tmp_path: Path) -> None:
    """REGISTRY/PATH/vineyard-exporter:<chart version>, REGISTRY/PATH being where --oci (or
    --oci-name) puts the chart; a version bump that forgets the image's tag is caught."""
    chart = tmp_path / "vineyard"
    shutil.copytree(CHART, chart)
    version = chart_version()
    assert release.exporter_ref_problem(version, f"oci://{public_path()}", chart) is None
    assert release.exporter_ref_problem(version, None, chart) is None
    elsewhere = release.exporter_ref_problem(version, "oci://127.0.0.1:5000/charts", chart)
    assert f"this release would publish 127.0.0.1:5000/charts/vineyard-exporter:{version}" \
        in str(elsewhere)
    _bump_chart(chart, tmp_path / "CHANGELOG.md")
    stale = release.exporter_ref_problem("9.9.9", None, chart)
    assert f"exporter image is {exporter_image()}, not .../vineyard-exporter:9.9.9" in str(stale)


def test_python_only_entries_stay_out_of_the_chart_annotation() -> None:
    [top, *_] = release.parse_changelog((REPO / "CHANGELOG.md").read_text())
    python_only = [d for _, d in top.changes if d.startswith(release.PYTHON_ONLY)]
    assert python_only, "the first release introduced the Python package"


def test_pep440_and_semver_prereleases_compare_equal() -> None:
    assert release.same_version("0.2.0rc1", "0.2.0-rc.1")
    assert not release.same_version("0.2.0", "0.2.1")


# ---- the release command refuses -----------------------------------------------------------


def test_release_refuses_a_version_already_in_the_published_index(
        published: Published, helm_env: dict[str, str], tmp_path: Path) -> None:
    result = run(release_cmd("--dist", tmp_path / "dist",
                             "--previous-index", f"{published.url}/index.yaml"),
                 helm_env, check=False)
    assert result.returncode == 1
    assert f"vineyard {published.version} is already in" in result.stderr


def test_release_refuses_to_run_without_a_signing_key(helm_env: dict[str, str],
                                                      tmp_path: Path) -> None:
    env = {k: v for k, v in helm_env.items() if not k.startswith("VINEYARD_RELEASE_")}
    result = run(release_cmd("--dist", tmp_path / "dist"), env, check=False)
    assert result.returncode == 1
    assert "VINEYARD_RELEASE_KEY" in result.stderr
    assert not list((tmp_path / "dist").rglob("*.tgz"))


def test_release_signs_with_a_secret_keyring_file(signing_key: Key, helm_env: dict[str, str],
                                                  tmp_path: Path) -> None:
    env = {**helm_env, "VINEYARD_RELEASE_KEY": signing_key.name,
           "VINEYARD_RELEASE_KEYRING": str(signing_key.secring)}
    dist = tmp_path / "dist"
    run(release_cmd("--dist", dist), env)
    package = dist / "repo" / f"vineyard-{chart_version()}.tgz"
    verified = run([HELM, "verify", package, "--keyring", dist / "repo" / "vineyard-helm.gpg"],
                   helm_env)
    assert f"Signed by: {signing_key.name}" in verified.stdout + verified.stderr


def test_release_from_a_clean_clone_and_refusal_once_it_is_dirty(
        signing_key: Key, helm_env: dict[str, str], tmp_path: Path) -> None:
    """As CI cuts it: a fresh clone of the committed tree, no --allow-dirty. An uncommitted
    change to what gets packaged stops the release before anything is built."""
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", REPO, clone], helm_env)
    env = {**helm_env, "VINEYARD_RELEASE_KEY": signing_key.name,
           "VINEYARD_RELEASE_KEYRING": str(signing_key.secring)}
    script = [sys.executable, clone / "hack" / "release.py", "--helm", HELM, "--no-isolation",
              "--platforms", "none", "--images", "none"]
    run([*script, "--dist", tmp_path / "clean"], env)
    assert len(list((tmp_path / "clean" / "python").glob("*.whl"))) == 1

    values = clone / "charts" / "vineyard" / "values.yaml"
    values.write_text(values.read_text() + "\n# not committed\n")
    refused = run([*script, "--dist", tmp_path / "dirty"], env, check=False)
    assert refused.returncode == 1
    assert "uncommitted changes would be released" in refused.stderr
    assert "charts/vineyard/values.yaml" in refused.stderr
    assert not list((tmp_path / "dirty").rglob("*.tgz"))
