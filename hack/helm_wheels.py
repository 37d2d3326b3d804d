"""Platform wheels of vineyard-helm that carry helm (hack/release.py builds and checks them).

helm is built from its Go module at tools/versions.env's HELM_VERSION the way helm's own
releases are (CGO_ENABLED=0, -trimpath, -ldflags "-s -w -X ...version=..."), once per
platform, into .cache/wheel-helm/<goos>-<goarch>/. For this machine's platform the helm
hack/build-tools.sh built (.cache/bin/helm, built with the same flags) is reused when it checks
out as that build: no second 90 s build in `make test`.

Each binary is checked from its bytes, so a cross-compiled one is checked as well as this
machine's: the Go build info (module version, -trimpath, CGO_ENABLED, GOOS, GOARCH), the
executable format and architecture from its headers (ELF, Mach-O, PE), stripped, and for ELF
static (no program interpreter: it runs on glibc and musl alike, hence one wheel tagged both
manylinux and musllinux per architecture). This machine's also runs: `helm version` must say
the pinned version, clean (the -X flags, which the build info of a -trimpath build omits).

A platform's binary, helm's LICENSE and a bundle.json record go into a staging directory that
hatch_build.py copies into the wheel (vineyard_helm/_helm/).
"""
from __future__ import annotations

import hashlib
import json
import os
import platform as host
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "wheel-helm"
BUILT_HELM = REPO / ".cache" / "bin" / "helm"
VERSIONS = REPO / "tools" / "versions.env"
MODULE = "helm.sh/helm/v4"
PACKAGE = f"{MODULE}/cmd/helm"
BUNDLE_ENV = "VINEYARD_HELM_BUNDLE"  # read by hatch_build.py
BUNDLE_DIR = "vineyard_helm/_helm"
#: PyPI refuses larger files unless the project is granted more.
MAX_WHEEL_BYTES = 100 * 1024 * 1024


class BuildError(RuntimeError):
    """Building or staging helm failed; the message says which step."""


@dataclass(frozen=True)
class Platform:
    goos: str
    goarch: str
    #: The wheel's platform tag (a compressed tag set where one binary serves several).
    wheel_platform: str
    #: What the binary's headers must say.
    binary_format: str  # ELF, Mach-O, PE
    machine: str

    @property
    def name(self) -> str:
        return f"{self.goos}/{self.goarch}"

    @property
    def binary(self) -> str:
        return "helm.exe" if self.goos == "windows" else "helm"

    @property
    def wheel_tag(self) -> str:
        return f"py3-none-{self.wheel_platform}"


# Linux: Go's static binary needs no libc, so one wheel per architecture is tagged for glibc
# (manylinux_2_17 with its manylinux2014 alias, the oldest tag pip knows for aarch64; Go 1.24+
# needs kernel 3.2, which every manylinux2014 system has) and musl (musllinux_1_1, the first
# musllinux tag): pip takes it on Debian and on Alpine alike, and there is one file to build,
# check and upload instead of two identical ones. macOS: Go 1.23+ needs macOS 11.
PLATFORMS = (
    Platform("linux", "amd64",
             "manylinux_2_17_x86_64.manylinux2014_x86_64.musllinux_1_1_x86_64", "ELF", "x86_64"),
    Platform("linux", "arm64",
             "manylinux_2_17_aarch64.manylinux2014_aarch64.musllinux_1_1_aarch64", "ELF",
             "aarch64"),
    Platform("darwin", "amd64", "macosx_11_0_x86_64", "Mach-O", "x86_64"),
    Platform("darwin", "arm64", "macosx_11_0_arm64", "Mach-O", "arm64"),
    Platform("windows", "amd64", "win_amd64", "PE", "x86_64"),
)
_HOST_NAMES = {("linux", "x86_64"): "linux/amd64", ("linux", "aarch64"): "linux/arm64",
               ("darwin", "x86_64"): "darwin/amd64", ("darwin", "arm64"): "darwin/arm64",
               ("win32", "amd64"): "windows/amd64"}


def platform_named(name: str) -> Platform:
    for candidate in PLATFORMS:
        if candidate.name == name:
            return candidate
    raise BuildError(f"no platform {name!r}; one of {', '.join(p.name for p in PLATFORMS)}")


def host_platform() -> Platform | None:
    """The platform of this machine, if a wheel is built for it."""
    name = _HOST_NAMES.get((sys.platform, host.machine().lower()))
    return platform_named(name) if name else None


def pinned_version() -> str:
    """HELM_VERSION of tools/versions.env: the helm every suite runs and the wheels carry."""
    match = re.search(r"(?m)^HELM_VERSION=(\S+)", VERSIONS.read_text())
    if not match:
        raise BuildError(f"{VERSIONS} pins no HELM_VERSION")
    return match[1]


