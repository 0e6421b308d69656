"""tests/deploy/kustomize.py renders deploy/k8s as kustomize itself does (what the manifest tests
check is what `kubectl apply -k deploy/k8s` applies)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.kustomize import config_map_hash, kustomize_command, render_here, render_with_kustomize

BASE = Path(__file__).resolve().parents[2] / "deploy" / "k8s"


def by_kind_and_name(objects: list[dict]) -> dict[tuple[str, str], dict]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def test_config_map_hash_is_kustomizes() -> None:
    # the names kustomize v5.7.1 gave these generated ConfigMaps (kustomize build)
    assert config_map_hash({"greeting": "hi"}) == "57gdtm45gf"
    assert config_map_hash({"greeting": "<hello & bye>", "n": "3"}) == "hd89h6t969"


def test_render_here_refuses_what_it_does_not_render(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: [a.yaml]\npatches: [{path: p.yaml}]\n")
    with pytest.raises(NotImplementedError, match=r"\['patches'\]"):
        render_here(tmp_path)


def test_a_new_topology_script_gets_a_new_config_map_name(tmp_path: Path) -> None:
    for name in ("kustomization.yaml", "statefulset.yaml", "service.yaml", "pdb.yaml", "topology.py"):
        (tmp_path / name).write_text((BASE / name).read_text())
    before = by_kind_and_name(render_here(tmp_path))
    (tmp_path / "topology.py").write_text((BASE / "topology.py").read_text() + "\n# changed\n")
    after = by_kind_and_name(render_here(tmp_path))

    def volume(objs: dict) -> str:
        pod = objs[("StatefulSet", "streamlet")]["spec"]["template"]["spec"]
        return next(v["configMap"]["name"] for v in pod["volumes"] if v["name"] == "topology")

    assert volume(before) != volume(after)  # the pod template changes: the StatefulSet rolls
    assert volume(after).startswith("streamlet-topology-") and ("ConfigMap", volume(after)) in after


def test_render_here_agrees_with_kustomize() -> None:
    command = kustomize_command()
    if command is None:
        pytest.skip("no kustomize binary (go install sigs.k8s.io/kustomize/kustomize/v5@v5.7.1, or kubectl): "
                    "the manifest tests use tests/deploy/kustomize.py's rendering alone")
    assert by_kind_and_name(render_here(BASE)) == by_kind_and_name(render_with_kustomize(BASE, command))
