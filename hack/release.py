#!/usr/bin/env python3
"""Cut a release: one version (Chart.yaml's) for the chart, the Python package and the changelog.

    python hack/release.py [--dist dist] [--previous-index URL|FILE] [--repo-url URL]
                           [--oci oci://REGISTRY/PATH [--plain-http] [--oci-name NAME]]
                           [--platforms all|host|none|GOOS/GOARCH,...] [--images all|none]
                           [--no-isolation] [--allow-dirty]
    python hack/release.py check        # only the version checks, nothing is built

Writes into --dist (default dist/):

    repo/                    the HTTP chart repository, ready to publish as static files:
      index.yaml             merged with --previous-index, so earlier versions stay listed
      vineyard-X.tgz         the packaged chart
      vineyard-X.tgz.prov    its provenance, signed with the release key
      vineyard-helm.gpg      the public key (binary keyring for `helm pull --verify --keyring`)
    python/                  vineyard_helm-X-py3-none-any.whl and vineyard_helm-X.tar.gz,
                             the chart inside both, and one wheel per --platforms platform
                             carrying helm (tools/versions.env's HELM_VERSION, built from its
                             Go module, static and stripped: hack/helm_wheels.py), e.g.
                             vineyard_helm-X-py3-none-macosx_11_0_arm64.whl
    images/                  the images this project builds that the chart points at by default
                             (the metrics exporter): vineyard-exporter-X.oci.tar, the OCI archive
                             localcluster/images.py makes of tools/exporter built at version X,
                             and vineyard-exporter-X.manifest.json, its manifest (the file's
                             sha256 is the image's digest)
    SHA256SUMS               every file above but index.yaml and the public key

Every wheel is checked before anything is pushed: its tags, its size, and for a platform wheel
the helm inside (format and architecture from its headers, build flags, sha256 against the
record, licence); the one for this machine runs `helm version`.

The signing key comes from the environment (or the matching options):
    VINEYARD_RELEASE_KEY          the key's user id (or a unique part of it): helm --key
    VINEYARD_RELEASE_KEYRING      a secret keyring in the legacy format helm reads
                                  (`gpg --export-secret-keys KEY > secring.gpg`), or instead
    VINEYARD_RELEASE_PRIVATE_KEY  the ASCII-armored secret key itself (a CI secret); it is
                                  imported into a throwaway GNUPGHOME and exported for helm
    HELM_KEY_PASSPHRASE           the key's passphrase, if it has one (read by helm itself)

`--oci` pushes the exporter image to REGISTRY/PATH/vineyard-exporter:X (with crane; log in with
`crane auth login`) and then the package (and its .prov) with `helm push` (log in with
`helm registry login`). Chart.yaml's exporter image must be exactly that reference, so the chart
points at what the release publishes; `--oci-name` gives the public name of REGISTRY/PATH when
--oci is a stand-in (a trial against a loopback registry). `--images none` builds and pushes no
image (trial runs, as `--platforms none` builds no helm). Every step is checked; the first
failure stops the release.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: hack/ is on the path, the repository is not
    sys.path.insert(0, str(REPO))
from hack import helm_wheels  # noqa: E402

CHART = REPO / "charts" / "vineyard"
CHANGELOG = REPO / "CHANGELOG.md"
PUBLIC_KEY_NAME = "vineyard-helm.gpg"
# What the chart package, the wheel and the sdist are built from.
RELEASED_PATHS = ("charts/vineyard", "vineyard_helm", "pyproject.toml", "README.md",
                  "CHANGELOG.md", "hatch_build.py", "hack/helm_wheels.py", "tools/versions.env",
                  # the exporter image
                  "tools/exporter", "hack/build-tools.sh", "localcluster/images.py")
# Keep a Changelog section -> Artifact Hub `artifacthub.io/changes` kind.
KINDS = {"Added": "added", "Changed": "changed", "Deprecated": "deprecated",
         "Removed": "removed", "Fixed": "fixed", "Security": "security"}
# Changelog entries with this prefix concern only the Python package: they are not chart
# changes, so they are not in the chart's artifacthub.io/changes annotation.
PYTHON_ONLY = "vineyard-helm:"
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
                    r"(?:-(?P<pre>[0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")


class ReleaseError(RuntimeError):
    """A release step failed or a check found drift; the message says which."""


# ---- the one version ------------------------------------------------------------------------


@dataclass(frozen=True)
class ChangelogEntry:
    version: str
    date: str
    changes: tuple[tuple[str, str], ...]  # (kind, description), in file order


def parse_changelog(text: str) -> list[ChangelogEntry]:
    """Released entries (`## [X.Y.Z] - YYYY-MM-DD`), newest first; `## [Unreleased]` skipped."""
    entries: list[ChangelogEntry] = []
    version = date = kind = None
    changes: list[tuple[str, str]] = []
    item: list[str] | None = None

    def close_item() -> None:
        nonlocal item
        if item is not None and version is not None and kind is not None:
            changes.append((kind, " ".join(item)))
        item = None

    def close_entry() -> None:
        close_item()
        if version is not None:
            entries.append(ChangelogEntry(version, date or "", tuple(changes)))

    for line in text.splitlines():
        heading = re.match(r"^## \[(?P<v>[^\]]+)\](?: - (?P<d>\S+))?\s*$", line)
        if heading:
            close_entry()
            released = heading["v"].lower() != "unreleased"
            version = heading["v"] if released else None
            date, kind, changes = heading["d"], None, []
            continue
        section = re.match(r"^### (\w+)\s*$", line)
        if section:
            close_item()
            kind = KINDS.get(section[1])
            if version is not None and kind is None:
                raise ReleaseError(f"CHANGELOG.md: unknown section {section[1]!r} "
                                   f"(Keep a Changelog allows {', '.join(KINDS)})")
            continue
        bullet = re.match(r"^[-*] (.+)$", line)
        if bullet:
            close_item()
            item = [bullet[1].strip()]
        elif item is not None and line.startswith("  ") and line.strip():
            item.append(line.strip())
        elif not line.strip():
            close_item()
    close_entry()
    return entries


def chart_metadata(chart: Path = CHART) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((chart / "Chart.yaml").read_text())
    return loaded


def version_problems(chart: Path = CHART, changelog: Path = CHANGELOG) -> list[str]:
    """Every disagreement between Chart.yaml's version, its Artifact Hub annotations and the
    changelog's newest release. Empty when all agree."""
    meta = chart_metadata(chart)
    version = str(meta.get("version", ""))
    problems: list[str] = []
    semver = SEMVER.match(version)
    if not semver:
        problems.append(f"Chart.yaml version {version!r} is not semantic versioning")
    annotations = meta.get("annotations") or {}
    prerelease = "true" if semver and semver["pre"] else "false"
    if str(annotations.get("artifacthub.io/prerelease", "false")) != prerelease:
        problems.append(f"artifacthub.io/prerelease should be {prerelease!r} for {version}")
    try:
        entries = parse_changelog(changelog.read_text())
    except OSError as e:
        return [*problems, f"cannot read {changelog}: {e}"]
    if not entries:
        return [*problems, f"{changelog.name} has no released entry (## [X.Y.Z] - DATE)"]
    top = entries[0]
    if top.version != version:
        problems.append(f"{changelog.name}'s newest release is {top.version}, "
                        f"Chart.yaml's version is {version}")
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", top.date):
        problems.append(f"{changelog.name}: release {top.version} has no YYYY-MM-DD date")
    if len({e.version for e in entries}) != len(entries):
        problems.append(f"{changelog.name} lists a version twice")
    chart_changes = [(k, d) for k, d in top.changes if not d.startswith(PYTHON_ONLY)]
    annotated = [(str(c.get("kind")), " ".join(str(c.get("description", "")).split()))
                 for c in yaml.safe_load(annotations.get("artifacthub.io/changes") or "[]")]
    for kind, text in annotated:
        if (kind, text) not in chart_changes:
            problems.append(f"artifacthub.io/changes has '{kind}: {text}', "
                            f"missing from {changelog.name} {top.version}")
    for kind, text in chart_changes:
        if (kind, text) not in annotated:
            problems.append(f"{changelog.name} {top.version} has '{kind}: {text}', missing from "
                            f"artifacthub.io/changes (prefix Python-only entries with "
                            f"{PYTHON_ONLY!r})")
    security = str(any(kind == "security" for kind, _ in annotated)).lower()
    if str(annotations.get("artifacthub.io/containsSecurityUpdates", "false")) != security:
        problems.append(f"artifacthub.io/containsSecurityUpdates should be {security!r}")
    return problems


