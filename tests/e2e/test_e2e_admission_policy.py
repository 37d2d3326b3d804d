"""admission.enabled on the real API server (Kubernetes 1.35, kwok nodes): who may use the
socket is decided at pod creation by the chart's ValidatingAdmissionPolicy (chart README, "Who
may use the socket"). kwok runs no containers; admission is the whole story here, and the
real-node suite shows an admitted worker connecting.

Four releases, installed side by side once for the module:

- `guarded` in hostPath mode: allowed are pods in namespaces labelled CLIENT_LABEL=true that
  carry POD_LABEL;
- `guarded` in persistentVolumeClaim mode: allowed are pods running as service account
  `<its namespace>/worker`;
- `picky` (hostPath): a namespaceSelector with every operator, to compare the policy's verdicts
  with the API server's own label selector;
- `trial` (hostPath, action Warn), uninstalled by its test.

Policies are cluster-wide: each release gets a socket group of its own, drawn at random, and a
socket directory under its own namespace, so nothing else on the cluster is refused because of
them; every release is uninstalled at the end (deleting a namespace would leave the
cluster-scoped policy behind).
"""
from __future__ import annotations

import json
import random
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from localcluster import Cluster
from tests.e2e.e2e_kube import helm_test_pods_complete, in_parallel, install_args
from tests.support.helm import run_helm
from tests.support.kube import events, kube, pods, statefulset_ready, wait_daemonset_settled
from tests.support.wait import wait_for

RUN = uuid.uuid4().hex[:6]
CLIENT_LABEL = f"e2e.vineyard-helm/socket-client-{RUN}"
POD_LABEL = {"vineyard.v6d.io/client": "true"}
#: One socket group per release, from a range no other test uses.
GIDS = dict(zip(("hostPath", "persistentVolumeClaim", "picky", "trial"),
                random.sample(range(20000, 60000), 4), strict=True))
VAP = "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies"
BINDINGS = "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings"
#: The label selector of `picky`, in the policy's values and in kubectl's syntax.
SELECTOR_KEYS = {k: f"e2e.vineyard-helm/{k}-{RUN}" for k in ("team", "env", "tier", "client",
                                                               "frozen")}
PICKY_SELECTOR = {
    "matchLabels": {SELECTOR_KEYS["team"]: "ml"},
    "matchExpressions": [
        {"key": SELECTOR_KEYS["env"], "operator": "In", "values": ["prod", "dev"]},
        {"key": SELECTOR_KEYS["tier"], "operator": "NotIn", "values": ["batch"]},
        {"key": SELECTOR_KEYS["client"], "operator": "Exists"},
        {"key": SELECTOR_KEYS["frozen"], "operator": "DoesNotExist"},
    ],
}
PICKY_SELECTOR_TEXT = (f"{SELECTOR_KEYS['team']}=ml,{SELECTOR_KEYS['env']} in (prod,dev),"
                       f"{SELECTOR_KEYS['tier']} notin (batch),{SELECTOR_KEYS['client']},"
                       f"!{SELECTOR_KEYS['frozen']}")


@dataclass
class Release:
    name: str
    namespace: str
    mode: str
    gid: int

    @property
    def fullname(self) -> str:
        return self.name if "vineyard" in self.name else f"{self.name}-vineyard"

    @property
    def policy(self) -> str:
        return f"{self.fullname}.{self.namespace}.socket.v6d.io"

    @property
    def socket_dir(self) -> str:
        return f"/var/run/vineyard/{self.namespace}/{self.name}"

    @property
    def claim(self) -> str:
        return f"{self.fullname}-socket"

    def refusal(self, pod: str, what: str, allowed: str) -> str:
        """The policy's message, as the chart README quotes it."""
        return (f'vineyard release "{self.name}" (namespace "{self.namespace}") refused pod '
                f'"{pod}": {what}, and only allowed pods may. Allowed: the release\'s own pods, '
                f"and pods {allowed}. To be allowed, meet every one of those conditions, or have "
                f"the release's admission.allowed values include the pod (helm upgrade "
                f"{self.name} -n {self.namespace}).")