def ldflags(version: str) -> str:
    """As hack/build-tools.sh passes them (helm's own release adds its git commit)."""
    return (f"-s -w -X {MODULE}/internal/version.version={version}"
            f" -X {MODULE}/internal/version.gitTreeState=clean")


def _go(*args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(["go", *args], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise BuildError(f"`go {' '.join(args)}` failed:\n{result.stderr.strip()}")
    return result.stdout


# ---- helm binaries --------------------------------------------------------------------------


def helm_binary(target: Platform, version: str, log=print) -> Path:
    """helm `version` for `target`: this machine's .cache/bin/helm when it checks out as that
    build, else a cached build in .cache/wheel-helm/, else a new one (about 90 s of 2 cores)."""
    if target == host_platform() and BUILT_HELM.exists():
        problems = binary_problems(BUILT_HELM.read_bytes(), target, version)
        if not problems:
            problems = run_problems(BUILT_HELM, version)
        if not problems:
            log(f"{target.name}: reusing {BUILT_HELM.relative_to(REPO)}")
            return BUILT_HELM
        log(f"{target.name}: not reusing {BUILT_HELM}: " + "; ".join(problems))
    out = CACHE / f"{target.goos}-{target.goarch}"
    binary, stamp = out / target.binary, out / "build.json"
    wanted = {"version": version, "go": _go("env", "GOVERSION").strip(),
              "ldflags": ldflags(version), "flags": "CGO_ENABLED=0 -trimpath"}
    if (binary.exists() and stamp.exists() and json.loads(stamp.read_text()) == wanted
            and not binary_problems(binary.read_bytes(), target, version)):
        log(f"{target.name}: reusing {binary.relative_to(REPO)}")
        return binary
    log(f"{target.name}: building helm {version}")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="helm-gopath-") as gopath:
        # `go install PKG@VERSION` builds helm against its own go.mod, as build-tools.sh does.
        # A cross-compiled binary goes to $GOPATH/bin/GOOS_GOARCH/ (GOBIN refuses them), so
        # GOPATH is a temporary one, and the module cache stays the usual.
        env = {**os.environ, "GOPATH": gopath, "GOMODCACHE": _go("env", "GOMODCACHE").strip(),
               "GOOS": target.goos, "GOARCH": target.goarch, "CGO_ENABLED": "0",
               "GOFLAGS": f"{os.environ.get('GOFLAGS', '')} -trimpath -buildvcs=false".strip()}
        env.pop("GOBIN", None)
        _go("install", "-ldflags", ldflags(version), f"{PACKAGE}@{version}", env=env)
        built = Path(gopath, "bin", target.binary)
        if not built.exists():
            built = Path(gopath, "bin", f"{target.goos}_{target.goarch}", target.binary)
        shutil.move(built, binary)
        # The module cache's files are read-only: let the temporary GOPATH be removed.
        subprocess.run(["chmod", "-R", "u+w", gopath], check=False)
    problems = binary_problems(binary.read_bytes(), target, version)
    if problems:
        raise BuildError(f"the helm built for {target.name} is not what was asked for: "
                         + "; ".join(problems))
    stamp.write_text(json.dumps(wanted))
    return binary


def run_problems(binary: Path, version: str) -> list[str]:
    """What is wrong with running `binary version` here (it must say `version`, clean)."""
    result = subprocess.run([str(binary), "version", "--template",
                             "{{ .Version }} {{ .GitTreeState }}"], capture_output=True, text=True)
    said = result.stdout.strip()
    if result.returncode != 0 or said != f"{version} clean":
        return [f"`{binary.name} version` says {said or result.stderr.strip()!r}, "
                f"not '{version} clean'"]
    return []


# ---- what a binary is, from its bytes --------------------------------------------------------


@dataclass
class BinaryFacts:
    binary_format: str = "unknown"
    machine: str = "unknown"
    static: bool | None = None     # ELF only: no program interpreter, no dynamic section
    stripped: bool | None = None   # no symbol table (ELF, PE) or no DWARF (Mach-O)
    signed: bool | None = None     # Mach-O only: has a code signature (LC_CODE_SIGNATURE)
    go: str = ""                   # the Go version of the build info
    settings: dict[str, str] = field(default_factory=dict)   # `build` lines of the build info
    module: tuple[str, str] = ("", "")                      # main module path and version


def inspect_binary(data: bytes) -> BinaryFacts:
    facts = BinaryFacts()
    if data[:4] == b"\x7fELF":
        _elf(data, facts)
    elif data[:4] == b"\xcf\xfa\xed\xfe":   # MH_MAGIC_64, little-endian
        _macho(data, facts)
    elif data[:2] == b"MZ":
        _pe(data, facts)
    _go_buildinfo(data, facts)
    return facts


def _elf(data: bytes, facts: BinaryFacts) -> None:
    facts.binary_format = "ELF"
    if data[4] != 2 or data[5] != 1:
        facts.machine = "not 64-bit little-endian"
        return
    machine, = struct.unpack_from("<H", data, 18)
    facts.machine = {0x3E: "x86_64", 0xB7: "aarch64"}.get(machine, hex(machine))
    phoff, shoff = struct.unpack_from("<QQ", data, 32)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", data, 54)
    kinds = {struct.unpack_from("<I", data, phoff + i * phentsize)[0] for i in range(phnum)}
    facts.static = not kinds & {2, 3}  # PT_DYNAMIC, PT_INTERP
    section_types = [struct.unpack_from("<I", data, shoff + i * shentsize + 4)[0]
                     for i in range(shnum)]
    facts.stripped = 2 not in section_types  # SHT_SYMTAB


def _macho(data: bytes, facts: BinaryFacts) -> None:
    facts.binary_format = "Mach-O"
    cputype, _, _, ncmds = struct.unpack_from("<IIII", data, 4)
    facts.machine = {0x01000007: "x86_64", 0x0100000C: "arm64"}.get(cputype, hex(cputype))
    offset, segments, commands = 32, [], set()
    for _ in range(ncmds):
        command, size = struct.unpack_from("<II", data, offset)
        commands.add(command)
        if command == 0x19:  # LC_SEGMENT_64
            segments.append(data[offset + 8:offset + 24].rstrip(b"\0").decode())
        offset += size
    facts.stripped = "__DWARF" not in segments  # -w
    facts.signed = 0x1D in commands  # LC_CODE_SIGNATURE


def _pe(data: bytes, facts: BinaryFacts) -> None:
    facts.binary_format = "PE"
    pe, = struct.unpack_from("<I", data, 0x3C)
    if data[pe:pe + 4] != b"PE\0\0":
        facts.binary_format = "MZ without PE"
        return
    machine, = struct.unpack_from("<H", data, pe + 4)
    facts.machine = {0x8664: "x86_64", 0xAA64: "arm64"}.get(machine, hex(machine))
    symbols, = struct.unpack_from("<I", data, pe + 16)  # NumberOfSymbols: 0 under -s
    facts.stripped = symbols == 0


def _go_buildinfo(data: bytes, facts: BinaryFacts) -> None:
    """The build info Go 1.18+ writes inline after a 32-byte header: the Go version and the
    module info, each prefixed by its length as a uvarint (what `go version -m` prints)."""
    start = data.find(b"\xff Go buildinf:")
    if start < 0 or not data[start + 15] & 2:
        return
    position = start + 32
    strings = []
    for _ in range(2):
        length = shift = 0
        while True:
            byte = data[position]
            position += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        strings.append(data[position:position + length])
        position += length
    facts.go = strings[0].decode()
    modinfo = strings[1][16:-16].decode(errors="replace")  # between Go's two 16-byte sentinels
    for line in modinfo.splitlines():
        kind, _, rest = line.partition("\t")
        if kind == "mod":
            path, version = [*rest.split("\t"), ""][:2]
            facts.module = (path, version)
        elif kind == "build":
            key, _, value = rest.partition("=")
            facts.settings[key] = value


def binary_problems(data: bytes, target: Platform, version: str) -> list[str]:
    """Everything about `data` that is not helm `version` for `target` built as released."""
    facts = inspect_binary(data)
    problems = []
    if (facts.binary_format, facts.machine) != (target.binary_format, target.machine):
        problems.append(f"a {facts.binary_format} {facts.machine} binary, not "
                        f"{target.binary_format} {target.machine}")
    if facts.module != (MODULE, version):
        problems.append(f"built from {' '.join(facts.module) or 'unknown module'}, "
                        f"not {MODULE} {version}")
    expected = {"CGO_ENABLED": "0", "-trimpath": "true", "GOOS": target.goos,
                "GOARCH": target.goarch}
    for key, value in expected.items():
        if facts.settings.get(key) != value:
            problems.append(f"built with {key}={facts.settings.get(key, '(unset)')}, not {value}")
    if facts.stripped is False:
        problems.append("not stripped (-s -w)")
    if facts.static is False:
        problems.append("dynamically linked (has a program interpreter)")
    if target.name == "darwin/arm64" and not facts.signed:
        # Apple silicon runs no unsigned code; Go's linker signs ad hoc for darwin/arm64.
        problems.append("no code signature (macOS on arm64 would refuse to run it)")
    # -trimpath leaves -ldflags out of the build info, so whether -X set helm's version string
    # shows only by running it (run_problems, for this machine's binary).
    return problems


# ---- staging, for hatch_build.py ------------------------------------------------------------


def helm_licenses(version: str) -> list[Path]:
    """helm's LICENSE (and NOTICE, if the module ever has one) from the Go module cache."""
    info = json.loads(_go("mod", "download", "-json", f"{MODULE}@{version}"))
    directory = Path(info["Dir"])
    found = [p for p in sorted(directory.iterdir())
             if p.is_file() and re.match(r"(LICEN[CS]E|NOTICE|COPYING)(\.|$)", p.name, re.I)]
    if not any(p.name.upper().startswith("LICEN") for p in found):
        raise BuildError(f"no LICENSE in {directory}")
    return found


def stage(target: Platform, binary: Path, version: str, licenses: list[Path],
          directory: Path) -> Path:
    """A directory hatch_build.py turns into `target`'s wheel: the binary (mode 755), the
    licences and bundle.json."""
    directory.mkdir(parents=True)
    data = binary.read_bytes()
    staged = directory / target.binary
    staged.write_bytes(data)
    staged.chmod(0o755)
    for licence in licenses:
        shutil.copyfile(licence, directory / licence.name)
    facts = inspect_binary(data)
    record = {
        "version": version,
        "module": MODULE,
        "goos": target.goos,
        "goarch": target.goarch,
        "binary": target.binary,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "go": facts.go,
        "ldflags": ldflags(version),
        "build": facts.settings,
        "wheel_tag": target.wheel_tag,
        "licenses": [licence.name for licence in licenses],
    }
    (directory / "bundle.json").write_text(json.dumps(record, indent=2) + "\n")
    return directory


# ---- checking a built wheel -----------------------------------------------------------------


@dataclass
class WheelReport:
    path: Path
    tag: str
    size: int
    helm_version: str | None = None      # None: the pure wheel
    binary_format: str | None = None
    machine: str | None = None
    helm_says: str | None = None          # `helm version`, for the wheel that runs here
    problems: list[str] = field(default_factory=list)


def check_wheel(wheel: Path, target: Platform | None, version: str) -> WheelReport:
    """Checks one wheel: its tag (in the name and in WHEEL), its size, and for a platform wheel
    the helm inside (executable, the recorded sha256, the binary's format, architecture and
    build, helm's licence); a pure wheel must carry no helm. The wheel for this machine's
    platform runs its helm's `helm version`."""
    tag = wheel.name.removesuffix(".whl").split("-", 2)[2]
    report = WheelReport(wheel, tag, wheel.stat().st_size)
    expected_tag = target.wheel_tag if target else "py3-none-any"
    problems = report.problems
    if tag != expected_tag:
        problems.append(f"tagged {tag}, not {expected_tag}")
    if report.size > MAX_WHEEL_BYTES:
        problems.append(f"{report.size} bytes, over PyPI's {MAX_WHEEL_BYTES}")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        meta = archive.read(next(n for n in names if n.endswith(".dist-info/WHEEL"))).decode()
        tags = set(re.findall(r"(?m)^Tag: *(\S+)", meta))
        interpreter, abi, platforms = expected_tag.split("-")
        wanted = {f"{interpreter}-{abi}-{p}" for p in platforms.split(".")}
        if tags != wanted:
            problems.append(f"WHEEL lists tags {sorted(tags)}, not {sorted(wanted)}")
        if ("Root-Is-Purelib: true" in meta) != (target is None):
            problems.append("Root-Is-Purelib does not match the tag")
        carried = sorted(n for n in names if n.startswith(BUNDLE_DIR + "/"))
        if target is None:
            if carried:
                problems.append(f"the pure wheel carries {carried}")
            return report
        for name in (target.binary, "bundle.json", "LICENSE"):
            if f"{BUNDLE_DIR}/{name}" not in names:
                problems.append(f"no {BUNDLE_DIR}/{name}")
        if problems:
            return report
        member = archive.getinfo(f"{BUNDLE_DIR}/{target.binary}")
        if not (member.external_attr >> 16) & 0o111:
            problems.append(f"{member.filename} is not executable in the wheel")
        data = archive.read(member)
        record = json.loads(archive.read(f"{BUNDLE_DIR}/bundle.json"))
    report.helm_version = record.get("version")
    facts = inspect_binary(data)
    report.binary_format, report.machine = facts.binary_format, facts.machine
    if record.get("sha256") != hashlib.sha256(data).hexdigest():
        problems.append("bundle.json's sha256 is not the binary's")
    if record.get("version") != version:
        problems.append(f"bundle.json says helm {record.get('version')}, not {version}")
    problems += binary_problems(data, target, version)
    if target == host_platform():
        with tempfile.TemporaryDirectory() as tmp:
            binary = Path(tmp, target.binary)
            binary.write_bytes(data)
            binary.chmod(0o755)
            said = subprocess.run([str(binary), "version"], capture_output=True, text=True)
            report.helm_says = (said.stdout or said.stderr).strip()
            problems += run_problems(binary, version)
    return report
