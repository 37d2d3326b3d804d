"""Writes bench/results.md and the PNG plots in bench/plots/ from bench/results.json.

    python bench/report.py                      # what `make bench` runs
    python bench/report.py --no-plots --out X   # the markdown alone, into X (no matplotlib)

tests/unit/test_generated_docs.py regenerates the markdown from the committed results.json and
compares it with the committed results.md.
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
RESULTS_JSON = BENCH / "results.json"  # the same file as common.RESULTS_JSON
PLOTS = BENCH / "plots"


def ms(x: float) -> str:
    return f"{x * 1000:.0f}"


def goal(ok: bool) -> str:
    return "yes" if ok else "**no**"


def header(r: dict[str, Any]) -> str:
    v = r["versions"]
    return (f"{r['date']}; load average {r['load']['start'][0]:.1f} at start, "
            f"{r['load']['end'][0]:.1f} at end (1-minute; {r['machine']['cores']} cores); "
            f"helm {v['helm']}, {v['kubernetes']}, kwok {v['kwok'].split()[2]}, "
            f"chart {v['chart']}, git {v['git']}; `{' '.join(r['argv']) or '(defaults)'}`")


def goals_of(r: dict[str, Any]) -> dict[str, float]:
    """The goal of each pair; runs before issue 14 recorded one ratio for all pairs."""
    g = r["goals"]
    if "ratio" in g:
        return {"render": g["ratio"], "install": g["ratio"], "cli_render": g["ratio"],
                "cli_version": g["ratio"], "import_ms": g["import_ms"]}
    return dict(g)


def overhead_pairs(r: dict[str, Any]) -> list[tuple[str, str, dict, dict]]:
    """(goal key, name, candidate, baseline) of each interleaved pair of an overhead run."""
    ren, st = r["render"], r["startup"]
    pairs = [("render", "`render()` vs `helm template`", ren["render()"], ren["helm template"]),
             ("cli_render", "`vineyard-helm render` (cold CLI) vs `helm template`",
              ren["CLI render"], ren["helm template"])]
    if "install" in r:
        ins = r["install"]
        pairs.append(("install", f"`install(wait=True)` vs `helm install --wait` "
                      f"({ins['nodes']} nodes)", ins["install(wait=True)"],
                      ins["helm install --wait"]))
    pairs.append(("cli_version", "`vineyard-helm --version` vs `helm version`",
                  st["vineyard-helm --version"], st["helm version"]))
    return pairs


def wall_ratio(cand: dict, base: dict) -> float:
    return cand["wall"]["median"] / base["wall"]["median"]


def overhead_md(r: dict[str, Any], title: str = "## 1. Wrapper overhead") -> list[str]:
    ren, st, g = r["render"], r["startup"], goals_of(r)
    package = (f"; package measured: `vineyard_helm` at git {r['package']['git']}"
               if "package" in r else "")
    rows = [title, "", header(r) + package, "",
            "| pair (interleaved) | candidate ms wall (CPU) | baseline ms wall (CPU) | "
            "ratio wall (CPU) | goal | goal met |", "|---|---|---|---|---|---|"]
    for key, name, cand, base in overhead_pairs(r):
        rw, rc = wall_ratio(cand, base), cand["cpu"]["median"] / base["cpu"]["median"]
        rows.append(f"| {name} | {ms(cand['wall']['median'])} ({ms(cand['cpu']['median'])}) | "
                    f"{ms(base['wall']['median'])} ({ms(base['cpu']['median'])}) | "
                    f"{rw:.2f} ({rc:.2f}) | <= {g[key]:.2f} | {goal(rw <= g[key])} |")
    imp = st["import_in_process_ms"]["wall"]["median"]
    rows += ["", "| start-up | ms wall (CPU) | goal met |", "|---|---|---|",
             f"| `import vineyard_helm` inside a fresh interpreter | {imp:.0f} "
             f"({st['import_in_process_ms']['cpu']['median']:.0f}) | {goal(imp <= g['import_ms'])}"
             f" (<= {g['import_ms']:.0f} ms) |",
             f"| `python -c 'import vineyard_helm'` minus `python -c pass` | "
             f"{st['import_over_bare_ms']:.0f} | |",
             f"| `python -c pass` | {ms(st['python -c pass']['wall']['median'])} "
             f"({ms(st['python -c pass']['cpu']['median'])}) | |",
             f"| `vineyard-helm --version` | {ms(st['vineyard-helm --version']['wall']['median'])}"
             f" ({ms(st['vineyard-helm --version']['cpu']['median'])}) | |",
             f"| `vineyard-helm --help` | {ms(st['vineyard-helm --help']['wall']['median'])}"
             f" ({ms(st['vineyard-helm --help']['cpu']['median'])}) | |",
             f"| `helm version` | {ms(st['helm version']['wall']['median'])} "
             f"({ms(st['helm version']['cpu']['median'])}) | |",
             "", f"Rendered manifest (`helm template`, default values plus size): "
             f"{ren['manifest_bytes']} bytes.", ""]
    for key, title_ in (("profile_render", "Profile of render() (10 warm calls), cumulative, "
                         "our code and its libraries:"),
                        ("profile_cli_render", "Profile of cold `vineyard-helm render`, "
                         "cumulative, our code and its libraries:"),
                        ("importtime_cli_render", "Slowest imports of a cold `vineyard-helm "
                         "render` (`python -X importtime`, cumulative us):")):
        if key in ren:
            rows += [title_, "", "```", *ren[key], "```", ""]
    if "install" in r and "profile_install" in r["install"]:
        rows += ["Profile of one `install(wait=True)`:", "", "```",
                 *r["install"]["profile_install"], "```", ""]
    for key, title_ in (("profile_import", "Slowest imports (`python -X importtime`, "
                         "cumulative us):"),
                        ("importtime_cli_version", "Slowest imports of `vineyard-helm "
                         "--version` (`python -X importtime`, cumulative us):")):
        if key in st:
            rows += [title_, "", "```", *st[key], "```", ""]
    return rows


def before_after_md(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The ratios of an earlier package (overhead-before) next to the current ones."""
    g = goals_of(after)
    was = {key: wall_ratio(c, b) for key, _, c, b in overhead_pairs(before)}
    rows = [f"Before and after (median wall-time ratios; before: `vineyard_helm` at git "
            f"{before['package']['git']}, {before['date']}, load {before['load']['start'][0]:.1f}"
            f" to {before['load']['end'][0]:.1f}; after: git {after['package']['git']}, "
            f"{after['date']}, load {after['load']['start'][0]:.1f} to "
            f"{after['load']['end'][0]:.1f}):", "",
            "| pair | before | after | goal |", "|---|---|---|---|"]
    for key, name, cand, base in overhead_pairs(after):
        previous = f"{was[key]:.2f}" if key in was else "-"
        rows.append(f"| {name} | {previous} | {wall_ratio(cand, base):.2f} | <= {g[key]:.2f} |")
    imports = [x["startup"]["import_in_process_ms"]["wall"]["median"] for x in (before, after)]
    rows += [f"| `import vineyard_helm` (ms) | {imports[0]:.0f} | {imports[1]:.0f} | "
             f"<= {g['import_ms']:.0f} |", ""]
    return rows


