"""`helm uninstall --wait` leaves nothing of the release behind, except what is kept on purpose.

Kept on purpose: the etcd members' PersistentVolumeClaims (data-<release>-etcd-<i>). They come
from the StatefulSet's volumeClaimTemplates, so helm never owned them, and the StatefulSet's
default retention policy keeps them: the metadata survives an uninstall and a reinstall of the
same release picks it up again. Delete them by hand (`kubectl delete pvc -l
app.kubernetes.io/instance=<release>`) to drop the metadata. The socket claim of pvc mode is a
chart object and is deleted.

The check lists every namespaced kind the API server serves (discovery), before the install and
after the uninstall, labelled or not: only the kept claims may differ.
"""
from __future__ import annotations

import pytest

from localcluster import Cluster
from tests.e2e.e2e_kube import install_args
from tests.support.helm import run_helm
from tests.support.kube import (
    INSTANCE,
    inventory,
    kinds_and_names,
    release_objects,
    wait_daemonset_settled,
)
from tests.support.paths import CI_DIR
from tests.support.wait import wait_for

KEPT = {("PersistentVolumeClaim", f"data-vineyard-etcd-{i}") for i in range(3)}


@pytest.fixture(scope="module")
def uninstalled(cluster: Cluster, e2e_env: dict[str, str], make_namespace, make_pv) -> dict:
    ns = make_namespace("uninstall")
    make_pv(storage_class="standard", access_modes=["ReadWriteMany"], size="16Mi",
            claim=(ns, "vineyard-socket"))
    for i in range(3):
        make_pv(storage_class="", access_modes=["ReadWriteOnce"], size="1Gi",
                claim=(ns, f"data-vineyard-etcd-{i}"))
    baseline = kinds_and_names(inventory(cluster, ns))
    cluster_baseline = inventory(cluster, None)
    # Persistent etcd members and the socket on a claim: both kinds of claim in one release.
    run_helm(e2e_env, *install_args("vineyard", ns, extra=[
        "--values", str(CI_DIR / "etcd-ha-values.yaml"),
        "--values", str(CI_DIR / "pvc-values.yaml")]))
    wait_daemonset_settled(cluster, ns, "vineyard")
    installed = release_objects(cluster, ns, "vineyard")
    result = run_helm(e2e_env, "uninstall", "vineyard", "-n", ns, "--wait", "--timeout", "5m")

    def only_kept_left() -> set | None:
        left = kinds_and_names(inventory(cluster, ns)) - baseline
        return left if left == KEPT else None

    left = wait_for(only_kept_left, "only the etcd claims are left",
                    describe=lambda: kinds_and_names(inventory(cluster, ns)) - baseline)
    return {"ns": ns, "installed": installed, "result": result, "left": left,
            "cluster_baseline": cluster_baseline}


def test_the_release_had_both_kinds_of_claim(uninstalled: dict) -> None:
    installed = uninstalled["installed"]
    assert ("PersistentVolumeClaim", "vineyard-socket") in installed
    assert installed >= KEPT | {("DaemonSet", "vineyard"), ("StatefulSet", "vineyard-etcd")}


def test_uninstall_leaves_only_the_etcd_claims(cluster: Cluster, uninstalled: dict) -> None:
    assert uninstalled["result"].returncode == 0
    assert uninstalled["left"] == KEPT
    # The kept claims still carry the release's label, so they are easy to find and delete.
    assert release_objects(cluster, uninstalled["ns"], "vineyard") == KEPT


def test_no_release_record_and_no_cluster_scoped_object_remains(
    cluster: Cluster, e2e_env: dict[str, str], uninstalled: dict
) -> None:
    ns = uninstalled["ns"]
    assert not inventory(cluster, ns, "owner=helm,name=vineyard")  # helm's release Secrets
    assert not inventory(cluster, None, f"{INSTANCE}=vineyard")
    gone = run_helm(e2e_env, "history", "vineyard", "-n", ns, check=False)
    assert gone.returncode != 0
    assert "release: not found" in gone.stderr
