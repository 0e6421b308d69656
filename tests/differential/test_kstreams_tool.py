"""The reference's own errors: clear, typed, and never a silent skip."""

from __future__ import annotations

import pytest

from diff_topologies import TOPOLOGIES
from streamlet.testing.kstreams_diff import KStreamsReferenceError, ReferenceDriver


def test_unknown_topology_is_a_clear_error_and_the_jvm_goes_on(kstreams) -> None:
    with pytest.raises(KStreamsReferenceError, match="no topology named nope"):
        kstreams.run("nope", [])
    out = kstreams.run("count", [{"topic": "in", "key": "k", "value": {"amount": 1}, "timestamp": 5}])
    assert [(r.topic, r.key, r.value, r.timestamp) for r in out] == [("counts-out", "k", 1, 5)]


def test_every_python_topology_has_its_java_twin(kstreams) -> None:
    for name in TOPOLOGIES:
        assert kstreams.run(name, []) == []


def test_missing_java_says_what_to_install(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(KStreamsReferenceError, match="needs Java.*no bin/java.*install a Java runtime"):
        ReferenceDriver()


def test_missing_maven_says_what_to_install(monkeypatch, tmp_path) -> None:
    from streamlet.testing.kstreams_diff import jars_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # nothing built there yet
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(KStreamsReferenceError, match="needs Maven.*no `mvn` on PATH"):
        jars_dir()
