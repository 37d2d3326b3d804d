"""etcd client TLS: not offered, because the vineyardd the chart runs (0.24.2) cannot use it.
Checked against the real daemon's own flag list (the vineyard wheel ships it), so the row in
docs/reliability.md turns red the day a vineyardd with TLS flags is pinned."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests.support.paths import CHART

TLS_WORDS = re.compile(r"tls|ssl|cert|ca_file|cacert|_key\b|https", re.IGNORECASE)


def vineyardd_binary() -> Path:
    import vineyard  # the client package ships the real daemon (vineyard-bdist)

    return Path(vineyard.__file__).parent / "bdist" / "vineyardd"


def test_vineyardd_has_no_etcd_tls_flags_and_the_chart_says_so(record) -> None:
    import vineyard

    proc = subprocess.run([str(vineyardd_binary()), "--helpfull"], capture_output=True,
                          text=True, check=False, timeout=60)
    flags = re.findall(r"^\s+-(\w+) \(", proc.stdout + proc.stderr, re.MULTILINE)
    assert len(flags) > 20, "vineyardd --helpfull listed no flags"
    etcd_flags = sorted(f for f in flags if "etcd" in f)
    assert etcd_flags, "no etcd flags at all"
    tls = [f for f in flags if TLS_WORDS.search(f)]
    assert tls == [], f"vineyardd now has TLS flags {tls}: offer etcd TLS in the chart"
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert not any("tls" in k.lower() for k in schema["properties"]["etcd"]["properties"])
    readme = (CHART / "README.md").read_text()
    assert "etcd over TLS** is not offered" in readme
    record("etcd client TLS", area="etcd TLS",
           figure=f"vineyardd {vineyard.__version__}: {len(flags)} flags, etcd ones: "
                  f"{', '.join('--' + f for f in etcd_flags)}",
           result="not possible: no flag for a CA, client certificate or key; not offered "
                  "(chart README says so); etcd is confined by networkPolicy instead")