def wheel_version(wheel: Path) -> tuple[str, str]:
    """(METADATA Version, version of the chart the wheel carries)."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        match = re.search(r"(?m)^Version: *(\S+)", archive.read(metadata).decode())
        chart = yaml.safe_load(archive.read("vineyard_helm/chart/Chart.yaml"))
    return (match[1] if match else ""), str(chart["version"])


def same_version(python_version: str, chart_version: str) -> bool:
    """PEP 440 normalises semver pre-releases (0.2.0-rc.1 is 0.2.0rc1): compare normalised."""
    from packaging.version import Version

    return Version(python_version) == Version(chart_version)


# ---- helpers --------------------------------------------------------------------------------


def default_tool(name: str) -> str:
    """hack/build-tools.sh's build of `name` if there is one, else PATH's."""
    built = REPO / ".cache" / "bin" / name
    return str(built) if built.exists() else (shutil.which(name) or name)


def default_helm() -> str:
    return default_tool("helm")


def run(argv: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
        input: str | None = None) -> str:
    """Runs a step; on failure raises ReleaseError with the command and its stderr."""
    result = subprocess.run(list(argv), capture_output=True, text=True, env=env, cwd=cwd,
                            input=input)
    if result.returncode != 0:
        raise ReleaseError(f"`{' '.join(argv)}` failed ({result.returncode}):\n"
                           f"{(result.stderr or result.stdout).strip()}")
    return result.stdout + result.stderr


def uncommitted(paths: Sequence[str]) -> list[str]:
    """`git status` lines of `paths` (what the packages are built from) that are not committed;
    empty outside a git checkout."""
    result = subprocess.run(["git", "status", "--porcelain", "--", *paths], cwd=REPO,
                            capture_output=True, text=True, check=False)
    return result.stdout.splitlines() if result.returncode == 0 else []


def log(message: str) -> None:
    print(f"release: {message}", file=sys.stderr, flush=True)


def fetch(source: str, dest: Path) -> None:
    """Copies a file from a path or an http(s) URL."""
    if re.match(r"^https?://", source):
        with urllib.request.urlopen(source, timeout=30) as resp:
            dest.write_bytes(resp.read())
    else:
        shutil.copyfile(source, dest)


@dataclass(frozen=True)
class SigningKey:
    name: str
    keyring: Path  # secret keyring, legacy format


def refuse_if_in_registry(helm: str, oci: str, version: str, *, plain_http: bool) -> None:
    """A registry overwrites a pushed tag silently: refuse to publish a version twice."""
    ref = f"{oci.rstrip('/')}/vineyard"
    argv = [helm, "show", "chart", ref, "--version", version]
    result = subprocess.run(argv + (["--plain-http"] if plain_http else []),
                            capture_output=True, text=True)
    if result.returncode == 0:
        raise ReleaseError(f"vineyard {version} is already in {ref}: bump Chart.yaml's version "
                           "(and CHANGELOG.md)")
    first_line = (result.stderr.strip().splitlines() or [""])[0]
    if not first_line.endswith(": not found"):
        raise ReleaseError(f"cannot ask {ref} which versions it holds: {first_line}")


@contextmanager
def signing_key(name: str | None, keyring: str | None, armored: str | None,
                workdir: Path) -> Iterator[tuple[SigningKey, Path]]:
    """The key helm signs with and a binary public keyring exported from it. GnuPG works in
    a throwaway home under `workdir`; its agent is stopped on the way out."""
    if not name:
        raise ReleaseError("no signing key: set VINEYARD_RELEASE_KEY (the key's user id) "
                           "or pass --key")
    if not (armored or keyring):
        raise ReleaseError("no keyring: set VINEYARD_RELEASE_KEYRING (a secring.gpg from "
                           "`gpg --export-secret-keys`) or VINEYARD_RELEASE_PRIVATE_KEY "
                           "(the armored secret key)")
    home = workdir / "gnupg"
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--batch", "--quiet", "--homedir", str(home)]
    passphrase = os.environ.get("HELM_KEY_PASSPHRASE")
    unlock = ["--pinentry-mode", "loopback", "--passphrase-fd", "0"] if passphrase else []
    try:
        if armored:
            source = workdir / "key.asc"
            source.touch(mode=0o600)
            source.write_text(armored)
            run([*gpg, *unlock, "--import", str(source)],
                input=passphrase + "\n" if passphrase else None)
            # Helm reads only the legacy secret keyring format: export one from GnuPG 2.
            secret = workdir / "secring.gpg"
            secret.touch(mode=0o600)
            secret.write_bytes(_gpg_bytes([*gpg, *unlock, "--export-secret-keys", name],
                                          passphrase))
        else:
            secret = Path(str(keyring)).resolve()
            if not secret.is_file():
                raise ReleaseError(f"keyring {secret} does not exist")
            run([*gpg, "--import", str(secret)])
        public = workdir / PUBLIC_KEY_NAME
        public.write_bytes(_gpg_bytes([*gpg, "--export", name], None))
        if not public.stat().st_size:
            raise ReleaseError(f"key {name!r} is not in the keyring")
        yield SigningKey(name, secret), public
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"],
                       capture_output=True, check=False)


def _gpg_bytes(argv: list[str], passphrase: str | None) -> bytes:
    result = subprocess.run(argv, capture_output=True,
                            input=(passphrase + "\n").encode() if passphrase else None)
    if result.returncode != 0:
        raise ReleaseError(f"`{' '.join(argv)}` failed: {result.stderr.decode().strip()}")
    return result.stdout


# ---- the exporter image ---------------------------------------------------------------------

EXPORTER = "vineyard-exporter"


def expected_exporter_ref(registry_path: str | None, version: str) -> str | None:
    """What Chart.yaml's exporter image must be: REGISTRY/PATH/vineyard-exporter:VERSION, next to
    the chart; None without a registry path (then only the name and tag are checked)."""
    if registry_path is None:
        return None
    return f"{registry_path.removeprefix('oci://').rstrip('/')}/{EXPORTER}:{version}"


def chart_exporter_ref(chart: Path = CHART) -> str | None:
    """The exporter image Chart.yaml's artifacthub.io/images names (as images.py reads it)."""
    from localcluster import images

    return images.chart_images(chart / "Chart.yaml").get("exporter")


