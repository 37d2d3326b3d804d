"""Container images built here without a registry, for the real node (realnode.py).

    python -m localcluster images          # builds what is missing into .cache/images

Images:
  localhost/pause:3.10                  the pod sandbox: a static pause binary (pause.c) alone
  <the chart's vineyardd image>         Debian bookworm minbase + vineyardd (vineyard-bdist wheel)
                                        + busybox's wget and nc (init containers, probes, helm test)
  <the chart's etcd image>              like upstream's: static etcd, etcdctl, etcdutl at its tag,
                                        built from etcd's Go modules (tools/etcd), and no shell
  <the chart's exporter image>          the static vineyard-exporter (tools/exporter) alone, as
                                        user 65532: what hack/release.py publishes with the chart
  localhost/vineyard-worker:v0.24.2     bookworm minbase with python3 + the vineyard client, numpy

The chart's three images carry the exact references the chart uses by default (read from the
`artifacthub.io/images` annotation of charts/vineyard/Chart.yaml, the one place they are
written), so `helm install vineyard vineyard/vineyard` runs them unchanged: the real node's
containerd pulls them from a registry on 127.0.0.1 that mirrors every upstream registry
(realnode.py, `push`). The pause and worker images are imported into containerd directly.

Each image is an OCI archive (oci-layout, index.json, blobs; zstd layers) that
`ctr -n k8s.io images import` takes and `push` uploads. The root filesystems come from
`debootstrap` (mirror: $LOCALCLUSTER_DEBIAN_MIRROR, else the host's apt source) and are kept in
.cache/images/rootfs; an archive is rebuilt only when its inputs change (the key hashes the
input files, versions and this file), so a warm build costs only the hashing.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = REPO_ROOT / ".cache" / "images"
VENV = REPO_ROOT / ".cache" / "venv"
SUITE = "bookworm"
BIN_DIR = REPO_ROOT / ".cache" / "bin"
CHART_YAML = REPO_ROOT / "charts" / "vineyard" / "Chart.yaml"
# Built by hack/build-tools.sh from tools/etcd at the chart's etcd tag.
ETCD_BIN, ETCDCTL_BIN, ETCDUTL_BIN = BIN_DIR / "etcd", BIN_DIR / "etcdctl", BIN_DIR / "etcdutl"
# Built by hack/build-tools.sh from tools/exporter (static, -trimpath: the same bytes each build).
EXPORTER_BIN = BIN_DIR / "vineyard-exporter"
BUSYBOX = Path("/bin/busybox")
# Applets the chart's containers need that a minbase root lacks (it has sh, coreutils, grep).
BUSYBOX_APPLETS = ("wget", "nc")
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ROOTFS = {"base": [], "python": ["python3"]}  # name -> debootstrap --include packages
# Trimmed from the roots: documentation, locales, apt's lists and caches.
TRIM = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
        "var/lib/apt/lists", "var/cache/apt", "var/cache/debconf/templates.dat-old", "var/log")



def chart_images(chart_yaml: Path = CHART_YAML) -> dict[str, str]:
    """The chart's default images by name (`vineyardd`, `etcd`), as the chart publishes them."""
    import yaml
    meta = yaml.safe_load(chart_yaml.read_text())
    listed = yaml.safe_load(meta["annotations"]["artifacthub.io/images"])
    return {entry["name"]: entry["image"] for entry in listed}


