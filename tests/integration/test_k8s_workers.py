"""Workers started as deploy/k8s starts them: the StatefulSet's command and the environment the kubelet
builds for pods streamlet-0 and streamlet-1 (its settings ConfigMap, downward API, ``$(VAR)``), with
only what a cluster provides replaced — the brokers, each pod's volume (a directory), and the pod's DNS
name under the headless Service (127.0.0.1 and a port of its own). The test then asks what Kubernetes
and a person ask: the manifest's startup, liveness and readiness probes, a key of either worker through
either one, and SIGTERM as the kubelet sends it, which must end in exit 0 before the grace period's
SIGKILL."""

from __future__ import annotations

import signal
import socket
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from tests.deploy.manifests import BASE, one, pod_environment, render, worker
from tests.integration.kafka_io import produce, wait_committed
from tests.integration.procs import Worker, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

PARTITIONS = 4
APP = "first-names"  # deploy/k8s/topology.py's application id


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_pod(objects: list[dict[str, Any]], tmp: Path, broker: Any, ordinal: int, port: int) -> Worker:
    pod = f"streamlet-{ordinal}"
    env = pod_environment(objects, pod, "streams")
    assert env["STREAMLET_APPLICATION_SERVER"] == f"{pod}.streamlet.streams.svc.cluster.local:8080"
    env.update(STREAMLET_APPLICATION_SERVER=f"127.0.0.1:{port}")
    command = worker(objects)["command"]
    assert command[:2] == ["streamlet", "run"] and command[2] == "/app/topology.py"  # mounted from:
    return Worker(tmp, BASE / "topology.py", broker.bootstrap, tmp / f"state-{pod}", pod,
                  env={k: v for k, v in env.items() if k not in ("STREAMLET_BROKERS", "STREAMLET_STATE_DIR")})


def probe(port: int, kind: str, objects: list[dict[str, Any]]) -> int:
    """The status code of the container's ``kind`` probe (startupProbe, livenessProbe, readinessProbe)."""
    path = worker(objects)[kind]["httpGet"]["path"]
    try:
        return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10).status_code
    except httpx.TransportError:
        return 0


def test_two_pods_answer_their_probes_and_each_others_keys_and_stop_cleanly_on_sigterm(
        tmp_path: Path, broker: Any) -> None:
    objects = render()
    broker.create_topic("user-events", PARTITIONS)
    broker.create_topic("first-names", PARTITIONS)
    ports = [free_port(), free_port()]
    pods = [start_pod(objects, tmp_path, broker, i, port) for i, port in enumerate(ports)]
    for port in ports:
        wait_until(lambda: probe(port, "startupProbe", objects) == 200, 60, "the startup probe", workers=pods,
                   interval=0.2)
        wait_until(lambda: probe(port, "readinessProbe", objects) == 200, 90, "the readiness probe",
                   workers=pods, interval=0.2)
    wait_until(lambda: all(w.owned() for w in pods), 90, "both pods to own partitions", workers=pods,
               interval=0.2)

    users = [f"u{n}" for n in range(40)]
    produce(broker.bootstrap, "user-events", [(u, {"name": f"first-{u}"}) for u in users])
    produce(broker.bootstrap, "user-events", [(u, {"name": f"later-{u}"}) for u in users])
    wait_committed(broker.bootstrap, APP, "user-events", PARTITIONS, 90, pods)
    assert [probe(port, "livenessProbe", objects) for port in ports] == [200, 200]

    def everything_answered() -> bool:
        return all(httpx.get(f"http://127.0.0.1:{p}/stores/first-names/{u}", timeout=10).status_code == 200
                   for p in ports for u in users)

    wait_until(everything_answered, 30, "each pod to know the other's HTTP side", workers=pods, interval=0.5)
    for port in ports:
        for u in users:
            body = httpx.get(f"http://127.0.0.1:{port}/stores/first-names/{u}", timeout=10).json()
            assert body == {"key": u, "value": {"first_name": f"first-{u}"}}

    # the kubelet: SIGTERM, then SIGKILL after terminationGracePeriodSeconds; the worker must end first
    grace_s = one(objects, "StatefulSet")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert [w.stop(signal.SIGTERM, timeout=grace_s) for w in reversed(pods)] == [0, 0]