def exporter_ref_problem(version: str, registry_path: str | None,
                         chart: Path = CHART) -> str | None:
    """Why Chart.yaml's exporter image (artifacthub.io/images) is not the one this release
    publishes, or None. values.yaml's default agrees with the annotation (a unit test checks)."""
    try:
        ref = chart_exporter_ref(chart)
    except (KeyError, TypeError, AttributeError) as e:  # no annotation, or not a list of images
        return f"Chart.yaml's artifacthub.io/images cannot be read: {e!r}"
    expected = expected_exporter_ref(registry_path, version)
    fix = ("the release publishes the exporter image next to the chart, tagged with the "
           "chart's version: fix artifacthub.io/images and values.yaml's metrics.exporter.image")
    if ref is None:
        return "Chart.yaml's artifacthub.io/images has no `exporter` image"
    if expected is not None and ref != expected:
        return f"Chart.yaml's exporter image is {ref}, this release would publish {expected}: {fix}"
    name, _, tag = ref.rpartition(":")
    if name.rpartition("/")[2] != EXPORTER or tag != version:
        return f"Chart.yaml's exporter image is {ref}, not .../{EXPORTER}:{version}: {fix}"
    return None


@dataclass(frozen=True)
class Image:
    ref: str            # where it was published (or would be): REGISTRY/PATH/NAME:TAG
    archive: Path       # the OCI archive, in dist/images
    manifest: Path      # its manifest, beside it: sha256 of the file = the image's digest
    digest: str         # sha256:...


