"""One source for each version: what the local cluster builds agrees with what the chart pins."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def _required(go_mod: Path, module: str) -> str:
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", go_mod.read_text(), re.M)
    assert match, f"{module} not required by {go_mod}"
    return match.group(1)


def test_the_etcd_built_for_the_real_node_is_the_charts_etcd() -> None:
    values = yaml.safe_load((REPO / "charts/vineyard/values.yaml").read_text())
    built = _required(REPO / "tools/etcd/go.mod", "go.etcd.io/etcd/server/v3")
    assert values["etcd"]["image"]["tag"] == built
    for tool in ("etcdctl", "etcdutl"):
        assert _required(REPO / "tools/etcd/go.mod", f"go.etcd.io/etcd/{tool}/v3") == built


def test_the_local_images_carry_the_charts_default_references() -> None:
    from localcluster import images
    values = yaml.safe_load((REPO / "charts/vineyard/values.yaml").read_text())
    chart = yaml.safe_load((REPO / "charts/vineyard/Chart.yaml").read_text())
    vineyardd = f"{values['image']['repository']}:v{chart['appVersion']}"
    etcd = f"{values['etcd']['image']['repository']}:{values['etcd']['image']['tag']}"
    exporter = f"{values['metrics']['exporter']['image']['repository']}:{chart['version']}"
    assert (vineyardd, etcd, exporter) == (images.VINEYARDD, images.ETCD, images.EXPORTER)
    assert set(images.MIRRORED) == {vineyardd, etcd, exporter}