@dataclass
class Setup:
    host: Release
    pvc: Release
    picky: Release
    trial: Release
    clients: str    # labelled CLIENT_LABEL=true: allowed by `host` (with POD_LABEL)
    stranger: str   # no labels: allowed by nobody
    env: dict[str, str]

    def releases(self) -> list[Release]:
        return [self.host, self.pvc, self.picky, self.trial]


# ---- pods and what the API server says to them ---------------------------------------------


@dataclass
class Verdict:
    admitted: bool
    message: str          # the policy's refusal, after "denied request: "; "" when admitted
    warnings: list[str]   # "Warning: ..." lines kubectl printed


def worker(name: str, *, groups: tuple[int, ...] = (), labels: dict[str, str] | None = None,
           service_account: str | None = None, volumes: list[dict] | None = None,
           mounts: list[dict] | None = None, **spec: Any) -> dict:
    """A workload pod: one container, optionally the socket group, volumes and mounts."""
    container: dict[str, Any] = {"name": "worker", "image": "worker:1"}
    if mounts:
        container["volumeMounts"] = mounts
    pod_spec: dict[str, Any] = {"containers": [container], **spec}
    if groups:
        pod_spec["securityContext"] = {"supplementalGroups": list(groups)}
    if service_account:
        pod_spec["serviceAccountName"] = service_account
    if volumes:
        pod_spec["volumes"] = volumes
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels or {}}, "spec": pod_spec}


def host_volume(path: str, name: str = "sock") -> dict:
    return {"name": name, "hostPath": {"path": path}}


def mount(name: str = "sock", **extra: str) -> dict:
    return {"name": name, "mountPath": "/var/run/vineyard", **extra}


def submit(cluster: Cluster, namespace: str, obj: dict, *, dry_run: bool = True) -> Verdict:
    """Creates `obj` (a server-side dry run unless dry_run=False: admission runs either way)."""
    args = ["create", "-n", namespace, "-f", "-", "-o", "name"]
    if dry_run:
        args.append("--dry-run=server")
    result = cluster.kubectl(*args, input=json.dumps(obj), check=False)
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning: ")]
    if result.returncode == 0:
        return Verdict(True, "", warnings)
    assert "denied request: " in result.stderr, result.stderr
    return Verdict(False, result.stderr.split("denied request: ", 1)[1].strip(), warnings)


def refused(cluster: Cluster, namespace: str, obj: dict) -> str:
    verdict = submit(cluster, namespace, obj)
    assert not verdict.admitted, f"{obj['metadata']['name']} was admitted"
    return verdict.message


def admitted(cluster: Cluster, namespace: str, obj: dict, *, dry_run: bool = True) -> None:
    verdict = submit(cluster, namespace, obj, dry_run=dry_run)
    assert verdict.admitted, verdict.message


# ---- the releases ----------------------------------------------------------------------------


def install(env: dict[str, str], release: Release, values: dict, tmp: Path,
            scenario: str | None = None) -> None:
    values_file = tmp / f"{release.namespace}-{release.name}.json"
    values_file.write_text(json.dumps(values))
    run_helm(env, *install_args(release.name, release.namespace, scenario=scenario,
                                extra=["--values", str(values_file)]))


def admission_values(release: Release, allowed: dict, action: str = "Deny") -> dict:
    return {"admission": {"enabled": True, "action": action, "allowed": allowed},
            "socket": {"access": {"groupId": release.gid}}}


def policy_enforced(cluster: Cluster, release: Release, namespace: str) -> bool:
    """The API server refuses (or, for Warn, warns about) a pod with the release's group: the
    policy has reached its admission plugin, which follows policies a moment after they are
    created."""
    verdict = submit(cluster, namespace, worker(f"probe-{release.gid}", groups=(release.gid,)))
    return not verdict.admitted or bool(verdict.warnings)