def build_exporter_image(version: str, out: Path) -> tuple[Path, Path, str]:
    """tools/exporter built at `version` (hack/build-tools.sh, which stamps the chart's version
    into main.version) and its OCI archive (localcluster/images.py, reproducible: the same
    binary gives the same digest), copied into `out`. Returns (archive, manifest, digest)."""
    import json
    import tarfile

    from localcluster import images

    log(f"building {EXPORTER} {version} (hack/build-tools.sh exporter) and its image")
    run(["bash", str(REPO / "hack" / "build-tools.sh"), "exporter"])
    says = run([str(images.EXPORTER_BIN), "--version"]).split()
    if says[:2] != [EXPORTER, version]:
        raise ReleaseError(f"{images.EXPORTER_BIN} --version says {' '.join(says)!r}, "
                           f"not {EXPORTER} {version}")
    try:
        built = images.Images().build((images.EXPORTER,))
    except images.ImageError as e:
        raise ReleaseError(f"cannot build the {EXPORTER} image: {e}") from None
    out.mkdir(parents=True, exist_ok=True)
    archive = Path(shutil.copyfile(built.archives[images.EXPORTER],
                                   out / f"{EXPORTER}-{version}.oci.tar"))
    with tarfile.open(archive) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        (desc,) = index["manifests"]
        blob = tar.extractfile(f"blobs/sha256/{desc['digest'].removeprefix('sha256:')}")
        manifest_bytes = blob.read()  # type: ignore[union-attr]
    digest = "sha256:" + hashlib.sha256(manifest_bytes).hexdigest()
    if digest != desc["digest"]:
        raise ReleaseError(f"{archive.name}: its manifest's sha256 is {digest}, "
                           f"index.json says {desc['digest']}")
    manifest = out / f"{EXPORTER}-{version}.manifest.json"
    manifest.write_bytes(manifest_bytes)
    return archive, manifest, digest


