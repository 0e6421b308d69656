"""deploy/k8s as objects, for the tests that check it (tests/deploy) and run its workers
(tests/integration/test_k8s_workers.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.deploy.kustomize import kustomize_command, render_here, render_with_kustomize

BASE = Path(__file__).resolve().parents[2] / "deploy" / "k8s"


def render() -> list[dict[str, Any]]:
    """The objects `kubectl apply -k deploy/k8s` applies (kustomize's rendering when it is installed)."""
    command = kustomize_command()
    return render_with_kustomize(BASE, command) if command else render_here(BASE)


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [found] = [o for o in objects if o["kind"] == kind]
    return found


def worker(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The StatefulSet's one container."""
    [container] = one(objects, "StatefulSet")["spec"]["template"]["spec"]["containers"]
    return container


def pod_environment(objects: list[dict[str, Any]], pod: str, namespace: str) -> dict[str, str]:
    """The environment the worker of pod ``pod`` starts with, as the kubelet builds it: the ConfigMaps
    of ``envFrom``, then ``env`` in order (downward API fields, ``$(VAR)`` of variables defined before)."""
    container = worker(objects)
    configmaps = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ConfigMap"}
    values: dict[str, str] = {}
    for source in container.get("envFrom", []):
        values.update(configmaps[source["configMapRef"]["name"]]["data"])
    fields = {"metadata.name": pod, "metadata.namespace": namespace}
    for e in container.get("env", []):
        if "valueFrom" in e:
            values[e["name"]] = fields[e["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            value = e["value"]
            for name, given in values.items():
                value = value.replace(f"$({name})", given)
            values[e["name"]] = value
    return values
