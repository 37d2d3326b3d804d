"""Upstream's start_vineyardd(): every argument reaches the manifest rendered by real helm, as
a plain table of chart values; the chart decides the rest (socket directory, memory)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import vineyard_helm
from vineyard_helm import InvalidValuesError, Release, Resource
from vineyard_helm.deploy import kubernetes as upstream
from vineyard_helm.deploy.kubernetes import (
    delete_kubernetes_objects,
    image_values,
    pull_secret_names,
    start_vineyardd,
)
from vineyard_helm.helm_json import socket_location


class Captured:
    values: list[dict[str, Any]]
    options: dict[str, Any]


@pytest.fixture
def captured_install(monkeypatch: pytest.MonkeyPatch) -> Captured:
    """Replace only the final install() call: keep what start_vineyardd would install."""
    captured = Captured()

    def fake_install(values: list[dict[str, Any]], **options: Any) -> Release:
        captured.values, captured.options = values, options
        resource = Resource(
            "DaemonSet", options["release"], options["namespace"], options["release"]
        )
        return Release(
            options["release"], options["namespace"], 1, "deployed", resources=(resource,)
        )

    monkeypatch.setattr(upstream, "install", fake_install)
    return captured


def rendered(captured: Captured, helm: str) -> dict[tuple[str, str], dict[str, Any]]:
    manifests = vineyard_helm.render(
        captured.values,
        release=captured.options["release"],
        namespace=captured.options["namespace"],
        helm=helm,
    )
    return {(m["kind"], m["metadata"]["name"]): m for m in manifests}


def vineyardd_container(
    objects: dict[tuple[str, str], dict[str, Any]], name: str
) -> dict[str, Any]:
    pod = objects[("DaemonSet", name)]["spec"]["template"]["spec"]
    return next(c for c in pod["containers"] if c["name"] == "vineyardd")


def test_every_argument_reaches_the_rendered_manifest(
    helm: str, captured_install: Captured
) -> None:
    resources = start_vineyardd(
        namespace="analytics",
        size="384Mi",
        socket="/data/v6d/shared.sock",
        rpc_socket_port=9700,
        vineyard_image="registry.example:5000/v6d/vineyardd:v0.24.2",
        vineyard_image_pull_policy="Always",
        vineyard_image_pull_secrets="regcred, other",
        etcd={"replicaCount": 3},
        vineyard={"compression": False},
    )
    assert resources == [Resource("DaemonSet", "vineyard", "analytics", "vineyard")]
    assert captured_install.options["namespace"] == "analytics"
    assert captured_install.options["wait"] is True

    objects = rendered(captured_install, helm)
    daemonset = objects[("DaemonSet", "vineyard")]
    pod = daemonset["spec"]["template"]["spec"]
    container = vineyardd_container(objects, "vineyard")
    args = container["args"]
    # namespace
    assert {m["metadata"].get("namespace") for m in objects.values()} == {"analytics"}
    assert any("etcd-for-vineyard.analytics.svc" in a for a in args)
    # size (and the memory the pod may use for it), and extra values deep-merged next to it
    assert "--size=384Mi" in args
    assert container["resources"]["limits"]["memory"] == "640Mi"
    assert container["resources"]["requests"]["memory"] == "640Mi"
    assert "--compression=false" in args
    # socket: hostPath dir + file name
    socket_volume = next(v for v in pod["volumes"] if "hostPath" in v)
    assert socket_volume["hostPath"]["path"] == "/data/v6d"
    assert any(a.startswith("--socket=") and a.endswith("/shared.sock") for a in args)
    # rpc_socket_port: vineyardd flag, container port and the Service
    assert "--rpc_socket_port=9700" in args
    assert 9700 in [p["containerPort"] for p in container.get("ports", [])]
    service_ports = objects[("Service", "vineyard-rpc")]["spec"]["ports"]
    assert [p["port"] for p in service_ports] == [9700]
    # image, pull policy, pull secrets
    assert container["image"] == "registry.example:5000/v6d/vineyardd:v0.24.2"
    assert container["imagePullPolicy"] == "Always"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}, {"name": "other"}]
    # extra values: etcd members
    assert objects[("StatefulSet", "vineyard-etcd")]["spec"]["replicas"] == 3


def test_defaults_match_upstreams_meaning(helm: str, captured_install: Captured) -> None:
    start_vineyardd()
    objects = rendered(captured_install, helm)
    container = vineyardd_container(objects, "vineyard")
    pod = objects[("DaemonSet", "vineyard")]["spec"]["template"]["spec"]
    assert "--size=512Mi" in container["args"]
    assert "--rpc_socket_port=9600" in container["args"]
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert "imagePullSecrets" not in pod
    # /var/run is too broad to mount: a dedicated subdirectory instead
    socket_volume = next(v for v in pod["volumes"] if "hostPath" in v)
    assert socket_volume["hostPath"]["path"] == "/var/run/vineyard/vineyard/vineyard"
    assert any(a.endswith("/vineyard.sock") for a in container["args"] if a.startswith("--socket="))


def test_image_digest_reaches_the_manifest(helm: str, captured_install: Captured) -> None:
    digest = "sha256:" + "ab" * 32
    start_vineyardd(vineyard_image=f"docker.io/vineyardcloudnative/vineyardd@{digest}")
    container = vineyardd_container(rendered(captured_install, helm), "vineyard")
    assert container["image"] == f"docker.io/vineyardcloudnative/vineyardd@{digest}"


def test_release_and_install_options_are_not_chart_values(captured_install: Captured) -> None:
    start_vineyardd(release="v6d", wait=False, timeout="30s", helm="/usr/bin/helm")
    assert captured_install.options == {
        "release": "v6d",
        "namespace": "vineyard",
        "wait": False,
        "timeout": "30s",
        "helm": "/usr/bin/helm",
    }
    assert not {"release", "wait", "timeout", "helm"} & {
        key for layer in captured_install.values for key in layer
    }


@pytest.mark.parametrize(
    ("socket", "directory", "name"),
    [
        # A system directory is never mounted whole: the chart picks one of its own inside it.
        ("/var/run/vineyard.sock", "/var/run/vineyard/ns/rel", "vineyard.sock"),
        ("/run/v.sock", "/run/vineyard/ns/rel", "v.sock"),
        ("/tmp/v.sock", "/tmp/vineyard/ns/rel", "v.sock"),
        ("/v.sock", "/vineyard/ns/rel", "v.sock"),
        ("/var/run/vineyard/v.sock", "/var/run/vineyard", "v.sock"),
        ("/data/v6d/socket", "/data/v6d", "socket"),
        ("/data//v6d/./x.sock", "/data/v6d", "x.sock"),
    ],
)
def test_socket_becomes_a_host_directory_and_file_name(
    socket: str, directory: str, name: str, helm: str, captured_install: Captured
) -> None:
    start_vineyardd(namespace="ns", release="rel", socket=socket)
    objects = rendered(captured_install, helm)
    daemonset = objects[("DaemonSet", "rel-vineyard")]
    pod = daemonset["spec"]["template"]["spec"]
    socket_volume = next(v for v in pod["volumes"] if "hostPath" in v)
    assert socket_volume["hostPath"]["path"] == directory
    location = socket_location(daemonset)
    assert location is not None
    assert (location.host_path, location.path_in_volume) == (directory, name)


@pytest.mark.parametrize(
    ("socket", "key"),
    [
        ("", "socket.fileName"),
        ("v.sock", "socket.volume.hostPath.path"),
        ("relative/v.sock", "socket.volume.hostPath.path"),
        ("/var/run/", "socket.fileName"),
    ],
)
def test_a_socket_that_is_not_an_absolute_file_path_is_refused_by_the_schema(
    socket: str, key: str, helm: str, captured_install: Captured
) -> None:
    start_vineyardd(socket=socket)
    with pytest.raises(InvalidValuesError) as caught:
        rendered(captured_install, helm)
    assert [p.split(":")[0] for p in caught.value.problems] == [key]


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("vineyardd", {"repository": "vineyardd"}),
        ("v6d/vineyardd:v1", {"repository": "v6d/vineyardd", "tag": "v1"}),
        ("host:5000/v6d/vineyardd", {"repository": "host:5000/v6d/vineyardd"}),
        ("host:5000/v6d/vineyardd:v1", {"repository": "host:5000/v6d/vineyardd", "tag": "v1"}),
        ("r/v@sha256:00", {"repository": "r/v", "digest": "sha256:00"}),
        ("r/v:v1@sha256:00", {"repository": "r/v", "tag": "v1", "digest": "sha256:00"}),
    ],
)
def test_image_references_split_into_repository_tag_digest(
    image: str, expected: dict[str, str]
) -> None:
    assert image_values(image) == expected


@pytest.mark.parametrize(
    ("secrets", "names"),
    [
        ("a", ["a"]),
        ("a,b", ["a", "b"]),
        (" a , ,b ", ["a", "b"]),
        (["x", "y"], ["x", "y"]),
    ],
)
def test_pull_secrets_from_a_list_or_a_comma_separated_string(
    secrets: Any, names: list[str]
) -> None:
    assert pull_secret_names(secrets) == [{"name": n} for n in names]


def api_client(host: str) -> Any:
    """A real kubernetes.client.ApiClient for ``host``, configured as upstream users do."""
    import kubernetes

    configuration = kubernetes.client.Configuration()
    configuration.host = host
    configuration.api_key = {"authorization": "Bearer abc"}
    return kubernetes.client.ApiClient(configuration)


def test_an_unreachable_k8s_client_is_cluster_unreachable(
    helm: str, unreachable_kubeconfig: Path
) -> None:
    import json

    server = json.loads(unreachable_kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    with pytest.raises(vineyard_helm.ClusterUnreachableError):
        start_vineyardd(k8s_client=api_client(server), helm=helm)
    with pytest.raises(vineyard_helm.ClusterUnreachableError):
        delete_kubernetes_objects(
            [Resource("DaemonSet", "vineyard", "vineyard", "vineyard")],
            k8s_client=api_client(server),
            helm=helm,
        )


def test_delete_rejects_objects_it_did_not_create() -> None:
    with pytest.raises(TypeError, match="start_vineyardd"):
        delete_kubernetes_objects([object()])  # type: ignore[list-item]


def test_delete_rejects_unknown_options_before_anything_runs() -> None:
    """(Upstream's delete options are accepted: tests/e2e/test_e2e_python_api.py.)"""
    targets = [Resource("DaemonSet", "gone", "vineyard", "gone")]
    with pytest.raises(TypeError, match="colour"):
        delete_kubernetes_objects(targets, colour="red")


def test_a_default_api_client_leaves_the_default_kubeconfig() -> None:
    import kubernetes

    from vineyard_helm.kubeconfig import kubeconfig_from_api_client

    default = kubernetes.client.ApiClient(kubernetes.client.Configuration())
    assert kubeconfig_from_api_client(default) is None
    assert kubeconfig_from_api_client(object()) is None


def test_an_api_clients_credentials_are_carried_over(tmp_path: Path) -> None:
    from vineyard_helm.kubeconfig import kubeconfig_from_api_client

    derived = kubeconfig_from_api_client(api_client("https://127.0.0.1:6443"))
    assert derived is not None
    assert derived["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443"
    assert derived["users"][0]["user"] == {"token": "abc"}


@pytest.mark.parametrize(
    ("size", "memory"),
    [("512Mi", "768Mi"), ("8Gi", "8448Mi"), ("1G", "1210Mi"), ("1048576", "257Mi")],
)
def test_the_pod_gets_memory_for_the_shared_memory(
    size: str, memory: str, helm: str, captured_install: Captured
) -> None:
    """The chart's vineyard.memoryHeadroom (256Mi) makes request and limit size + 256Mi: a
    large size installs where the chart's default limit (512Mi) would refuse it."""
    start_vineyardd(size=size)
    assert captured_install.values[0]["vineyard"]["memoryHeadroom"] == "256Mi"
    container = vineyardd_container(rendered(captured_install, helm), "vineyard")
    assert f"--size={size}" in container["args"]
    assert container["resources"]["limits"]["memory"] == memory
    assert container["resources"]["requests"]["memory"] == memory


def test_explicit_resources_replace_the_derived_memory(
    helm: str, captured_install: Captured
) -> None:
    start_vineyardd(size="1Gi", resources={"limits": {"memory": "4Gi", "cpu": "2"}})
    assert "memoryHeadroom" not in captured_install.values[0]["vineyard"]
    assert captured_install.values[1] == {"resources": {"limits": {"memory": "4Gi", "cpu": "2"}}}
    container = vineyardd_container(rendered(captured_install, helm), "vineyard")
    assert container["resources"]["limits"] == {"memory": "4Gi", "cpu": "2"}


@pytest.mark.parametrize(
    ("size", "message"), [("lots", "does not match pattern"), (512, "got number")]
)
def test_a_size_that_is_not_a_quantity_is_left_to_the_schema(
    size: Any, message: str, helm: str, captured_install: Captured
) -> None:
    start_vineyardd(size=size)
    with pytest.raises(InvalidValuesError) as caught:
        rendered(captured_install, helm)
    (problem,) = caught.value.problems
    assert problem.startswith("vineyard.size: ")
    assert message in problem