def registry_digest(crane: str, ref: str, *, plain_http: bool) -> str | None:
    """The digest of the manifest `ref` (a tag) names in its registry, None if it has none."""
    argv = [crane, "digest", ref, *(["--insecure"] if plain_http else [])]
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode == 0:
        return result.stdout.strip()
    if re.search(r"MANIFEST_UNKNOWN|NAME_UNKNOWN", result.stderr):
        return None
    raise ReleaseError(f"cannot ask the registry for {ref}: `{' '.join(argv)}` failed:\n"
                       f"{result.stderr.strip()}")


def refuse_other_image(crane: str, ref: str, digest: str, *, plain_http: bool) -> bool:
    """A registry moves a pushed tag silently: refuse when `ref` already names another image.
    True when it already names this very one (nothing to push: a re-run after a failed push of
    the chart; the archive is reproducible, so a rebuild of the same sources matches)."""
    there = registry_digest(crane, ref, plain_http=plain_http)
    if there is not None and there != digest:
        raise ReleaseError(f"{ref} is already in the registry as {there}, not this release's "
                           f"{digest}: bump Chart.yaml's version (and CHANGELOG.md)")
    return there == digest


def push_image(crane: str, archive: Path, ref: str, digest: str, *, plain_http: bool) -> None:
    """Pushes an OCI archive as `ref` and checks the registry then serves `digest` under it.

    With go-containerregistry's crane (pinned in tools/versions.env, built by
    hack/build-tools.sh): localcluster.images.push speaks the registry API for the loopback
    mirror only (plain HTTP, no auth), and a real registry (ghcr.io) wants bearer-token
    auth, credentials from the docker config, HTTPS and resumable uploads, which crane does
    as maintained code. It pushes the layout's manifest bytes unchanged, so the digest is the
    one recorded in SHA256SUMS."""
    import tarfile

    with tempfile.TemporaryDirectory(prefix="vineyard-image-") as tmp:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        run([crane, "push", tmp, ref, *(["--insecure"] if plain_http else [])])
    there = registry_digest(crane, ref, plain_http=plain_http)
    if there != digest:
        raise ReleaseError(f"pushed {ref}, but the registry serves {there}, not {digest}")


# ---- the release ----------------------------------------------------------------------------