# scale.py's phases, in the order they happen (results.json stores keys sorted).
PHASES = ("helm: render, validate, create objects", "controller: create DaemonSet pods",
          "scheduler: bind the last pod", "kwok: last pod Ready",
          "helm --wait: notice and return")
MILESTONE_NAMES = [("api_calls_done", "workload objects created"),
                   ("ds_pods_created", "DaemonSet pods created"),
                   ("ds_pods_bound", "pods bound"), ("etcd_ready", "etcd Ready"),
                   ("all_ready", "all pods Ready"), ("install_returned", "install returned")]


def ready_md(r: dict[str, Any], title: str) -> list[str]:
    rows = [title, "", header(r), "",
            "Seconds from the call (median of the runs). **Fair floor**: a bare DaemonSet (a "
            "pause container, no init containers, no probes) and a bare one-replica "
            "StatefulSet with a claim, through the same controllers in the same run. **Direct "
            "pods**, a lower reference no DaemonSet can reach: the chart's own pods created "
            "straight through the API, 8 requests at a time, no controller, no claim. Every "
            "size starts once all its nodes are Ready and untainted and stayed so for a lease "
            "renewal (node set-up on its own line below).", "",
            "| nodes | runs | " + " | ".join(n for _, n in MILESTONE_NAMES) +
            " | fair floor: all Ready | ratio / fair floor | direct pods: all Ready | ratio / "
            "direct | runs where helm returned before all Ready |",
            "|---|---|" + "---|" * (len(MILESTONE_NAMES) + 5)]
    failed = [s for s in r["sizes"] if "failed" in s]
    for s in r["sizes"]:
        if "failed" in s:
            continue
        mi, mf = s["median_install"], s["median_floor"]
        md_ = s.get("median_direct")
        direct = (f"{md_['all_ready']:.2f} | {s['ratio_all_ready_direct']:.1f}" if md_
                  else "- | -")
        rows.append(f"| {s['nodes']} | {len(s['install'])} | " + " | ".join(
            f"{mi[k]:.2f}" if k in mi else "-" for k, _ in MILESTONE_NAMES) +
            f" | {mf['all_ready']:.2f} | {s['ratio_all_ready']:.2f} | {direct} | "
            f"{s.get('helm_returned_before_all_ready', '-')} |")
    rows.append("")
    for s in r["sizes"]:
        setup, cp = s.get("node_setup"), s.get("control_plane")
        if isinstance(setup, dict):
            rows.append(f"- {s['nodes']} nodes set up before the clock: created in "
                        f"{setup['nodes_created_s']:.1f}s, all Ready and untainted after "
                        f"{setup['nodes_schedulable_s']:.1f}s, then held {setup['hold_s']:.0f}s "
                        f"({setup['dips']} dips).")
        if cp:
            rows.append(f"- {s['nodes']} nodes, control plane: controller-manager QPS/burst "
                        f"{cp['controller_manager_qps_burst'][0]}/"
                        f"{cp['controller_manager_qps_burst'][1]}, scheduler "
                        f"{cp['scheduler_qps_burst'][0]}/{cp['scheduler_qps_burst'][1]}, kwok "
                        f"leases {cp['kwok_lease_s']} s ({cp['kwok_lease_workers']} workers), "
                        f"node-monitor grace {cp['node_monitor_grace']} "
                        "(localcluster/components.py says why).")
        elif "failed" not in s:
            rows.append(f"- {s['nodes']} nodes: controller-manager at its default client "
                        "limits (QPS 20, burst 30); nodes not waited for.")
    rows.append("")
    for s in failed:
        e = s["evidence"]
        rows.append(f"- **{s['nodes']} nodes did not finish** within {s['timeout_s']:.0f}s "
                    f"({s['failed'].splitlines()[0][:160]}). From the API afterwards: "
                    f"{e.get('pods')} pods; created {e.get('created_s')}, bound "
                    f"{e.get('bound_s')}, containers Ready {e.get('containers_ready_s')} s after "
                    f"the workloads (first/median/last); {e.get('not_ready')} pods not Ready; "
                    f"DaemonSet status {e.get('daemonset_status')}.")
    for s in r["sizes"]:
        if "failed" in s:
            continue
        seen = [run["at_return"] for run in s["install"] if run.get("at_return")]
        if seen:
            rows.append(f"- {s['nodes']} nodes, a fresh LIST as each install returned: "
                        + "; ".join(
                f"{a['pods_ready']}/{a['pods']} pods Ready, DaemonSet numberReady "
                f"{a['ds_status']['numberReady']} of {a['ds_status']['desiredNumberScheduled']}"
                for a in seen))
    rows.append("")
    return rows