@pytest.fixture(scope="module")
def setup(cluster: Cluster, e2e_env: dict[str, str], make_namespace, make_pv,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("admission-values")
    s = Setup(host=Release("guarded", make_namespace("vap-host"), "hostPath",
                           GIDS["hostPath"]),
              pvc=Release("guarded", make_namespace("vap-pvc"), "persistentVolumeClaim",
                          GIDS["persistentVolumeClaim"]),
              picky=Release("picky", make_namespace("vap-picky"), "hostPath", GIDS["picky"]),
              trial=Release("trial", make_namespace("vap-trial"), "hostPath", GIDS["trial"]),
              clients=make_namespace("vap-clients", {CLIENT_LABEL: "true"}),
              stranger=make_namespace("vap-stranger"), env=e2e_env)
    cluster.kubectl("create", "serviceaccount", "worker", "-n", s.pvc.namespace)
    make_pv(storage_class="standard", access_modes=["ReadWriteMany"], size="16Mi",
            claim=(s.pvc.namespace, s.pvc.claim))
    jobs = {
        "host": lambda: install(e2e_env, s.host, admission_values(s.host, {
            "namespaceSelector": {"matchLabels": {CLIENT_LABEL: "true"}},
            "podSelector": {"matchLabels": POD_LABEL}}), tmp),
        "pvc": lambda: install(e2e_env, s.pvc, admission_values(s.pvc, {
            "serviceAccounts": [f"{s.pvc.namespace}/worker"]}), tmp, scenario="pvc"),
        "picky": lambda: install(e2e_env, s.picky, admission_values(s.picky, {
            "namespaceSelector": PICKY_SELECTOR}), tmp),
        "trial": lambda: install(e2e_env, s.trial, admission_values(s.trial, {
            "serviceAccounts": ["nowhere/nobody"]}, action="Warn"), tmp),
    }
    try:
        in_parallel(jobs)
        for release in s.releases():
            wait_for(lambda release=release: policy_enforced(cluster, release, s.stranger),
                     f"policy {release.policy} in force", timeout=60)
        yield s
    finally:
        # No --wait: the socket claim outlives the uninstall while the allowed worker, deleted
        # with its namespace, still mounts it. The policies go at once.
        for release in s.releases():
            run_helm(e2e_env, "uninstall", release.name, "-n", release.namespace, check=False)


def by_mode(setup: Setup, mode: str) -> Release:
    return setup.host if mode == "hostPath" else setup.pvc


MODES = ["hostPath", "persistentVolumeClaim"]
HOST_ALLOWED = (f"in a namespace labelled {CLIENT_LABEL}=true"
                " and labelled vineyard.v6d.io/client=true")


def pvc_allowed(release: Release) -> str:
    return f"running as service account {release.namespace}/worker"


# ---- the policy and the chart's own pods -----------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_the_api_server_accepts_the_policy_and_its_cel_type_checks(
    cluster: Cluster, setup: Setup, mode: str
) -> None:
    release = by_mode(setup, mode)
    policy = kube(cluster).get(f"{VAP}/{release.policy}")
    binding = kube(cluster).get(f"{BINDINGS}/{release.policy}")
    assert binding["spec"] == {"policyName": release.policy, "validationActions": ["Deny"]}
    wait_for(lambda: kube(cluster).get(f"{VAP}/{release.policy}").get("status", {})
             .get("observedGeneration") == policy["metadata"]["generation"],
             "the API server type-checked the policy")
    status = kube(cluster).get(f"{VAP}/{release.policy}")["status"]
    assert not status.get("typeChecking", {}).get("expressionWarnings"), status


