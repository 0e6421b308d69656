"""deploy/k8s: every object is valid Kubernetes (the JSON schemas of kubernetes-validate, offline, strict:
an unknown or misspelt field fails), and the manifests wire up what an operator relies on: probes on the
worker's HTTP side, a volume per pod at the state dir, a headless Service and a PodDisruptionBudget over
the StatefulSet's pods, the application server named under that Service, a grace period longer than the
worker's own, and the settings the worker really reads."""

from __future__ import annotations

import copy
import os
from typing import Any

import kubernetes_validate
import pytest

from streamlet.config import _ENV, Config, resolve
from streamlet.runtime.observability import parse_server
from tests.deploy.manifests import BASE, one, pod_environment, render, worker

#: the oldest Kubernetes the base is checked against (docs/kubernetes.md), and the newest schemas bundled
K8S_VERSIONS = ("1.29", kubernetes_validate.utils.latest_version())
#: settings read outside streamlet/config.py (the Schema Registry of serde.avro(); librdkafka settings)
OTHER_SETTINGS = {"STREAMLET_SCHEMA_REGISTRY_URL", "STREAMLET_CONFIG"}


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return render()


def env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container["env"]}


def settings(objects: list[dict[str, Any]]) -> dict[str, str]:
    """The environment the worker of pod streamlet-0 starts with."""
    return pod_environment(objects, "streamlet-0", "streams")


def test_the_base_makes_a_statefulset_a_headless_service_a_pdb_and_two_configmaps(objects) -> None:
    assert sorted(o["kind"] for o in objects) == [
        "ConfigMap", "ConfigMap", "PodDisruptionBudget", "Service", "StatefulSet"]


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_is_valid_against_the_kubernetes_schemas(objects, version: str) -> None:
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)


def test_the_schema_check_rejects_a_misspelt_field(objects) -> None:
    broken = copy.deepcopy(one(objects, "StatefulSet"))
    broken["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {"httpGet": {"path": "/health"}}
    with pytest.raises(kubernetes_validate.ValidationError, match="livenesProbe"):
        kubernetes_validate.validate(broken, K8S_VERSIONS[-1], strict=True)


def test_probes_ask_health_and_ready_on_the_http_port(objects) -> None:
    container = worker(objects)
    [port] = container["ports"]
    assert (port["name"], port["containerPort"]) == ("http", 8080)
    probes = {kind: container[kind]["httpGet"]
              for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert {kind: g["path"] for kind, g in probes.items()} == {
        "startupProbe": "/health", "livenessProbe": "/health", "readinessProbe": "/ready"}
    assert all(g["port"] in ("http", 8080) for g in probes.values())
    # the port the worker's HTTP side listens on is the one its application server names
    assert parse_server(settings(objects)["STREAMLET_APPLICATION_SERVER"])[1] == port["containerPort"]
    # generous for a slow start: minutes, not seconds, before the kubelet gives up
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300


def test_each_pod_gets_its_own_volume_at_the_state_dir(objects) -> None:
    sts = one(objects, "StatefulSet")
    [claim] = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    mounts = {m["name"]: m["mountPath"] for m in worker(objects)["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == settings(objects)["STREAMLET_STATE_DIR"]
    # not shadowed by a pod volume of the same name (that would be shared by nothing and lost on restart)
    assert claim["metadata"]["name"] not in {v["name"] for v in sts["spec"]["template"]["spec"]["volumes"]}


def test_the_service_is_headless_and_selects_the_statefulset_pods(objects) -> None:
    sts, svc = one(objects, "StatefulSet"), one(objects, "Service")
    labels = sts["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["clusterIP"] == "None"
    assert sts["spec"]["serviceName"] == svc["metadata"]["name"]
    assert svc["spec"]["selector"].items() <= labels.items()
    assert sts["spec"]["selector"]["matchLabels"].items() <= labels.items()
    [port] = svc["spec"]["ports"]
    assert (port["name"], port["port"], port["targetPort"]) == ("http", 8080, "http")
    # a restoring (unready) worker's name still resolves: it is asked about its keys, and names itself
    assert svc["spec"]["publishNotReadyAddresses"] is True


def test_the_disruption_budget_takes_one_pod_at_a_time_of_the_statefulset(objects) -> None:
    pdb, sts = one(objects, "PodDisruptionBudget"), one(objects, "StatefulSet")
    assert pdb["spec"]["maxUnavailable"] == 1
    labels = sts["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_the_application_server_is_the_pod_name_under_the_headless_service(objects) -> None:
    svc = one(objects, "Service")["metadata"]["name"]
    variables = env(worker(objects))
    assert variables["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert variables["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert variables["STREAMLET_APPLICATION_SERVER"]["value"] == \
        f"$(POD_NAME).{svc}.$(POD_NAMESPACE).svc.cluster.local:8080"
    # $(VAR) expands only variables defined before it in the list
    names = [e["name"] for e in worker(objects)["env"]]
    assert names.index("POD_NAME") < names.index("STREAMLET_APPLICATION_SERVER")
    assert names.index("POD_NAMESPACE") < names.index("STREAMLET_APPLICATION_SERVER")
    assert settings(objects)["STREAMLET_APPLICATION_SERVER"] == \
        "streamlet-0.streamlet.streams.svc.cluster.local:8080"


def test_the_kubelet_waits_longer_than_the_worker_grace(objects) -> None:
    grace_ms = int(settings(objects)["STREAMLET_SHUTDOWN_GRACE_MS"])
    period_s = one(objects, "StatefulSet")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert period_s * 1000 > grace_ms
    assert Config.__dataclass_fields__["shutdown_grace_ms"].default <= grace_ms  # the setting the worker reads


def test_the_topology_config_map_is_mounted_where_the_command_runs_it(objects) -> None:
    container = worker(objects)
    assert container["command"] == ["streamlet", "run", "/app/topology.py"]
    [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == "/app/topology.py"]
    volumes = {v["name"]: v for v in one(objects, "StatefulSet")["spec"]["template"]["spec"]["volumes"]}
    configmap = volumes[mount["name"]]["configMap"]["name"]
    [cm] = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == configmap]
    assert cm["data"][mount["subPath"]] == (BASE / "topology.py").read_text()


def test_the_image_is_the_repository_dockerfile_build(objects) -> None:
    assert worker(objects)["image"] == "streamlet:latest"
    dockerfile = (BASE.parents[1] / "Dockerfile").read_text()
    assert "RUN pip install --no-cache-dir ." in dockerfile  # installs the `streamlet` command


def test_the_worker_reads_every_setting_given(objects, monkeypatch) -> None:
    given = {k: v for k, v in settings(objects).items() if k.startswith("STREAMLET_")}
    read = {name for name, _ in _ENV.values()} | OTHER_SETTINGS
    assert set(given) <= read, f"settings the worker does not read: {sorted(set(given) - read)}"
    for name in [k for k in os.environ if k.startswith("STREAMLET_")]:
        monkeypatch.delenv(name)
    for name, value in {**given, "POD_NAME": "streamlet-0"}.items():
        monkeypatch.setenv(name, value)
    config = resolve("first-names")
    assert config.state_dir == "/state" and config.brokers == "kafka:9092"
    assert config.application_server == "streamlet-0.streamlet.streams.svc.cluster.local:8080"
    assert config.instance_id == "streamlet-0"  # static membership from the pod name
    assert config.shutdown_grace_ms == 25_000
    assert config.num_standby_replicas == 1 and config.guarantee == "at_least_once"