@dataclass
class Release:
    version: str
    chart: Path
    provenance: Path
    index: Path
    public_key: Path
    wheel: Path  # the pure one
    sdist: Path
    wheels: list[helm_wheels.WheelReport]  # the pure one first, then one per platform
    images: list[Image]  # the exporter's, unless --images none
    oci_digest: str | None = None


def select_platforms(spec: str) -> list[helm_wheels.Platform]:
    """--platforms: all, host (this machine's, if it has one), none, or GOOS/GOARCH,..."""
    if spec == "all":
        return list(helm_wheels.PLATFORMS)
    if spec == "none":
        return []
    if spec == "host":
        here = helm_wheels.host_platform()
        return [here] if here else []
    try:
        return [helm_wheels.platform_named(name.strip()) for name in spec.split(",")]
    except helm_wheels.BuildError as e:
        raise ReleaseError(str(e)) from None


def build_platform_wheels(platforms: Sequence[helm_wheels.Platform], *, out: Path,
                          work: Path, isolation: bool) -> list[Path]:
    """One wheel per platform, carrying that platform's helm (hatch_build.py stages it in)."""
    if not platforms:
        return []
    version = helm_wheels.pinned_version()
    licenses = helm_wheels.helm_licenses(version)
    wheels = []
    for target in platforms:
        binary = helm_wheels.helm_binary(target, version, log=log)
        staged = helm_wheels.stage(target, binary, version, licenses,
                                   work / f"{target.goos}-{target.goarch}")
        log(f"building the {target.name} wheel")
        built = work / f"{target.goos}-{target.goarch}-wheel"
        run(build_command(built, isolation, "--wheel"),
            env={**os.environ, helm_wheels.BUNDLE_ENV: str(staged)})
        (wheel,) = built.glob("*.whl")
        wheels.append(Path(shutil.move(wheel, out / wheel.name)))
    return wheels


def build_command(outdir: Path, isolation: bool, *what: str) -> list[str]:
    """`python -m build` into `outdir`; without isolation, with this environment's hatchling."""
    return [sys.executable, "-m", "build", *what, *([] if isolation else ["--no-isolation"]),
            "--outdir", str(outdir), str(REPO)]


def check_wheels(wheels: Sequence[Path], platforms: Sequence[helm_wheels.Platform],
                 version: str) -> list[helm_wheels.WheelReport]:
    """Each wheel's version and chart, and hack/helm_wheels.py's checks of its tags, size and
    helm; ReleaseError listing every problem found."""
    helm_version = helm_wheels.pinned_version() if platforms else ""
    reports, problems = [], []
    for wheel, target in zip(wheels, [None, *platforms], strict=True):
        built, carried = wheel_version(wheel)
        report = helm_wheels.check_wheel(wheel, target, helm_version)
        if not (same_version(built, version) and carried == version):
            report.problems.append(f"version {built} carrying chart {carried}, not {version}")
        problems += [f"{wheel.name}: {problem}" for problem in report.problems]
        reports.append(report)
    if problems:
        raise ReleaseError("wheel checks failed:\n  " + "\n  ".join(problems))
    return reports


