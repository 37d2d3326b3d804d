"""status's nodes without vineyardd (vineyard_helm/nodes.py), from what status read on the kwok
cluster: data/node-gaps/ holds helm's status JSON (Helm 4 and Helm 3) of a release with a node
pool, its nodeSelector on a label of the test's own, and the nodes the API server listed for
each DaemonSet's nodeSelector, recorded by tests/e2e/test_e2e_status_node_gaps.py
(VINEYARD_HELM_RECORD_NODE_GAPS=1; see its docstring for the four nodes). Here the API server
is a stand-in that answers the selectors from those nodes, equality-based as the server does."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest

from vineyard_helm.api import _node_gaps
from vineyard_helm.helm_json import status_from_json
from vineyard_helm.nodes import (
    CORDON_TAINT,
    NodeLister,
    label_selector,
    node_gaps,
    taint_text,
    tolerates,
)
from vineyard_helm.output import GAP_NAMES, format_status, node_gap_lines
from vineyard_helm.records import NodeGap, ReleaseStatus

DATA = Path(__file__).parent / "data" / "node-gaps"
METADATA = json.loads((DATA / "metadata.json").read_text())
LISTED: dict[str, list[dict[str, Any]]] = json.loads((DATA / "nodes.json").read_text())
NODES = {n["metadata"]["name"]: n for nodes in LISTED.values() for n in nodes}
INSTALL_HINT = "pip install 'vineyard-helm[status]'"


def node_named(role: str) -> str:
    """The recorded node by role: not-ready (kwok never managed it), tainted (cordoned, a taint
    the release does not tolerate), cordoned (a taint it does), pool."""

    def has_taint(name: str, part: str) -> bool:
        return any(part in t["key"] for t in NODES[name]["spec"].get("taints") or [])

    pool = "vineyard.v6d.io/pool"
    roles = {
        "not-ready": [n for n in NODES if n.startswith("e2e-gaps-not-ready-")],
        "tainted": [n for n in NODES if has_taint(n, "/other-")],
        "cordoned": [n for n in NODES if has_taint(n, "/mine-")],
        "pool": [n for n in NODES if pool in NODES[n]["metadata"]["labels"]
                 and not n.startswith("e2e-gaps-")],
    }  # fmt: skip
    (name,) = roles[role]
    return str(name)


class FakeLister:
    """The API server's node list with a label selector (key=value terms, all must match)."""

    asked: ClassVar[list[str]] = []

    def __init__(self, *, kubeconfig: str | None, context: str | None) -> None:
        pass

    def list(self, selector: str) -> list[dict[str, Any]]:
        FakeLister.asked.append(selector)
        terms = dict(term.split("=", 1) for term in selector.split(",") if term)
        return [
            node
            for node in NODES.values()
            if all(node["metadata"]["labels"].get(k) == v for k, v in terms.items())
        ]


def status_with_gaps(major: int, monkeypatch: pytest.MonkeyPatch) -> ReleaseStatus:
    """status() as it builds its record, helm's JSON recorded and the API server faked."""
    import dataclasses

    import vineyard_helm.nodes

    monkeypatch.setattr(vineyard_helm.nodes, "NodeLister", FakeLister)
    FakeLister.asked = []
    document = json.loads((DATA / f"helm{major}-status.json").read_text())
    status = status_from_json(document, metadata=METADATA)
    fields = asyncio.run(_node_gaps(status, document, kubeconfig=None, context=None))
    return dataclasses.replace(status, **fields)