@pytest.mark.parametrize("mode", MODES)
def test_the_charts_own_pods_are_admitted(cluster: Cluster, setup: Setup, mode: str) -> None:
    release = by_mode(setup, mode)
    wait_daemonset_settled(cluster, release.namespace, release.fullname)
    wait_for(lambda: statefulset_ready(cluster, release.namespace, f"{release.fullname}-etcd", 1),
             "etcd ready")
    failed = [e["message"] for e in events(cluster, release.namespace)
              if e.get("reason") == "FailedCreate"]
    assert failed == []
    # A vineyardd pod replaced by its DaemonSet is admitted again.
    victim = pods(cluster, release.namespace, "app.kubernetes.io/component=vineyardd")[0]
    kube(cluster).delete(f"/api/v1/namespaces/{release.namespace}/pods/{victim['metadata']['name']}")
    wait_daemonset_settled(cluster, release.namespace, release.fullname)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("mode", MODES)
def test_helm_test_pods_are_admitted(cluster: Cluster, setup: Setup, mode: str) -> None:
    release = by_mode(setup, mode)
    with helm_test_pods_complete(cluster, release.namespace) as completed:
        run_helm(setup.env, "test", release.name, "-n", release.namespace, "--timeout", "5m")
    # The data path writers are a Job's pods (kwok completes those itself); its reader, "get", is
    # completed here like the others: what this shows is admission, not the data path.
    assert sorted(name.rsplit("-", 1)[1] for name in completed) == ["etcd", "get", "rpc"], completed


# ---- allowed and refused workers -------------------------------------------------------------


def test_an_allowed_pod_is_admitted_in_hostpath_mode(cluster: Cluster, setup: Setup) -> None:
    release = setup.host
    pod = worker("allowed-worker", groups=(release.gid,), labels=POD_LABEL,
                 volumes=[host_volume(release.socket_dir)], mounts=[mount()])
    admitted(cluster, setup.clients, pod, dry_run=False)
    assert kube(cluster).get_or_none(f"/api/v1/namespaces/{setup.clients}/pods/allowed-worker")


def test_an_allowed_pod_is_admitted_in_pvc_mode(cluster: Cluster, setup: Setup) -> None:
    release = setup.pvc
    pod = worker("allowed-worker", groups=(release.gid,), service_account="worker",
                 volumes=[{"name": "sock", "persistentVolumeClaim": {"claimName": release.claim}}],
                 mounts=[mount()])
    admitted(cluster, release.namespace, pod, dry_run=False)
    assert kube(cluster).get_or_none(f"/api/v1/namespaces/{release.namespace}/pods/allowed-worker")


@pytest.mark.parametrize("mode", MODES)
def test_a_pod_with_the_group_but_without_permission_is_refused(
    cluster: Cluster, setup: Setup, mode: str
) -> None:
    release = by_mode(setup, mode)
    allowed = HOST_ALLOWED if mode == "hostPath" else pvc_allowed(release)
    what = (f"it carries the release's socket group {release.gid} "
            "(spec.securityContext.supplementalGroups)")
    # In a namespace nobody allows, and (for the PVC release) in the release's own namespace
    # under the default service account: the group check covers every namespace.
    for namespace in (setup.stranger, release.namespace):
        pod = worker("stranger", groups=(release.gid,))
        assert refused(cluster, namespace, pod) == release.refusal(
            f"{namespace}/stranger", what, allowed)
    assert kube(cluster).get_or_none(f"/api/v1/namespaces/{setup.stranger}/pods/stranger") is None


def test_the_group_is_refused_wherever_a_pod_asks_for_it(cluster: Cluster, setup: Setup) -> None:
    gid = setup.host.gid
    cases = {
        "spec.securityContext.fsGroup, spec.securityContext.runAsGroup": worker(
            "fs", securityContext={"fsGroup": gid, "runAsGroup": gid}),
        "runAsGroup of container worker": worker("c"),
        "runAsGroup of init container init": worker(
            "i", initContainers=[{"name": "init", "image": "i:1",
                                  "securityContext": {"runAsGroup": gid}}]),
    }
    cases["runAsGroup of container worker"]["spec"]["containers"][0]["securityContext"] = {
        "runAsGroup": gid}
    for fields, pod in cases.items():
        message = refused(cluster, setup.stranger, pod)
        assert f"it carries the release's socket group {gid} ({fields}), and" in message
    # In an allowed namespace, the pod label is still required.
    message = refused(cluster, setup.clients, worker("unlabelled", groups=(gid,)))
    assert f'refused pod "{setup.clients}/unlabelled"' in message