def scale_md(r: dict[str, Any]) -> list[str]:
    rows = ready_md(r, "## 5. Scale limits")
    rows += [f"Largest node count tried: **{r['largest_nodes']}**; largest that finished: "
             f"**{r.get('largest_nodes_finished')}**.", ""]
    for e in r["where_time_goes"]:
        direct = (f", direct pods {e['direct_all_ready_s']:.1f}s"
                  if e.get("direct_all_ready_s") else "")
        rows += [f"Where the time goes at {e['nodes']} nodes (slowest install run, all Ready "
                 f"at {e['install_all_ready_s']:.1f}s; fair floor {e['floor_all_ready_s']:.1f}s"
                 f"{direct}):",
                 "", "| phase | seconds |", "|---|---|"]
        rows += [f"| {k} | {e['phases_s'][k]:.2f} |" for k in PHASES if k in e["phases_s"]]
        rate = e["controller_pods_per_s"]
        rows += ["", f"- slowest phase: **{e['slowest_phase']}**"
                 + (f"; the controller made {rate:.1f} pods/s" if rate else ""),
                 "- CPU seconds meanwhile: " + ", ".join(
                     f"{k} {v:.1f}" for k, v in e["component_cpu_s"].items())
                 + f"; this process and helm {e['client_cpu_s']}",
                 "- seconds waited in client-side rate limiters: " + ", ".join(
                     f"{k} {v:.1f}" for k, v in e["throttled_s"].items()),
                 f"- apiserver requests: {e['apiserver_requests']}, most: " + ", ".join(
                     f"{k} {v:.0f}" for k, v in sorted(e["top_requests"].items(),
                                                       key=lambda kv: -kv[1])[:8]), ""]
    return rows


REAL_PHASES = ("API and controller: pod created", "scheduling", "sandbox (network, volumes)",
               "init containers (waiting for etcd)", "vineyardd container started",
               "probes: vineyardd Ready", "helm's wait returns")