@pytest.fixture(params=[4, 3], ids=["helm4", "helm3"])
def recorded(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> ReleaseStatus:
    return status_with_gaps(int(request.param), monkeypatch)


def test_one_node_list_per_daemonset_by_its_own_node_selector(recorded: ReleaseStatus) -> None:
    test_id = node_named("not-ready").rsplit("-", 1)[1]
    assert sorted(FakeLister.asked) == [
        f"e2e.vineyard-helm/node-gaps={test_id}",
        f"e2e.vineyard-helm/node-gaps={test_id},vineyard.v6d.io/pool=big-{test_id}",
    ]
    assert recorded.nodes_selected == 4
    assert recorded.nodes_note == ""


def test_exactly_the_nodes_without_a_pod_of_any_pool(recorded: ReleaseStatus) -> None:
    """The cordoned node runs the release's own vineyardd (DaemonSet pods tolerate a cordon),
    the pool's node the pool's, though the release's own DaemonSet's nodeSelector selects it."""
    assert [gap.node for gap in recorded.nodes_without_vineyardd] == sorted(
        [node_named("not-ready"), node_named("tainted")]
    )
    running = {p.node for d in (recorded.vineyardd, *recorded.pools) if d for p in d.pods}
    assert running == {node_named("cordoned"), node_named("pool")}
    assert recorded.ready  # the DaemonSets' desired pods are ready: gaps are reported, not held


def test_the_facts_of_each_node(recorded: ReleaseStatus) -> None:
    gaps = {gap.node: gap for gap in recorded.nodes_without_vineyardd}
    not_ready = gaps[node_named("not-ready")]
    assert (not_ready.ready, not_ready.ready_reason) == ("False", "KubeletNotReady")
    # Its not-ready NoExecute taint is tolerated (the DaemonSet controller's own toleration).
    assert not_ready.taints == ("node.kubernetes.io/not-ready:NoSchedule",)
    assert not_ready.daemonsets == ("vineyard", "vineyard-big")
    assert not_ready.affinity_not_checked == ("vineyard",)
    assert not_ready.describe() == "NotReady; taint node.kubernetes.io/not-ready:NoSchedule"

    tainted = gaps[node_named("tainted")]
    other = next(t for t in NODES[tainted.node]["spec"]["taints"] if "/other-" in t["key"])
    assert tainted.ready == "True"
    assert tainted.cordoned
    assert tainted.taints == (taint_text(other),)  # the cordon's own taint is `cordoned`
    assert CORDON_TAINT in {t["key"] for t in NODES[tainted.node]["spec"]["taints"]}
    assert tainted.daemonsets == ("vineyard",)
    assert tainted.describe() == f"Ready; cordoned; taint {taint_text(other)}"


def test_the_status_line_and_the_json(recorded: ReleaseStatus) -> None:
    text = format_status(recorded)
    (line,) = [line for line in text.splitlines() if "no vineyardd" in line]
    assert line.startswith("2 nodes have no vineyardd (of 4 selected): ")
    assert line.endswith("; affinity not checked (vineyard has node affinity terms)")
    assert f"{node_named('not-ready')} (NotReady; taint node.kubernetes.io/" in line
    data = json.loads(json.dumps(recorded.to_dict()))
    assert data["nodes_selected"] == 4
    assert [g["node"] for g in data["nodes_without_vineyardd"]] == [
        g.node for g in recorded.nodes_without_vineyardd
    ]
    assert data["nodes_without_vineyardd"][1]["cordoned"] is True
    assert data["ready"] is True


def test_a_node_the_release_covers_is_not_listed_whatever_its_state() -> None:
    document = json.loads((DATA / "helm4-status.json").read_text())
    live = document["info"]["resources"]
    daemonsets = live["v1/DaemonSet"]
    pods = [p for item in live["v1/Pod(related)"] for p in item.get("items", [item])]
    everyone = {ds["metadata"]["name"]: list(NODES.values()) for ds in daemonsets}
    count, gaps = node_gaps(daemonsets, pods, everyone)
    assert count == 4
    assert {g.node for g in gaps} == {node_named("not-ready"), node_named("tainted")}
    count, gaps = node_gaps(daemonsets, pods, {})
    assert (count, gaps) == (0, ())


# ---- the rules, case by case -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("toleration", "taint", "expected"),
    [
        ({"key": "k", "operator": "Exists"}, {"key": "k", "effect": "NoSchedule"}, True),
        (
            {"key": "k", "operator": "Exists", "effect": "NoExecute"},
            {"key": "k", "effect": "NoSchedule"},
            False,
        ),
        ({"operator": "Exists"}, {"key": "any", "value": "v", "effect": "NoExecute"}, True),
        ({"key": "k", "value": "v"}, {"key": "k", "value": "v", "effect": "NoSchedule"}, True),
        ({"key": "k", "value": "v"}, {"key": "k", "value": "w", "effect": "NoSchedule"}, False),
        ({"key": "k", "operator": "Equal"}, {"key": "k", "effect": "NoSchedule"}, True),
        ({"key": "j", "operator": "Exists"}, {"key": "k", "effect": "NoSchedule"}, False),
    ],
)
def test_tolerations_match_taints_as_the_api_defines(
    toleration: dict[str, str], taint: dict[str, str], expected: bool
) -> None:
    assert tolerates(toleration, taint) is expected