def test_a_pod_mounting_the_host_path_directly_is_refused(cluster: Cluster, setup: Setup) -> None:
    release = setup.host
    pod = worker("direct", volumes=[host_volume(release.socket_dir)], mounts=[mount()])
    assert refused(cluster, setup.stranger, pod) == release.refusal(
        f"{setup.stranger}/direct",
        f"it mounts the release's socket directory {release.socket_dir} "
        f'(hostPath volume "sock" at {release.socket_dir})', HOST_ALLOWED)


@pytest.mark.parametrize(
    ("case", "volume", "extra", "described"),
    [
        ("socket-file", "{dir}/vineyard.sock", {}, "at {dir}/vineyard.sock"),
        ("run-twin", "{run}//./", {}, "at {run}"),
        ("subpath", "/", {"subPath": "{rel}/vineyard.sock"},
         "at / with a subPath into the directory"),
        ("subpathexpr", "/var", {"subPathExpr": "$(POD_NAME)"},
         "at /var with a subPathExpr, which admission cannot resolve"),
    ],
)
def test_every_way_into_the_socket_directory_is_refused(
    cluster: Cluster, setup: Setup, case: str, volume: str, extra: dict, described: str
) -> None:
    """The socket file itself (the kubelet bind-mounts it: the directory's mode no longer
    applies), the /run spelling of /var/run, a subPath through a host path above it."""
    directory = setup.host.socket_dir
    fill = {"dir": directory, "run": directory.removeprefix("/var"), "rel": directory.lstrip("/")}
    pod = worker(case, volumes=[host_volume(volume.format(**fill))],
                 mounts=[mount(**{k: v.format(**fill) for k, v in extra.items()})])
    message = refused(cluster, setup.stranger, pod)
    assert f'(hostPath volume "sock" {described.format(**fill)})' in message


def test_a_pod_mounting_the_claim_without_permission_is_refused(
    cluster: Cluster, setup: Setup
) -> None:
    release = setup.pvc
    pod = worker("borrower", volumes=[{"name": "sock",
                                       "persistentVolumeClaim": {"claimName": release.claim}}],
                 mounts=[mount()])
    assert refused(cluster, release.namespace, pod) == release.refusal(
        f"{release.namespace}/borrower",
        f'it mounts the release\'s socket claim "{release.claim}" (volume "sock")',
        pvc_allowed(release))


def test_pods_that_do_not_touch_the_socket_are_admitted(cluster: Cluster, setup: Setup) -> None:
    other_dir = f"/var/run/vineyard/{setup.host.namespace}/guarded-other"
    for pod in (
        worker("plain"),
        worker("other-group", groups=(2000, 19999)),
        worker("whole-root", volumes=[host_volume("/")], mounts=[mount()]),
        worker("beside", volumes=[host_volume(other_dir)], mounts=[mount()]),
        worker("root-subpath", volumes=[host_volume("/")],
               mounts=[mount(subPath="var/run/vineyard")]),
    ):
        admitted(cluster, setup.stranger, pod)


def test_pods_made_by_a_controller_are_refused_and_it_says_why(
    cluster: Cluster, setup: Setup
) -> None:
    gid = setup.host.gid
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "sneaky"},
           "spec": {"backoffLimit": 0, "template": {"spec": {
               "restartPolicy": "Never", "securityContext": {"supplementalGroups": [gid]},
               "containers": [{"name": "worker", "image": "worker:1"}]}}}}
    admitted(cluster, setup.stranger, job, dry_run=False)

    def refusal_event() -> str | None:
        return next((e["message"] for e in events(cluster, setup.stranger)
                     if e.get("reason") == "FailedCreate"
                     and e["involvedObject"].get("name") == "sneaky"), None)

    message = wait_for(refusal_event, "the Job's FailedCreate event")
    assert f'vineyard release "guarded" (namespace "{setup.host.namespace}") refused pod' in message
    assert f"it carries the release's socket group {gid}" in message
    assert pods(cluster, setup.stranger, "job-name=sneaky") == []


