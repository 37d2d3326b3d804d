"""The wheels that carry helm: what hack/release.py checks of each (tags, size, the binary's
format, architecture, build and licence), the hatch hook that puts a staged helm into a wheel,
and the header parsing that checks binaries for other platforms than this one.

`make test` builds only this machine's platform wheel (published: --platforms host), from the
helm hack/build-tools.sh already built; the other platforms' binaries are checked here on
synthesized headers, and for real by `hack/release.py` (all platforms) before a release.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from hack import helm_wheels, release
from tests.release.release_kit import Published, python_dist
from tests.support.paths import REPO

HOST = helm_wheels.host_platform()
VERSION = helm_wheels.pinned_version()


def test_release_builds_this_machines_wheel_from_the_helm_build_tools_built(
        published: Published) -> None:
    """No second helm build in make test: .cache/bin/helm is static, stripped and trimmed as
    the release asks, so it is the binary the wheel carries."""
    assert HOST is not None
    assert f"{HOST.name}: reusing .cache/bin/helm" in published.stdout
    _, (wheel,) = python_dist(published.dist)
    with zipfile.ZipFile(wheel) as archive:
        carried = archive.read(f"vineyard_helm/_helm/{HOST.binary}")
    assert carried == (REPO / ".cache" / "bin" / "helm").read_bytes()


def test_platform_wheel_passes_the_release_checks(published: Published) -> None:
    _, (wheel,) = python_dist(published.dist)
    report = helm_wheels.check_wheel(wheel, HOST, VERSION)
    assert report.problems == []
    assert report.tag == HOST.wheel_tag
    assert (report.binary_format, report.machine) == (HOST.binary_format, HOST.machine)
    assert f'Version:"{VERSION}"' in (report.helm_says or "")
    # About a third of the binary: 67 MB of helm deflate to 20 MB.
    assert report.size < 30 * 2**20, report.size
    assert f"{wheel.name.split('-', 2)[2].removesuffix('.whl')}" in published.stdout
    assert f"runs here: version.BuildInfo{{Version:\"{VERSION}\"" in published.stdout


def test_platform_wheel_records_its_helm(published: Published) -> None:
    _, (wheel,) = python_dist(published.dist)
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        record = json.loads(archive.read("vineyard_helm/_helm/bundle.json"))
        binary = archive.read(f"vineyard_helm/_helm/{HOST.binary}")
        metadata_copy = next(n for n in names if n.endswith("extra_metadata/bundled-helm.json"))
        assert json.loads(archive.read(metadata_copy)) == record
        licence = archive.read("vineyard_helm/_helm/LICENSE").decode()
    assert record["version"] == VERSION
    assert record["sha256"] == hashlib.sha256(binary).hexdigest()
    assert (record["goos"], record["goarch"]) == (HOST.goos, HOST.goarch)
    assert record["build"]["CGO_ENABLED"] == "0"
    assert record["build"]["-trimpath"] == "true"
    assert record["licenses"] == ["LICENSE"]  # helm has no NOTICE
    assert "Apache License" in licence


def test_the_pure_wheel_carries_no_helm(published: Published) -> None:
    pure, _ = python_dist(published.dist)
    assert helm_wheels.check_wheel(pure, None, VERSION).problems == []


def test_a_wheel_is_refused_for_another_platform(published: Published) -> None:
    _, (wheel,) = python_dist(published.dist)
    other = next(p for p in helm_wheels.PLATFORMS if p != HOST)
    problems = helm_wheels.check_wheel(wheel, other, VERSION).problems
    assert any(p.startswith(f"tagged {HOST.wheel_tag}, not {other.wheel_tag}") for p in problems)


@pytest.mark.parametrize(
    ("spec", "names"),
    [("all", [p.name for p in helm_wheels.PLATFORMS]), ("none", []),
     ("host", [HOST.name] if HOST else []),
     ("darwin/arm64,windows/amd64", ["darwin/arm64", "windows/amd64"])],
)
def test_platforms_option(spec: str, names: list[str]) -> None:
    assert [p.name for p in release.select_platforms(spec)] == names


def test_an_unknown_platform_is_refused() -> None:
    with pytest.raises(release.ReleaseError, match="no platform 'plan9/amd64'"):
        release.select_platforms("plan9/amd64")


# ---- the hatch hook ----------------------------------------------------------------------------


def build_wheel(tmp_path: Path, bundle: Path | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != helm_wheels.BUNDLE_ENV}
    if bundle is not None:
        env[helm_wheels.BUNDLE_ENV] = str(bundle)
    return subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "out"), str(REPO)],
        capture_output=True, text=True, env=env, timeout=300)


def fake_bundle(tmp_path: Path, *, sha256: str | None = None) -> Path:
    """A staged bundle as helm_wheels.stage writes one, its binary a shell script."""
    target = helm_wheels.platform_named("darwin/arm64")
    binary = tmp_path / "stage-src" / "helm"
    binary.parent.mkdir()
    binary.write_text("#!/bin/sh\necho fake\n")
    licence = tmp_path / "stage-src" / "LICENSE"
    licence.write_text("Apache License\n")
    staged = helm_wheels.stage(target, binary, VERSION, [licence], tmp_path / "stage")
    if sha256:
        record = json.loads((staged / "bundle.json").read_text())
        (staged / "bundle.json").write_text(json.dumps({**record, "sha256": sha256}))
    return staged


def test_hook_puts_a_staged_helm_into_a_wheel_tagged_for_its_platform(tmp_path: Path) -> None:
    built = build_wheel(tmp_path, fake_bundle(tmp_path))
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "out").glob("*.whl")
    assert wheel.name.endswith("-py3-none-macosx_11_0_arm64.whl")
    with zipfile.ZipFile(wheel) as archive:
        helm = archive.getinfo("vineyard_helm/_helm/helm")
        assert (helm.external_attr >> 16) & 0o777 == 0o755
        assert archive.read(helm) == b"#!/bin/sh\necho fake\n"
        assert "vineyard_helm/_helm/LICENSE" in archive.namelist()
        wheel_file = archive.read(next(n for n in archive.namelist() if n.endswith("/WHEEL")))
    assert b"Root-Is-Purelib: false" in wheel_file
    assert b"Tag: py3-none-macosx_11_0_arm64" in wheel_file


def test_hook_refuses_a_binary_that_is_not_the_recorded_one(tmp_path: Path) -> None:
    built = build_wheel(tmp_path, fake_bundle(tmp_path, sha256="0" * 64))
    assert built.returncode != 0
    assert "its bundle.json records " + "0" * 64 in built.stderr + built.stdout


# ---- binaries of every platform, from their headers -------------------------------------------


def go_build_info(settings: dict[str, str], module: str = helm_wheels.MODULE,
                  version: str = VERSION) -> bytes:
    """The build info section as Go 1.18+ writes it (inline strings, flag 2)."""
    lines = [f"path\t{module}/cmd/helm", f"mod\t{module}\t{version}\th1:x="]
    lines += [f"build\t{key}={value}" for key, value in settings.items()]
    modinfo = (bytes.fromhex("3077af0c9274080241e1c107e6d618e6") + "\n".join(lines).encode()
               + b"\n" + bytes.fromhex("f932433186182072008242104116d8f2"))
    go = b"go1.26.8"
    return (b"\xff Go buildinf:" + bytes([8, 2]) + bytes(16) + bytes([len(go)]) + go
            + bytes([len(modinfo) & 0x7F | 0x80, len(modinfo) >> 7]) + modinfo)


def elf(machine: int, *, interpreter: bool, symbols: bool) -> bytes:
    phnum, shnum = 2, 2
    header = struct.pack("<16sHHIQQQIHHHHHH", b"\x7fELF\x02\x01\x01" + bytes(9), 2, machine,
                         1, 0, 64, 64 + 56 * phnum, 0, 64, 56, phnum, 64, shnum, 0)
    programs = struct.pack("<I52x", 3 if interpreter else 1) + struct.pack("<I52x", 1)
    sections = struct.pack("<II56x", 0, 1) + struct.pack("<II56x", 0, 2 if symbols else 1)
    return header + programs + sections


def macho(cputype: int, *, dwarf: bool, signed: bool = True) -> bytes:
    segments = [b"__TEXT", b"__DWARF" if dwarf else b"__DATA"]
    commands = b"".join(struct.pack("<II16s48x", 0x19, 72, name) for name in segments)
    if signed:
        commands += struct.pack("<IIII", 0x1D, 16, 0, 0)  # LC_CODE_SIGNATURE
    count = len(segments) + signed
    return struct.pack("<IIIIIIII", 0xFEEDFACF, cputype, 0, 2, count, len(commands),
                       0, 0) + commands


def pe(machine: int, *, symbols: int) -> bytes:
    return (b"MZ" + bytes(0x3A) + struct.pack("<I", 0x40) + b"PE\0\0"
            + struct.pack("<HHIII", machine, 0, 0, 0, symbols))


def released_settings(target: helm_wheels.Platform) -> dict[str, str]:
    return {"-trimpath": "true", "CGO_ENABLED": "0", "GOARCH": target.goarch,
            "GOOS": target.goos}


HEADERS = {
    "linux/amd64": elf(0x3E, interpreter=False, symbols=False),
    "linux/arm64": elf(0xB7, interpreter=False, symbols=False),
    "darwin/amd64": macho(0x01000007, dwarf=False),
    "darwin/arm64": macho(0x0100000C, dwarf=False),
    "windows/amd64": pe(0x8664, symbols=0),
}


@pytest.mark.parametrize("target", helm_wheels.PLATFORMS, ids=lambda p: p.name)
def test_a_release_build_for_each_platform_passes(target: helm_wheels.Platform) -> None:
    binary = HEADERS[target.name] + bytes(64) + go_build_info(released_settings(target))
    facts = helm_wheels.inspect_binary(binary)
    assert (facts.binary_format, facts.machine) == (target.binary_format, target.machine)
    assert facts.module == (helm_wheels.MODULE, VERSION)
    assert facts.go == "go1.26.8"
    assert helm_wheels.binary_problems(binary, target, VERSION) == []


@pytest.mark.parametrize(
    ("target", "header", "settings", "problem"),
    [
        ("linux/arm64", HEADERS["linux/amd64"], None, "a ELF x86_64 binary, not ELF aarch64"),
        ("darwin/arm64", HEADERS["darwin/amd64"], None,
         "a Mach-O x86_64 binary, not Mach-O arm64"),
        ("windows/amd64", HEADERS["darwin/amd64"], None, "a Mach-O x86_64 binary, not PE"),
        ("linux/amd64", elf(0x3E, interpreter=True, symbols=False), {"CGO_ENABLED": "1"},
         "built with CGO_ENABLED=1, not 0"),
        ("linux/amd64", elf(0x3E, interpreter=True, symbols=False), None,
         "dynamically linked (has a program interpreter)"),
        ("linux/amd64", elf(0x3E, interpreter=False, symbols=True), None,
         "not stripped (-s -w)"),
        ("darwin/arm64", macho(0x0100000C, dwarf=True), None, "not stripped (-s -w)"),
        ("darwin/arm64", macho(0x0100000C, dwarf=False, signed=False), None,
         "no code signature"),
        ("windows/amd64", pe(0x8664, symbols=12), None, "not stripped (-s -w)"),
        ("linux/amd64", HEADERS["linux/amd64"], {"-trimpath": "false"},
         "built with -trimpath=false, not true"),
    ],
)
def test_a_binary_that_is_not_the_release_build_is_refused(
        target: str, header: bytes, settings: dict[str, str] | None, problem: str) -> None:
    platform = helm_wheels.platform_named(target)
    binary = header + go_build_info({**released_settings(platform), **(settings or {})})
    problems = helm_wheels.binary_problems(binary, platform, VERSION)
    assert any(p.startswith(problem) for p in problems), problems


def test_a_binary_of_another_helm_version_is_refused() -> None:
    target = helm_wheels.platform_named("linux/amd64")
    binary = HEADERS[target.name] + go_build_info(released_settings(target), version="v4.0.0")
    assert helm_wheels.binary_problems(binary, target, VERSION) == [
        f"built from {helm_wheels.MODULE} v4.0.0, not {helm_wheels.MODULE} {VERSION}"
    ]