def _daemonset(name: str, **template: Any) -> dict[str, Any]:
    return {
        "kind": "DaemonSet",
        "metadata": {"name": name, "generation": 1},
        "spec": {"selector": {"matchLabels": {"ds": name}}, "template": {"spec": template}},
    }


def _node(name: str, *taints: tuple[str, str], ready: str = "True", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {}},
        "spec": {"taints": [{"key": k, "effect": e} for k, e in taints], **spec},
        "status": {"conditions": [{"type": "Ready", "status": ready}]},
    }


def test_without_pods_the_templates_tolerations_count_and_prefer_no_schedule_does_not() -> None:
    ds = _daemonset(
        "v",
        nodeSelector={"b": "2", "a": "1"},
        tolerations=[{"key": "gpu", "operator": "Exists"}],
    )
    assert label_selector(ds) == "a=1,b=2"
    node = _node("n", ("gpu", "NoSchedule"), ("soft", "PreferNoSchedule"), ("hard", "NoExecute"))
    count, (gap,) = node_gaps([ds], [], {"v": [node]})
    assert count == 1
    assert gap.taints == ("hard:NoExecute",)
    assert gap.affinity_not_checked == ()


def test_nodes_are_named_in_natural_order_and_the_line_is_capped() -> None:
    ds = _daemonset("v")
    nodes = [_node(f"kwok-node-{i}", ready="False") for i in (12, 3, 1, 0, 2, 4, 5, 6, 7, 8, 9, 10)]
    count, gaps = node_gaps([ds], [], {"v": nodes})
    assert [g.node for g in gaps][:3] == ["kwok-node-0", "kwok-node-1", "kwok-node-2"]
    status = ReleaseStatus(release=_release(), nodes_without_vineyardd=gaps, nodes_selected=count)
    (line,) = node_gap_lines(status)
    assert line.startswith("12 nodes have no vineyardd (of 12 selected): kwok-node-0 (NotReady)")
    assert line.count("(NotReady)") == GAP_NAMES
    assert line.endswith("kwok-node-9 (NotReady), and 2 more")


def test_one_node_is_said_in_the_singular_and_all_covered_is_said_too() -> None:
    gap = NodeGap(node="n", ready="", deleting=True)
    status = ReleaseStatus(release=_release(), nodes_without_vineyardd=(gap,), nodes_selected=3)
    assert node_gap_lines(status) == [
        "1 node has no vineyardd (of 3 selected): n (no Ready condition; being deleted)"
    ]
    covered = ReleaseStatus(release=_release(), nodes_selected=3)
    assert node_gap_lines(covered) == ["vineyardd on all 3 nodes its DaemonSets select"]
    assert node_gap_lines(ReleaseStatus(release=_release())) == []  # not asked


def _release() -> Any:
    from vineyard_helm.records import Release

    return Release(name="vineyard", namespace="vineyard", revision=1, status="deployed")