def debian_mirror() -> str:
    """$LOCALCLUSTER_DEBIAN_MIRROR, else the first Debian URI of the host's apt sources (the
    mirror this machine is known to reach), else deb.debian.org."""
    if os.environ.get("LOCALCLUSTER_DEBIAN_MIRROR"):
        return os.environ["LOCALCLUSTER_DEBIAN_MIRROR"]
    sources = [Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")]
    for src in sources:
        try:
            text = src.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            words = line.split()
            uris = words[1:] if words[:1] == ["URIs:"] else []
            if uris and uris[0].rstrip("/").endswith("/debian"):
                return uris[0]
            uri = next((w for w in words[1:] if "://" in w), "") if words[:1] == ["deb"] else ""
            if uri.rstrip("/").endswith("/debian"):
                return uri
    return "http://deb.debian.org/debian"


_CHART = chart_images()
VINEYARD_VERSION = _CHART["vineyardd"].rsplit(":v", 1)[1]
PAUSE = "localhost/pause:3.10"
VINEYARDD = _CHART["vineyardd"]
ETCD = _CHART["etcd"]
ETCD_TAG = ETCD.rsplit(":", 1)[1]
EXPORTER = _CHART["exporter"]
WORKER = f"localhost/vineyard-worker:v{VINEYARD_VERSION}"
ALL = (PAUSE, VINEYARDD, ETCD, EXPORTER, WORKER)
# Pulled by the real node through its loopback mirror, under the chart's own references.
MIRRORED = (VINEYARDD, ETCD, EXPORTER)
# Imported into containerd directly (not the chart's: the sandbox and the tests' workers).
IMPORTED = (PAUSE, WORKER)


class ImageError(RuntimeError):
    pass


def _run(*argv: str | Path, **kw) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([str(a) for a in argv], check=True, capture_output=True,
                              text=True, **kw)
    except subprocess.CalledProcessError as e:
        raise ImageError(f"{' '.join(map(str, argv))} failed ({e.returncode}):\n"
                         f"{(e.stderr or e.stdout or '')[-2000:]}") from None


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def vineyardd_binary() -> Path:
    found = sorted(VENV.glob("lib/python3*/site-packages/vineyard/bdist/vineyardd"))
    if not found:
        raise ImageError(f"no vineyardd in {VENV} (vineyard-bdist wheel): run `make venv`")
    return found[0]


@dataclass
class Build:
    """What `build()` did: seconds per step and the archive of each image."""
    archives: dict[str, Path] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    built: list[str] = field(default_factory=list)


class Images:
    def __init__(self, cache: Path | str = DEFAULT_CACHE):
        self.cache = Path(cache).resolve()

    # --- root filesystems ---------------------------------------------------------------------

    def rootfs(self, name: str) -> Path:
        """A debootstrap'ed root (made once, kept): `base` or `python`."""
        includes = ROOTFS[name]
        key = hashlib.sha256(f"{SUITE} minbase {includes} {TRIM}".encode()).hexdigest()[:12]
        root = self.cache / "rootfs" / f"{name}-{key}"
        if (root / ".complete").exists():
            return root
        tmp = root.with_name(root.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        argv = ["debootstrap", "--variant=minbase"]
        if includes:
            argv.append("--include=" + ",".join(includes))
        _run(*argv, SUITE, tmp, debian_mirror())
        for rel in TRIM:
            target = tmp / rel
            if target.is_dir():
                shutil.rmtree(target)
                target.mkdir()
            elif target.exists():
                target.unlink()
        (tmp / ".complete").touch()
        shutil.rmtree(root, ignore_errors=True)
        tmp.rename(root)
        return root

    # --- layers and archives ------------------------------------------------------------------

    def _layer(self, src: Path, out_dir: Path) -> dict:
        """Packs directory `src` as one zstd layer in `out_dir/blobs`; returns its facts."""
        blobs = out_dir / "blobs" / "sha256"
        blobs.mkdir(parents=True, exist_ok=True)
        raw = out_dir / "layer.tar"
        # Deterministic: sorted names, fixed times; ownership kept (numeric).
        _run("tar", "-C", src, "--sort=name", "--mtime=@0", "--numeric-owner",
             "--exclude=./.complete", "-cf", raw, ".")
        diff_id = _sha256_file(raw)
        _run("zstd", "-q", "-3", "-T0", "--rm", "-f", raw, "-o", out_dir / "layer.tar.zst")
        packed = out_dir / "layer.tar.zst"
        digest = _sha256_file(packed)
        size = packed.stat().st_size
        packed.rename(blobs / digest)
        return {"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
                "digest": f"sha256:{digest}", "size": size, "diff_id": f"sha256:{diff_id}"}

    def _blob(self, out_dir: Path, obj: dict, media_type: str) -> dict:
        data = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
        digest = hashlib.sha256(data).hexdigest()
        (out_dir / "blobs" / "sha256" / digest).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

    def _archive(self, ref: str, layers: list[dict], config: dict, out: Path,
                 work: Path) -> None:
        image_config = {
            "architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [lay["diff_id"] for lay in layers]},
        }
        cfg = self._blob(work, image_config, "application/vnd.oci.image.config.v1+json")
        manifest = self._blob(work, {
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": cfg,
            "layers": [{k: lay[k] for k in ("mediaType", "digest", "size")} for lay in layers],
        }, "application/vnd.oci.image.manifest.v1+json")
        manifest["platform"] = {"architecture": "amd64", "os": "linux"}
        manifest["annotations"] = {"io.containerd.image.name": ref,
                                   "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[1]}
        (work / "index.json").write_text(json.dumps(
            {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [manifest]}))
        (work / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        tmp = out.with_suffix(".tmp")
        _run("tar", "-C", work, "--sort=name", "--mtime=@0", "--owner=0", "--group=0",
             "-cf", tmp, "oci-layout", "index.json", "blobs")
        tmp.rename(out)

    # --- the images ---------------------------------------------------------------------------

    def _inputs(self, ref: str) -> list:
        """What an image's archive depends on (besides this file). Only the asked image's inputs
        are looked at: the release builds the exporter on a machine without the venv's vineyard."""
        if ref == PAUSE:
            return [_sha256_file(Path(__file__).with_name("pause.c"))]
        if ref == VINEYARDD:
            return [SUITE, ROOTFS["base"], _sha256_file(vineyardd_binary()),
                    _sha256_file(BUSYBOX), BUSYBOX_APPLETS]
        if ref == ETCD:
            return [_sha256_file(b) if b.exists() else "missing"
                    for b in (ETCD_BIN, ETCDCTL_BIN, ETCDUTL_BIN)]
        if ref == EXPORTER:
            return [_sha256_file(EXPORTER_BIN) if EXPORTER_BIN.exists() else "missing"]
        if ref == WORKER:
            return [SUITE, ROOTFS["python"], self._worker_requirements()]
        raise ImageError(f"no such image: {ref}")

    def _worker_requirements(self) -> list[str]:
        """vineyard, numpy and setuptools pinned to the venv's versions (vineyard imports
        pkg_resources, which recent setuptools no longer ship)."""
        names = ("vineyard", "numpy", "setuptools")
        out = _run(VENV / "bin" / "python", "-c",
                   "import importlib.metadata as m; "
                   f"print(*(m.version(n) for n in {names!r}))").stdout.split()
        return [f"{name}=={version}" for name, version in zip(names, out, strict=True)]

    def archive_path(self, ref: str, key: str) -> Path:
        name = ref.split("/", 1)[1].replace(":", "-").replace("/", "_")
        return self.cache / f"{name}-{key}.oci.tar"

    def build(self, refs: tuple[str, ...] = ALL) -> Build:
        """Builds the archives that are missing; returns them with the seconds each took."""
        result = Build()
        start = time.monotonic()
        self.cache.mkdir(parents=True, exist_ok=True)
        me = _sha256_file(Path(__file__))
        inputs = {ref: self._inputs(ref) for ref in refs}
        result.seconds["hash inputs"] = time.monotonic() - start
        for ref in refs:
            key = hashlib.sha256(json.dumps([me, inputs[ref]]).encode()).hexdigest()[:12]
            out = self.archive_path(ref, key)
            if not out.exists():
                t0 = time.monotonic()
                with tempfile.TemporaryDirectory(dir=self.cache) as tmp:
                    self._build_one(ref, out, Path(tmp))
                result.seconds[ref] = time.monotonic() - t0
                result.built.append(ref)
                for stale in out.parent.glob(out.name.rsplit("-", 1)[0] + "-*.oci.tar"):
                    if stale != out:
                        stale.unlink()
            result.archives[ref] = out
        result.seconds["total"] = time.monotonic() - start
        return result

    def _build_one(self, ref: str, out: Path, tmp: Path) -> None:
        work = tmp / "oci"
        work.mkdir()
        if ref == PAUSE:
            stage = tmp / "stage"
            stage.mkdir(mode=0o755)
            _run("gcc", "-static", "-Os", "-s", "-o", stage / "pause",
                 Path(__file__).with_name("pause.c"))
            layers = [self._layer(stage, work)]
            self._archive(ref, layers, {"Entrypoint": ["/pause"], "Env": [PATH_ENV]}, out, work)
            return
        if ref == WORKER:
            base = self._base_layer("python", work)
            stage = tmp / "stage"
            site = stage / "usr/local/lib/python3.11/dist-packages"
            site.mkdir(parents=True)
            _run(VENV / "bin" / "pip", "install", "-q", "--no-compile", "--target", site,
                 *self._worker_requirements())
            shutil.rmtree(site / "bin", ignore_errors=True)
            _fix_modes(stage)
            layers = [base, self._layer(stage, work)]
            self._archive(ref, layers, {"Env": [PATH_ENV, "PYTHONDONTWRITEBYTECODE=1"],
                                        "Cmd": ["python3"]}, out, work)
            return
        stage = tmp / "stage"
        bindir = stage / "usr/local/bin"
        bindir.mkdir(parents=True)
        if ref == EXPORTER:
            # Nothing but the static binary (no shell, no libc), run as the chart's pod user.
            if not EXPORTER_BIN.exists():
                raise ImageError(f"no {EXPORTER_BIN}: run `make tools` (builds tools/exporter)")
            shutil.copy2(EXPORTER_BIN, bindir / EXPORTER_BIN.name)
            _fix_modes(stage)
            config = {"Entrypoint": [f"/usr/local/bin/{EXPORTER_BIN.name}"], "Env": [PATH_ENV],
                      "User": "65532:65532"}
            self._archive(ref, [self._layer(stage, work)], config, out, work)
            return
        if ref == ETCD:
            # Like upstream's image (distroless static): the three static binaries, empty data
            # and tmp directories, and no shell, so nothing in the chart may rely on one.
            for src in (ETCD_BIN, ETCDCTL_BIN, ETCDUTL_BIN):
                if not src.exists():
                    raise ImageError(f"no {src}: run `make tools` (builds etcd {ETCD_TAG})")
                shutil.copy2(src, bindir / src.name)
            for d in ("tmp", "var/lib/etcd", "var/etcd"):
                (stage / d).mkdir(parents=True)
            _fix_modes(stage)
            (stage / "tmp").chmod(0o1777)
            config = {"Entrypoint": ["/usr/local/bin/etcd"], "Env": [PATH_ENV]}
            self._archive(ref, [self._layer(stage, work)], config, out, work)
            return
        base = self._base_layer("base", work)
        if ref == VINEYARDD:
            shutil.copy2(vineyardd_binary(), bindir / "vineyardd")
            shutil.copy2(BUSYBOX, bindir / "busybox")
            for applet in BUSYBOX_APPLETS:
                os.symlink("busybox", bindir / applet)
            config = {"Entrypoint": ["vineyardd"], "Env": [PATH_ENV]}
        _fix_modes(stage)
        self._archive(ref, [base, self._layer(stage, work)], config, out, work)

    def _base_layer(self, rootfs: str, work: Path) -> dict:
        """The root's layer, packed once per root and copied into each archive using it."""
        root = self.rootfs(rootfs)
        facts_file = root.with_name(root.name + ".layer.json")
        blob_dir = self.cache / "rootfs"
        if facts_file.exists():
            facts = json.loads(facts_file.read_text())
        else:
            packing = blob_dir / f"{root.name}.packing"
            shutil.rmtree(packing, ignore_errors=True)
            facts = self._layer(root, packing)
            digest = facts["digest"].split(":")[1]
            (packing / "blobs" / "sha256" / digest).rename(blob_dir / f"{root.name}.layer")
            shutil.rmtree(packing)
            facts_file.write_text(json.dumps(facts))
        blobs = work / "blobs" / "sha256"
        blobs.mkdir(parents=True, exist_ok=True)
        target = blobs / facts["digest"].split(":")[1]
        try:
            os.link(blob_dir / f"{root.name}.layer", target)
        except OSError:
            shutil.copy2(blob_dir / f"{root.name}.layer", target)
        return facts

    # --- containerd ---------------------------------------------------------------------------

    def import_into(self, address: Path | str, archives: dict[str, Path]) -> None:
        """`ctr -n k8s.io images import` of each archive (unpacked for the default snapshotter)."""
        for archive in archives.values():
            _run("ctr", "--address", address, "-n", "k8s.io", "images", "import", archive)


def mirror_repository(ref: str) -> tuple[str, str]:
    """(repository, tag) of an upstream reference in the loopback mirror, which keeps each
    registry's images under its host name: quay.io/coreos/etcd:v3.6.16 ->
    ("quay.io/coreos/etcd", "v3.6.16"); a Docker Hub short name gets docker.io/library/."""
    name, tag = ref.rsplit(":", 1)
    first = name.split("/", 1)[0]
    if "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name if '/' in name else 'library/' + name}"
    return name, tag


def push(registry: str, archive: Path, ref: str) -> None:
    """Uploads an OCI archive to the distribution registry at `registry` (host:port, plain
    HTTP on loopback) as `ref`'s mirror repository: blobs first (skipping those present),
    then the manifest under the tag. The registry's API, as any client would use it."""
    import tarfile
    import urllib.error
    import urllib.request

    repo, tag = mirror_repository(ref)
    base = f"http://{registry}/v2/{repo}"

    def request(method: str, url: str, data: bytes | None = None,
                headers: dict[str, str] | None = None):
        req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        return urllib.request.urlopen(req, timeout=120)

    with tarfile.open(archive) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        desc = index["manifests"][0]
        manifest_bytes = tar.extractfile(f"blobs/sha256/{desc['digest'][7:]}").read()  # type: ignore[union-attr]
        manifest = json.loads(manifest_bytes)
        for blob in [manifest["config"], *manifest["layers"]]:
            digest = blob["digest"]
            try:
                request("HEAD", f"{base}/blobs/{digest}").close()
                continue
            except urllib.error.HTTPError as e:
                if e.code != 404:
                    raise
            data = tar.extractfile(f"blobs/sha256/{digest[7:]}").read()  # type: ignore[union-attr]
            with request("POST", f"{base}/blobs/uploads/") as resp:
                location = resp.headers["Location"]
            if location.startswith("/"):
                location = f"http://{registry}{location}"
            sep = "&" if "?" in location else "?"
            request("PUT", f"{location}{sep}digest={digest}", data,
                    {"Content-Type": "application/octet-stream"}).close()
    request("PUT", f"{base}/manifests/{tag}", manifest_bytes,
            {"Content-Type": desc["mediaType"]}).close()


def _fix_modes(stage: Path) -> None:
    for dirpath, _, _ in os.walk(stage):
        os.chmod(dirpath, 0o755)


def main(argv: list[str] | None = None) -> int:
    build = Images().build()
    for ref, path in build.archives.items():
        mark = "built" if ref in build.built else "cached"
        print(f"{ref:40} {mark:7} {path.stat().st_size / 2**20:7.1f} MiB  {path}")
    print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in build.seconds.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