def ready_real_md(r: dict[str, Any]) -> list[str]:
    kinds = list(r["median_returned_s"])
    rows = ["## 2b. Time to Ready on the real node", "", header(r), "",
            "`helm install --wait` of the chart's defaults on the real node (kubelet, "
            "containerd, the chart's real images, warm), against the floor: the chart's own etcd "
            "and vineyardd containers as bare pods (with etcd's claim), no init containers "
            "(vineyardd waits for etcd inline, every 0.1 s), every probe at the kubelet's "
            "smallest period, 1 s. Seconds along vineyardd's pod, medians of interleaved runs "
            "(pod watch; a phase is the time from the previous milestone).", "",
            "| phase | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
    for phase in REAL_PHASES:
        rows.append(f"| {phase} | " + " | ".join(
            f"{r['median_phases_s'][k].get(phase, 0):.2f}" for k in kinds) + " |")
    rows.append("| (etcd Ready at) | " + " | ".join(
        f"{r['median_phases_s'][k]['(etcd Ready at)']:.2f}" for k in kinds) + " |")
    rows.append("| **Ready (helm returned, or all Ready for the floor)** | " + " | ".join(
        f"**{r['median_returned_s'][k]:.2f}**" for k in kinds) + " |")
    helm_ret = {k: [x["helm_returned"] for x in v if x.get("helm_returned") is not None]
                for k, v in r["runs"].items()}
    rows.append("| helm itself returned | " + " | ".join(
        f"{statistics.median(helm_ret[k]):.2f}" if helm_ret.get(k) else "-" for k in kinds)
        + " |")
    rows += ["", f"Ratio to the floor: Helm 4 **{r['ratio_helm4_to_floor']:.2f}**"
             + (f", Helm 3 {r['ratio_helm3_to_floor']:.2f}" if "ratio_helm3_to_floor" in r
                else "") + f". Cold first install (images pulled from the node's mirror): "
             f"{r['cold']['returned']:.2f} s.", ""]
    return rows


def latency_real_md(r: dict[str, Any]) -> list[str]:
    rows = ["## 2c. Reading from vineyardd: a worker pod against a host process (real node)", "",
            header(r), "",
            f"A 256 MiB put, then {r['gets_per_run']} gets of it, by the same script in each "
            "reader, interleaved round by round (`bench/latency_real.py`); the chart installed "
            "with a hostPath socket. A get maps the blob once per client, so the gets after the "
            "first are the metadata round trip and building the array. Percentiles over all "
            "gets of all rounds; the put's median over rounds.", "",
            "| reader | get median ms | p10 | p90 | get vs host | put median ms | put vs host "
            "| python / numpy / vineyard |", "|---|---|---|---|---|---|---|---|"]
    for name, s in r["summary"].items():
        v = s["versions"]
        rows.append(f"| {name} | {s['get_median_ms']:.3f} | {s['get_p10_ms']:.3f} | "
                    f"{s['get_p90_ms']:.3f} | {s['get_ratio_to_host']:.2f} | "
                    f"{s['put_median_ms']:.1f} | {s['put_ratio_to_host']:.2f} | "
                    f"{v['python']} / {v['numpy']} / {v['vineyard']} |")
    return [*rows, ""]


def rollout_md(r: dict[str, Any]) -> list[str]:
    rows = ["## 3. Rollout cost", "", header(r), "",
            "`helm upgrade` changing `vineyard.size`; seconds until every vineyardd pod runs the "
            "new spec and is Ready; the most nodes without a Ready vineyardd at any moment "
            "(pod watch). OnDelete: the upgrade itself changes no pod; the time is a by-hand "
            "replacement in batches of 10% of the nodes. Fair floor: a bare DaemonSet (pause "
            "container, no probes) rolled under the same strategy by a PATCH of its template, "
            "interleaved in the same run (none for OnDelete).", "",
            "| nodes (run at, load) | strategy | runs | seconds (median) | fair floor (s) | "
            "ratio | pods/s | worst nodes without vineyardd | allowed | notes |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for s in r["sizes"]:
        for strategy, m in s["summary"].items():
            n = s["nodes"]
            allowed = (str(-(-n * int(strategy[:-1]) // 100)) if strategy.endswith("%")
                       else strategy if strategy != "OnDelete"
                       else f"batch {s['runs'][strategy][0]['batch']}")
            note = ""
            if strategy == "OnDelete":
                note = (f"updatedNumberScheduled {s['runs'][strategy][0]['updated_after_5s']} "
                        "5 s after the upgrade")
            ds_worst = [x.get("worst_unavailable_ds_status") for x in s["runs"][strategy]]
            if strategy != "OnDelete":
                note = f"DaemonSet status said at most {max(ds_worst)}"
            t = f"{m['median_s']:.1f}" if m["median_s"] else "capped"
            when = (f" ({s['date'][11:16]}, {s['load']['start'][0]:.1f})" if "date" in s
                    else "")
            floor = m.get("floor_median_s")
            ratio = (f"{m['median_s'] / floor:.2f}" if floor and m["median_s"] else "-")
            rows.append(f"| {n}{when} | {strategy} | {m['runs']} | {t} | "
                        f"{f'{floor:.1f}' if floor else '-'} | {ratio} | "
                        f"{m['median_pods_per_s']:.2f} | {m['worst_unavailable']} | {allowed} | "
                        f"{note} |")
    rows.append("")
    return rows


def cost_md(r: dict[str, Any]) -> list[str]:
    rows = ["## 4. Control-plane cost", "", header(r), "",
            "| nodes | objects in etcd (no events) | bytes in etcd | events | requests/s with "
            "the release | without | caused |", "|---|---|---|---|---|---|---|"]
    for s in r["sizes"]:
        ev = s["rounds"][0]["footprint"]["events"]
        rows.append(f"| {s['nodes']} | {s['median_objects']:.0f} | {s['median_bytes']:.0f} | "
                    f"{ev['objects']} ({ev['bytes']} B) | "
                    f"{s['median_rate_without'] + s['median_rate_caused']:.2f} | "
                    f"{s['median_rate_without']:.2f} | {s['median_rate_caused']:+.2f} |")
    if "per_node" in r:
        rows += ["", f"Per node: {r['per_node']['objects']:.2f} objects, "
                 f"{r['per_node']['bytes']:.0f} bytes; fixed: {r['fixed']['objects']:.0f} "
                 f"objects, {r['fixed']['bytes']:.0f} bytes."]
    big = r["sizes"][-1]["rounds"][0]["footprint"]["by_resource"]
    rows += ["", f"By resource at {r['sizes'][-1]['nodes']} nodes:", "",
             "| resource | objects | bytes |", "|---|---|---|"]
    rows += [f"| {k} | {v['objects']} | {v['bytes']} |" for k, v in big.items()]
    m = r["manifest"]
    rows += ["", f"Rendered manifest: {m['helm_template_bytes']} bytes of YAML from "
             f"`helm template` (with test pods), {m['objects']} objects without them.", ""]
    return rows


def mib(n: float) -> str:
    return f"{n / 2**20:.1f}"


def soak_md(r: dict[str, Any]) -> list[str]:
    real, check, eq, soak, summ = r["real"], r["check"], r["equivalence"], r["soak"], r["summary"]
    idle, rs = real["idle"], real["restart"]
    quota = summ["quota_bytes"]
    rows = ["## 6. etcd soak", "",
            f"{r['date']}; load average {r['load']['start'][0]:.1f} at start, "
            f"{r['load']['end'][0]:.1f} at end (1-minute; {r['machine']['cores']} cores); "
            f"{r['etcd_version']}, chart {r['versions']['chart']}, git {r['versions']['git']}; "
            f"`{' '.join(r['argv']) or '(defaults)'}`", "",
            "etcd runs with the chart's rendered flags (`helm template`), only the member's "
            "name, URLs and data directory made local: `" + " ".join(r["etcd_flags"]) + "`.", "",
            f"**Real heartbeat** ({real['daemons']} vineyardd 0.24.2 daemons with the chart's "
            f"flags, idle {idle['seconds']:.0f} s; `{real['watch_command']}` and etcd's "
            f"revision): every {real['heartbeat_interval_s']:g} s per instance, "
            f"**{idle['revisions_per_minute_per_instance']:g} revisions per minute per "
            f"instance**; one heartbeat, in order:", "",
            "| step | operation | key | value bytes | lease |", "|---|---|---|---|---|"]
    for i, (kind, key, size, lease) in enumerate(real["heartbeat_order"], 1):
        rows.append(f"| {i} | {kind} | `{key}` | {size} | {'yes' if lease else 'no'} |")
    rpcs = ", ".join(f"{k} {v:g}" for k, v in idle["rpcs_per_minute_per_instance"].items())
    rows += ["", f"with `{{prefix}}` = `{real['prefix']}`. RPCs per minute per instance: {rpcs} "
             f"(leases: TTL {real['lease_ttl_s']} s, each revoked: "
             f"{idle['lease_revokes_per_minute_per_instance']:g} revokes per minute); "
             f"{idle['raft_proposals_per_minute_per_instance']:g} raft proposals per minute per "
             f"instance. The `timestamp` value is {real['timestamp_value']}.",
             "", "A daemon's start (join) writes one txn: " + ", ".join(
                 f"`{key.replace('{prefix}/', '')}` ({size} B)"
                 for _, key, size, _ in real["join"]) + ", under the same lock.", ""]
    view, early = real.get("client_view", {}), real.get("client_view_15s", {})
    cl = real["cleanup"]
    removal = ("no removal seen" if not cl["removed"] else
               f"the first {cl['first_s']:.0f} s after its last heartbeat, then one every "
               f"{cl['every_s']:.0f} s, one at a time ({cl['removed']} removed, "
               f"{', '.join(f'{t:g}' for t in cl['removal_s_after_restart'])} s after the "
               "first restarts)" if cl["every_s"] else
               f"{cl['first_s']:.0f} s after its last heartbeat ({cl['removed']} removed)")
    left = len(rs["stale_instance_ids"])
    if left:
        left = f"{left} ({', '.join(map(str, rs['stale_bytes_per_instance']))} bytes each)"
    rows += [f"**Dead instances' entries.** {rs['how']}; watched "
             f"{rs['seconds_watched_after']:.0f} s. Every daemon start is a new instance id "
             f"(next_instance_id reached {rs['next_instance_id']}). A dead instance's entry (7 "
             f"keys, no lease) stays until a live daemon removes it, under the lock, in one txn"
             f": {removal}. Entries of dead instances left at the end: {left}. A live "
             f"daemon's client (`IPCClient.meta`) listed {len(early)} instances 15 s after "
             f"the first restarts, dead ones included, and {len(view)} at the end.", "",
             f"**Generator check** ({check['nodes']} nodes with the real daemons' identities, "
             f"{check['rounds']} heartbeats each, against the events above): exact replay "
             f"(one request per operation, as vineyardd) "
             f"{'matches' if check['ok'] else '**differs**'}: same operations per heartbeat, "
             f"same order, {check['exact']['revisions_per_heartbeat']:g} revisions per heartbeat,"
             f" same join{', same removal' if 'same_cleanup' in check['exact'] else ''}; "
             f"grouped (the soak's form) writes the same operations per heartbeat and the "
             f"same instance entries in "
             f"{check['grouped']['revisions_per_heartbeat']:g} revisions per heartbeat.", "",
             f"**Exact vs grouped** ({eq['nodes']} nodes, {eq['rounds']} heartbeats each, fresh "
             f"members): in use after the heartbeats {eq['exact']['db_size_in_use']} vs "
             f"{eq['grouped']['db_size_in_use']} bytes; the heartbeats' own growth grouped / "
             f"exact = {eq['heartbeats_in_use_grouped_over_exact']:.2f}. Rates: exact "
             f"{eq['exact']['heartbeats_per_s']} heartbeats/s (every one through the single "
             f"`meta_sync_lock`), grouped {eq['grouped']['heartbeats_per_s']}.", ""]
    hours = soak["simulated_hours"]
    rows += [f"**Soak**: {soak['nodes']} nodes for {hours:g} simulated hours = "
             f"**{soak['node_days']:g} node-days** in {soak['wall_s'] / 60:.1f} min "
             f"(x{soak['compression']:g}; {soak['heartbeats_per_s']} heartbeats/s"
             f"{'; stopped at the wall-time cap' if soak['stopped_early'] else ''}); etcd's "
             f"periodic compactor run on the simulated clock (retention "
             f"{soak['compactor']['retention_s'] / 3600:g} h, checked every "
             f"{soak['compactor']['retry_s'] / 60:g} min), `etcdctl defrag` at "
             f"{soak['defrag_at']} each simulated day, "
             f"{soak['restarts_per_day']:g} rolling restart(s) of every node per day "
             "(first at 04:00).", "",
             "| simulated hours | node-days at end | max dbSize MiB | max in use MiB | "
             "min in use MiB | etcd revision at end | vineyardd revisions at end |",
             "|---|---|---|---|---|---|---|"]
    for w in summ["per_6h"]:
        end_h = min(w["from_h"] + 6, hours)
        rows.append(f"| {w['from_h']:g}-{end_h:g} | {soak['nodes'] * end_h / 24:g} | "
                    f"{mib(w['max_db_size'])} | {mib(w['max_db_size_in_use'])} | "
                    f"{mib(w['min_db_size_in_use'])} | {w['revision_end']} | "
                    f"{w['vineyardd_revision_end']} |")
    compactions = [e for e in soak["events"] if "compact_to" in e]
    defrags = [e for e in soak["events"] if e.get("defrag")]
    live = soak["live_only"]
    rows += ["", f"Plateau (highest dbSize after the first 3 simulated hours): "
             f"**{mib(summ['plateau_db_size'])} MiB = "
             f"{summ['plateau_fraction_of_quota']:.0%} of the {mib(quota)} MiB quota**; highest "
             f"dbSize of the run {mib(summ['max_db_size'])} MiB, highest in use "
             f"{mib(summ['max_db_size_in_use'])} MiB; alarms at the end: "
             f"{soak['alarms'] or 'none'}. {len(compactions)} compactions (longest "
             f"{max((e['seconds'] for e in compactions), default=0):g} s, writes paused), "
             f"{len(defrags)} defragmentations (longest "
             f"{max((e['seconds'] for e in defrags), default=0):g} s). "
             f"{soak.get('cleanups', 0)} dead instances' entries removed, "
             f"{soak.get('cleanups_pending_at_end', 0)} still queued at the end (one every "
             f"{real['cleanup']['every_s'] or 0:.0f} s). 'vineyardd revisions' counts 3 per "
             f"heartbeat, join and removal, as the daemons spend them; the soak groups them, so "
             f"etcd's own revision grows slower.", "",
             f"At the end, everything compacted and defragmented (not the chart's schedule): "
             f"{live['keys']} keys, {live['key_and_value_bytes']} bytes of keys and values, "
             f"dbSize {mib(live['db_size'])} MiB; {soak['instances_with_keys_at_end']} instances "
             f"have entries for {soak['nodes']} nodes.", ""]
    return rows


def plotted_sizes(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The node counts of the time-to-ready plot: ready and scale runs that finished."""
    sizes = [s for fam in ("ready", "scale") if fam in results for s in results[fam]["sizes"]
             if "failed" not in s]
    return sorted({s["nodes"]: s for s in sizes}.values(), key=lambda s: s["nodes"])


def planned_plots(results: dict[str, Any]) -> list[str]:
    """The plots plots() draws from these results, in its order."""
    return [name for name, present in (("overhead.png", "overhead" in results),
                                       ("ready.png", bool(plotted_sizes(results))),
                                       ("rollout.png", "rollout" in results),
                                       ("cost.png", "cost" in results),
                                       ("etcd_soak.png", "etcd-soak" in results)) if present]


def plots(results: dict[str, Any]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    PLOTS.mkdir(exist_ok=True)
    made = []
    if "overhead" in results:
        r = results["overhead"]
        pairs = [("render()", r["render"]["render()"], "helm template",
                  r["render"]["helm template"])]
        if "install" in r:
            pairs.append(("install(wait)", r["install"]["install(wait=True)"],
                          "helm install --wait", r["install"]["helm install --wait"]))
        st = r["startup"]
        pairs.append(("import (fresh python)", st["python -c 'import vineyard_helm'"],
                      "python -c pass", st["python -c pass"]))
        pairs.append(("vineyard-helm --version", st["vineyard-helm --version"],
                      "helm version", st["helm version"]))
        fig, ax = plt.subplots(figsize=(8, 4))
        for i, (_, c, _, b) in enumerate(pairs):
            ax.bar(i - 0.2, c["wall"]["median"] * 1000, 0.4, color="tab:blue",
                   label="vineyard_helm" if i == 0 else None)
            ax.bar(i + 0.2, b["wall"]["median"] * 1000, 0.4, color="tab:gray",
                   label="baseline" if i == 0 else None)
            ax.text(i, max(c["wall"]["median"], b["wall"]["median"]) * 1000,
                    f"x{c['wall']['median'] / b['wall']['median']:.2f}", ha="center",
                    va="bottom")
        ax.set_xticks(range(len(pairs)), [f"{cn}\nvs {bn}" for cn, _, bn, _ in pairs],
                      fontsize=8)
        ax.set_ylabel("median wall ms")
        ax.set_title("Wrapper overhead (interleaved, medians)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(PLOTS / "overhead.png", dpi=100)
        made.append("overhead.png")
    sizes = plotted_sizes(results)
    if sizes:
        fig, ax = plt.subplots(figsize=(8, 4))
        x = [s["nodes"] for s in sizes]
        for key, label in MILESTONE_NAMES:
            ax.plot(x, [s["median_install"].get(key) for s in sizes], marker="o", label=label)
        ax.plot(x, [s["median_floor"]["all_ready"] for s in sizes], marker="s", ls="--",
                color="black", label="fair floor: bare DaemonSet all Ready")
        ax.plot(x, [s.get("median_direct", {}).get("all_ready") for s in sizes], marker="^",
                ls=":", color="grey", label="direct pods (lower reference)")
        ax.set_xscale("log")
        ax.set_xlabel("fake nodes")
        ax.set_ylabel("seconds from the install call")
        ax.set_title("Time to ready (median)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(PLOTS / "ready.png", dpi=100)
        made.append("ready.png")
    if "rollout" in results:
        big = results["rollout"]["sizes"][-1]
        fig, ax = plt.subplots(figsize=(8, 4))
        for strategy, runs in big["runs"].items():
            tl = runs[0]["timeline"]
            ax.step([t for t, _ in tl], [n for _, n in tl], where="post",
                    label=f"{strategy}")
        ax.set_xlabel("seconds since helm upgrade")
        ax.set_ylabel("nodes without a Ready vineyardd")
        ax.set_title(f"Rollout on {big['nodes']} nodes (first run per strategy)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(PLOTS / "rollout.png", dpi=100)
        made.append("rollout.png")
    if "cost" in results:
        sizes = results["cost"]["sizes"]
        kinds = sorted({k for s in sizes for k in s["rounds"][0]["footprint"]["by_resource"]})
        fig, ax = plt.subplots(figsize=(8, 4))
        bottom = [0.0] * len(sizes)
        for kind in kinds:
            vals = [s["rounds"][0]["footprint"]["by_resource"].get(kind, {}).get("bytes", 0) /
                    1024 for s in sizes]
            ax.bar([str(s["nodes"]) for s in sizes], vals, bottom=bottom, label=kind)
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
        ax.set_xlabel("fake nodes")
        ax.set_ylabel("KiB stored in etcd")
        ax.set_title("etcd footprint of one release, by resource")
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        fig.savefig(PLOTS / "cost.png", dpi=100)
        made.append("cost.png")
    if "etcd-soak" in results:
        soak = results["etcd-soak"]["soak"]
        col = {c: i for i, c in enumerate(soak["columns"])}
        rows = soak["samples"]
        x = [row[col["sim_h"]] for row in rows]
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True,
                                          gridspec_kw={"height_ratios": [2, 1]})
        top.plot(x, [row[col["db_size"]] / 2**20 for row in rows], label="dbSize")
        top.plot(x, [row[col["db_size_in_use"]] / 2**20 for row in rows], label="dbSizeInUse")
        quota = results["etcd-soak"]["summary"]["quota_bytes"] / 2**20
        top.axhline(quota, color="red", ls="--", label=f"quota ({quota:.0f} MiB)")
        marks = {"defrag": ("purple", "defrag"), "rolling_restart": ("green", "restart of "
                                                                        "every node")}
        for key, (color, label) in marks.items():
            for i, e in enumerate(x for x in soak["events"] if x.get(key)):
                top.axvline(e["sim_h"], color=color, ls=":", lw=1,
                            label=label if i == 0 else None)
        top.set_ylim(0, quota * 1.1)
        top.set_ylabel("MiB")
        top.set_title(f"etcd, {soak['nodes']} nodes' vineyardd: {soak['node_days']:g} "
                      f"node-days")
        top.legend(fontsize=8, loc="lower right", ncol=3)
        bottom.plot(x, [row[col["vineyardd_revision"]] / 1e6 for row in rows],
                    label="vineyardd revisions (3 per heartbeat)")
        bottom.plot(x, [row[col["revision"]] / 1e6 for row in rows],
                    label="etcd revision (heartbeats grouped)")
        bottom.set_ylabel("millions")
        bottom.set_xlabel("simulated hours")
        bottom.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(PLOTS / "etcd_soak.png", dpi=100)
        made.append("etcd_soak.png")
    plt.close("all")
    assert made == planned_plots(results), (made, planned_plots(results))
    return made


def markdown(results: dict[str, Any], plot_names: list[str]) -> str:
    md = ["# Benchmark results", "",
          "Written by `bench/report.py` from `bench/results.json`; how to run: "
          "[README.md](README.md). Every figure is a median over interleaved runs on a "
          "shared 2-core machine; each section names its date, versions and load.", ""]
    if "overhead" in results:
        md += overhead_md(results["overhead"])
        if "overhead-before" in results:
            md += before_after_md(results["overhead-before"], results["overhead"])
            md += overhead_md(results["overhead-before"],
                              "### 1b. Wrapper overhead before (the same script, the earlier "
                              "package)")
    if "ready" in results:
        md += ready_md(results["ready"], "## 2. Time to ready")
    if "ready_real" in results:
        md += ready_real_md(results["ready_real"])
    if "latency_real" in results:
        md += latency_real_md(results["latency_real"])
    if "rollout" in results:
        md += rollout_md(results["rollout"])
    if "cost" in results:
        md += cost_md(results["cost"])
    if "scale" in results:
        md += scale_md(results["scale"])
    if "etcd-soak" in results:
        md += soak_md(results["etcd-soak"])
    md += ["## Plots", ""] + [f"![{m}](plots/{m})" for m in plot_names] + [""]
    return "\n".join(md)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS_JSON, help="%(default)s")
    parser.add_argument("--out", type=Path, default=BENCH / "results.md", help="%(default)s")
    parser.add_argument("--no-plots", action="store_true",
                        help="draw no plot (the markdown still links the ones plots() draws)")
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text())
    made = planned_plots(results) if args.no_plots else plots(results)
    args.out.write_text(markdown(results, made))
    print(f"wrote {args.out}" + ("" if args.no_plots else f" and {len(made)} plots in {PLOTS}"))


if __name__ == "__main__":
    main()