def test_ephemeral_containers_with_the_group_are_refused(cluster: Cluster, setup: Setup) -> None:
    admitted(cluster, setup.stranger, worker("debuggee"), dry_run=False)
    debugger = {"name": "debugger", "image": "debug:1",
                "securityContext": {"runAsGroup": setup.host.gid}}
    patch = {"spec": {"ephemeralContainers": [debugger]}}
    result = cluster.kubectl("patch", "pod", "debuggee", "-n", setup.stranger,
                             "--subresource", "ephemeralcontainers", "--type", "strategic",
                             "-p", json.dumps(patch), check=False)
    assert result.returncode != 0
    assert (f"it carries the release's socket group {setup.host.gid} "
            "(runAsGroup of ephemeral container debugger)") in result.stderr


# ---- the selector, the Warn action, uninstall ------------------------------------------------


def test_the_namespace_selector_agrees_with_the_api_servers_own(
    cluster: Cluster, setup: Setup, make_namespace
) -> None:
    k = SELECTOR_KEYS
    label_sets = [
        {k["team"]: "ml", k["env"]: "prod", k["client"]: ""},                   # matches
        {k["team"]: "ml", k["env"]: "dev", k["client"]: "y", k["tier"]: "web"},  # matches
        {k["team"]: "ml", k["env"]: "prod"},                                     # no client
        {k["team"]: "ml", k["env"]: "test", k["client"]: ""},                    # env not in
        {k["team"]: "ml", k["env"]: "prod", k["client"]: "", k["tier"]: "batch"},  # tier in
        {k["team"]: "ml", k["env"]: "prod", k["client"]: "", k["frozen"]: "x"},  # frozen
        {k["team"]: "ai", k["env"]: "prod", k["client"]: ""},                    # team
        {},
    ]
    namespaces = [make_namespace("vap-sel", labels) for labels in label_sets]
    selected = {n["metadata"]["name"] for n in kube(cluster).get(
        "/api/v1/namespaces?labelSelector=" + urllib.parse.quote(PICKY_SELECTOR_TEXT))["items"]}
    assert selected == set(namespaces[:2])
    release = setup.picky
    for namespace in namespaces:
        verdict = submit(cluster, namespace, worker("w", groups=(release.gid,)))
        assert verdict.admitted == (namespace in selected), (namespace, verdict.message)
        if not verdict.admitted:
            assert f"pods in a namespace labelled {PICKY_SELECTOR_TEXT}." in verdict.message


def test_warn_admits_with_the_refusal_as_a_warning_and_uninstall_removes_the_policy(
    cluster: Cluster, setup: Setup
) -> None:
    release = setup.trial
    binding = kube(cluster).get(f"{BINDINGS}/{release.policy}")
    assert binding["spec"]["validationActions"] == ["Warn"]
    verdict = submit(cluster, setup.stranger, worker("tried", groups=(release.gid,)))
    assert verdict.admitted
    expected = release.refusal(
        f"{setup.stranger}/tried",
        f"it carries the release's socket group {release.gid} "
        "(spec.securityContext.supplementalGroups)", "running as service account nowhere/nobody")
    assert any(expected in w for w in verdict.warnings), verdict.warnings

    run_helm(setup.env, "uninstall", release.name, "-n", release.namespace, "--wait")
    assert kube(cluster).get_or_none(f"{VAP}/{release.policy}") is None
    assert kube(cluster).get_or_none(f"{BINDINGS}/{release.policy}") is None
    wait_for(lambda: not submit(cluster, setup.stranger,
                                worker("after", groups=(release.gid,))).warnings,
             "no warning once the policy is gone", timeout=60)
