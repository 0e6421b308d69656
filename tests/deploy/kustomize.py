"""Render a Kustomize base into its Kubernetes objects for the manifest tests.

With a ``kustomize`` binary (``$KUSTOMIZE``, on PATH, in ``~/go/bin`` after
``go install sigs.k8s.io/kustomize/kustomize/v5@v5.7.1``, or ``kubectl kustomize``)
:func:`render_with_kustomize` runs it. Without one, :func:`render_here` does
what ``kustomize build`` does for the few features deploy/k8s uses —
``resources`` (files), ``configMapGenerator`` (``files``/``literals``, with
kustomize's content-hash name suffix and the references to it rewritten) and
``images`` — and refuses any other feature, so a base that outgrows it fails
loudly instead of rendering differently. tests/deploy/test_k8s_render.py
checks that both agree whenever a binary is there.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Iterator, Optional

import yaml

#: the keys of kustomization.yaml that render_here understands
KNOWN_KEYS = {"apiVersion", "kind", "resources", "configMapGenerator", "images"}


def kustomize_command() -> Optional[list[str]]:
    """The command that runs ``kustomize build`` here, or None."""
    given = os.environ.get("KUSTOMIZE")
    if given:
        return [given, "build"]
    found = shutil.which("kustomize")
    if found is None:
        gobin = Path(os.environ.get("GOPATH", Path.home() / "go")) / "bin" / "kustomize"
        found = str(gobin) if gobin.is_file() else None
    if found is not None:
        return [found, "build"]
    kubectl = shutil.which("kubectl")
    return [kubectl, "kustomize"] if kubectl else None


def render_with_kustomize(base: Path, command: list[str]) -> list[dict[str, Any]]:
    out = subprocess.run([*command, str(base)], capture_output=True, text=True, timeout=60, check=True)
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def render_here(base: Path) -> list[dict[str, Any]]:
    """The objects ``kustomize build BASE`` makes, for the features listed in :data:`KNOWN_KEYS`."""
    kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
    unknown = set(kustomization) - KNOWN_KEYS
    if unknown:
        raise NotImplementedError(
            f"kustomization.yaml uses {sorted(unknown)}, which tests/deploy/kustomize.py does not render: "
            "extend render_here, or install kustomize (go install sigs.k8s.io/kustomize/kustomize/v5@v5.7.1)")
    generated, renamed = [], {}
    for gen in kustomization.get("configMapGenerator", []):
        extra = set(gen) - {"name", "files", "literals"}
        if extra:
            raise NotImplementedError(
                f"configMapGenerator {gen['name']!r}: {sorted(extra)} is not rendered here")
        data: dict[str, str] = {}
        for item in gen.get("literals", []):
            key, _, value = item.partition("=")
            data[key] = value
        for item in gen.get("files", []):
            key, _, path = item.partition("=") if "=" in item else (Path(item).name, "", item)
            data[key] = (base / path).read_text()
        name = f"{gen['name']}-{config_map_hash(data)}"
        renamed[gen["name"]] = name
        generated.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
    objects = list(generated)
    for resource in kustomization.get("resources", []):
        if not (base / resource).is_file():
            raise NotImplementedError(
                f"resource {resource!r} is not a file: only file resources are rendered here")
        objects.extend(doc for doc in yaml.safe_load_all((base / resource).read_text()) if doc)
    images = {i["name"]: i for i in kustomization.get("images", [])}
    for obj in objects:
        for container in _containers(obj):
            name, _, tag = container["image"].partition(":")
            if name in images:
                new = images[name]
                container["image"] = f"{new.get('newName', name)}:{new.get('newTag', tag or 'latest')}"
        for ref in _config_map_refs(obj):
            ref["name"] = renamed.get(ref["name"], ref["name"])
    return objects


def config_map_hash(data: dict[str, str]) -> str:
    """kustomize's name suffix for a generated ConfigMap: the SHA-256 of ``{"data", "kind", "name"}`` as
    compact, key-sorted JSON (as Go's encoding/json writes it: <, > and & escaped), its first 10 hex
    digits with 0 1 3 a e replaced by g h k m t. kustomize v5 looks the name up by a path it does not
    split, so the name is always empty there (checked against kustomize v5.7.1)."""
    text = json.dumps({"data": data, "kind": "ConfigMap", "name": ""}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return digest.translate(str.maketrans("013ae", "ghkmt"))


def _pod_spec(obj: dict[str, Any]) -> Optional[dict[str, Any]]:
    if obj.get("kind") == "Pod":
        return obj["spec"]
    return obj.get("spec", {}).get("template", {}).get("spec")


def _containers(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = _pod_spec(obj) or {}
    yield from spec.get("initContainers", [])
    yield from spec.get("containers", [])


def _config_map_refs(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for volume in (_pod_spec(obj) or {}).get("volumes", []):
        if "configMap" in volume:
            yield volume["configMap"]
    for container in _containers(obj):
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                yield source["configMapRef"]
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("configMapKeyRef")
            if ref is not None:
                yield ref