def cut(*, dist: Path, helm: str, key: str | None, keyring: str | None,
        armored_key: str | None, previous_index: str | None, repo_url: str | None,
        oci: str | None, plain_http: bool, isolation: bool, allow_dirty: bool,
        platforms: Sequence[helm_wheels.Platform] = (), images: bool = True,
        oci_name: str | None = None, crane: str | None = None) -> Release:
    problems = version_problems()
    if problems:
        raise ReleaseError("versions disagree:\n  " + "\n  ".join(problems))
    version = str(chart_metadata()["version"])
    problem = exporter_ref_problem(version, oci_name or oci)
    if problem:
        raise ReleaseError(problem)
    if oci and not images and not oci_name:
        raise ReleaseError("--images none with --oci would push a chart whose exporter image is "
                           "not published: only for a trial against a stand-in (--oci-name)")
    crane = crane or default_tool("crane")
    if not allow_dirty:
        dirty = uncommitted(RELEASED_PATHS)
        if dirty:
            raise ReleaseError("uncommitted changes would be released (commit them, or pass "
                               "--allow-dirty for a trial run):\n  " + "\n  ".join(dirty))
    repo_dir, python_dir, images_dir = dist / "repo", dist / "python", dist / "images"
    shutil.rmtree(images_dir, ignore_errors=True)
    for old in (repo_dir, python_dir):
        shutil.rmtree(old, ignore_errors=True)
        old.mkdir(parents=True)
    (dist / "SHA256SUMS").unlink(missing_ok=True)

    with tempfile.TemporaryDirectory(prefix="vineyard-release-") as tmp:
        work = Path(tmp)
        previous = None
        if previous_index:
            previous = work / "previous-index.yaml"
            fetch(previous_index, previous)
            listed = (yaml.safe_load(previous.read_text()) or {}).get("entries", {})
            if any(str(e.get("version")) == version for e in listed.get("vineyard", [])):
                raise ReleaseError(f"vineyard {version} is already in {previous_index}: "
                                   "bump Chart.yaml's version (and CHANGELOG.md)")

        if oci:
            refuse_if_in_registry(helm, oci, version, plain_http=plain_http)
        built: list[Image] = []
        exporter_there = False
        if images:
            archive, manifest, image_digest = build_exporter_image(version, images_dir)
            # Where it goes (with --oci), else the name the chart gives it.
            ref = str(expected_exporter_ref(oci, version) or chart_exporter_ref())
            if oci:
                exporter_there = refuse_other_image(crane, ref, image_digest,
                                                    plain_http=plain_http)
            built.append(Image(ref, archive, manifest, image_digest))

        with signing_key(key, keyring, armored_key, work) as (signer, public):
            log(f"packaging and signing vineyard {version} with {signer.name!r}")
            run([helm, "package", str(CHART), "--destination", str(repo_dir), "--sign",
                 "--key", signer.name, "--keyring", str(signer.keyring)])
            shutil.copyfile(public, repo_dir / PUBLIC_KEY_NAME)
        package = repo_dir / f"vineyard-{version}.tgz"
        provenance = package.with_name(package.name + ".prov")
        run([helm, "verify", str(package), "--keyring", str(repo_dir / PUBLIC_KEY_NAME)])

        index_cmd = [helm, "repo", "index", str(repo_dir)]
        if repo_url:
            index_cmd += ["--url", repo_url.rstrip("/")]
        if previous:
            index_cmd += ["--merge", str(previous)]
        run(index_cmd)
        log(f"index.yaml written (merged with {previous_index})" if previous_index
            else "index.yaml written (no previous index: a first release)")

    log("building the sdist, and the pure wheel from it")
    # No helm in this one, whatever the caller's environment says.
    pure_env = {k: v for k, v in os.environ.items() if k != helm_wheels.BUNDLE_ENV}
    run(build_command(python_dir, isolation), env=pure_env)
    (wheel,) = python_dir.glob("*.whl")
    (sdist,) = python_dir.glob("*.tar.gz")
    with tempfile.TemporaryDirectory(prefix="vineyard-wheels-") as tmp:
        try:
            wheels = [wheel, *build_platform_wheels(platforms, out=python_dir, work=Path(tmp),
                                                    isolation=isolation)]
        except helm_wheels.BuildError as e:
            raise ReleaseError(str(e)) from None
    reports = check_wheels(wheels, platforms, version)

    release = Release(version, package, provenance, repo_dir / "index.yaml",
                      repo_dir / PUBLIC_KEY_NAME, wheel, sdist, reports, built)
    if oci:
        # The image first: the chart must never point at an image that is not there yet.
        for image in built:
            if exporter_there:
                log(f"{image.ref} is already {image.digest}: not pushed again")
            else:
                log(f"pushing {image.ref}")
                push_image(crane, image.archive, image.ref, image.digest, plain_http=plain_http)
        log(f"pushing to {oci}")
        push = [helm, "push", str(package), oci] + (["--plain-http"] if plain_http else [])
        out = run(push)
        digest = re.search(r"(?m)^Digest: *(\S+)", out)
        release.oci_digest = digest[1] if digest else None

    sums = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(dist).as_posix()}"
            for p in (package, provenance, *wheels, sdist,
                      *(f for i in built for f in (i.archive, i.manifest)))]
    (dist / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    return release


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hack/release.py", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", choices=["release", "check"], default="release")
    parser.add_argument("--dist", default=str(REPO / "dist"), help="output folder")
    parser.add_argument("--helm", default=default_helm(), help="helm binary (default: %(default)s)")
    parser.add_argument("--key", default=os.environ.get("VINEYARD_RELEASE_KEY"),
                        help="signing key user id (env VINEYARD_RELEASE_KEY)")
    parser.add_argument("--keyring", default=os.environ.get("VINEYARD_RELEASE_KEYRING"),
                        help="legacy secret keyring (env VINEYARD_RELEASE_KEYRING)")
    parser.add_argument("--previous-index",
                        help="the published index.yaml (URL or file) to merge with")
    parser.add_argument("--repo-url", help="absolute URL the HTTP repository is published at "
                                           "(default: package URLs relative to index.yaml)")
    parser.add_argument("--oci", help="push to this registry path, e.g. oci://ghcr.io/ORG: the "
                                      "chart to .../vineyard, the exporter image to "
                                      ".../vineyard-exporter")
    parser.add_argument("--oci-name", metavar="REGISTRY/PATH",
                        help="the public name of --oci's registry path, which Chart.yaml's "
                             "image references must use (default: --oci itself); for a trial "
                             "against a stand-in registry")
    parser.add_argument("--images", choices=["all", "none"], default="all",
                        help="build (and with --oci push) the images the chart points at that "
                             "this project builds, the metrics exporter (default), or none "
                             "(trial runs: Chart.yaml's reference is still checked)")
    parser.add_argument("--crane", default=default_tool("crane"),
                        help="crane binary, pushes the images (default: %(default)s)")
    parser.add_argument("--plain-http", action="store_true",
                        help="talk plain HTTP to the registry (a loopback test registry)")
    parser.add_argument("--allow-dirty", action="store_true",
                        help="release even with uncommitted changes (trial runs, tests)")
    parser.add_argument("--no-isolation", action="store_true",
                        help="build the wheel with this environment's hatchling (no download)")
    parser.add_argument("--platforms", default="all",
                        help="the wheels that carry helm: all (default: "
                             + ", ".join(p.name for p in helm_wheels.PLATFORMS)
                             + "), host (this machine's), none, or a comma-separated list")
    args = parser.parse_args(argv)

    if args.command == "check":
        problems = version_problems()
        for problem in problems:
            print(f"drift: {problem}", file=sys.stderr)
        if not problems:
            print(f"vineyard {chart_metadata()['version']}: chart, annotations and changelog agree")
        return 1 if problems else 0
    start = time.monotonic()
    try:
        release = cut(dist=Path(args.dist).resolve(), helm=args.helm, key=args.key,
                      keyring=args.keyring,
                      armored_key=os.environ.get("VINEYARD_RELEASE_PRIVATE_KEY"),
                      previous_index=args.previous_index, repo_url=args.repo_url,
                      oci=args.oci, plain_http=args.plain_http,
                      isolation=not args.no_isolation, allow_dirty=args.allow_dirty,
                      platforms=select_platforms(args.platforms),
                      images=args.images == "all", oci_name=args.oci_name, crane=args.crane)
    except ReleaseError as e:
        print(f"release failed: {e}", file=sys.stderr)
        return 1
    dist = Path(args.dist).resolve()
    print(f"vineyard {release.version} released in {time.monotonic() - start:.1f}s")
    for path in (release.chart, release.provenance, release.index, release.public_key,
                 release.sdist):
        print(f"  {path.relative_to(dist)}")
    for report in release.wheels:
        helm = (f"helm {report.helm_version} ({report.binary_format} {report.machine})"
                if report.helm_version else "no helm")
        print(f"  {report.path.relative_to(dist)}  {report.size / 2**20:.1f} MiB  {helm}")
        if report.helm_says:
            print(f"    runs here: {report.helm_says}")
    for image in release.images:
        print(f"  {image.archive.relative_to(dist)}  {image.ref}@{image.digest}"
              + ("" if args.oci else " (not pushed: no --oci)"))
    if args.oci:
        print(f"  {args.oci.rstrip('/')}/vineyard:{release.version} {release.oci_digest or ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