# ---- without the client, or the right to list nodes --------------------------------------------


def test_without_the_kubernetes_client_status_says_so_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dataclasses

    monkeypatch.setitem(sys.modules, "kubernetes", None)  # import kubernetes -> ImportError
    document = json.loads((DATA / "helm4-status.json").read_text())
    status = status_from_json(document, metadata=METADATA)
    fields = asyncio.run(_node_gaps(status, document, kubeconfig=None, context=None))
    status = dataclasses.replace(status, **fields)
    assert status.nodes_selected is None
    assert status.nodes_without_vineyardd == ()
    note = f"unavailable: the kubernetes Python client is not installed ({INSTALL_HINT})"
    assert status.nodes_note == note
    lines = [line for line in format_status(status).splitlines() if "vineyardd:" in line]
    assert f"nodes without vineyardd: {note}" in lines


class ApiError(Exception):
    """Shaped like kubernetes.client.ApiException (status, reason, body)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason, self.body = status, reason, ""


def test_a_refused_node_list_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    import vineyard_helm.nodes

    class Refused(FakeLister):
        def list(self, selector: str) -> list[dict[str, Any]]:
            raise ApiError(403, "Forbidden")

    monkeypatch.setattr(vineyard_helm.nodes, "NodeLister", Refused)
    document = json.loads((DATA / "helm4-status.json").read_text())
    status = status_from_json(document, metadata=METADATA)
    fields = asyncio.run(_node_gaps(status, document, kubeconfig=None, context=None))
    assert fields == {
        "nodes_without_vineyardd": (),
        "nodes_selected": None,
        "nodes_note": "forbidden: Forbidden (needs list on nodes, cluster-wide)",
    }


def test_an_unusable_kubeconfig_is_reported_not_raised(tmp_path: Path) -> None:
    bad = tmp_path / "kubeconfig"
    bad.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    document = json.loads((DATA / "helm4-status.json").read_text())
    status = status_from_json(document, metadata=METADATA)
    fields = asyncio.run(_node_gaps(status, document, kubeconfig=str(bad), context=None))
    assert fields["nodes_note"].startswith("unavailable: no usable kubeconfig"), fields


def test_the_lister_pages_through_the_api_servers_answer() -> None:
    class Response:
        def __init__(self, page: dict[str, Any]) -> None:
            self.data = json.dumps(page).encode()

    asked: list[dict[str, Any]] = []

    class CoreV1:
        def list_node(self, **kwargs: Any) -> Response:
            asked.append(kwargs)
            if kwargs["_continue"] is None:
                return Response({"items": [{"n": 1}], "metadata": {"continue": "t1"}})
            return Response({"items": [{"n": 2}], "metadata": {}})

    lister = NodeLister.__new__(NodeLister)
    lister._api = CoreV1()
    assert lister.list("a=1") == [{"n": 1}, {"n": 2}]
    assert [(a["label_selector"], a["_continue"]) for a in asked] == [("a=1", None), ("a=1", "t1")]


def test_cli_status_no_nodes_lists_none(monkeypatch: pytest.MonkeyPatch) -> None:
    from vineyard_helm import api
    from vineyard_helm.cli import build_parser, run

    seen: dict[str, Any] = {}

    def fake_status(*args: Any, **kwargs: Any) -> ReleaseStatus:
        seen.update(kwargs)
        return ReleaseStatus(release=_release())

    monkeypatch.setattr(api, "status", fake_status)
    out = io.StringIO()
    args = build_parser().parse_args(["status", "--no-nodes"])
    assert run(args, out, io.StringIO()) == 0
    assert seen["nodes"] is False
    assert "no vineyardd" not in out.getvalue()
    assert build_parser().parse_args(["status"]).nodes is True


def test_the_nodes_module_imports_no_kubernetes_until_it_lists() -> None:
    code = "import sys, vineyard_helm.nodes; print('kubernetes' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
