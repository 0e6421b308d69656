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


def _rows(out) -> dict[str, list[tuple]]:
    rows: dict[str, list[tuple]] = {}
    for r in out:
        rows.setdefault(r.topic, []).append((r.key, r.value, r.timestamp))
    return rows


def _user(city):
    return {"topic": "users", "value": None if city is None else {"city": city, "age": 30}}


def _account(plan):
    return {"topic": "accounts", "value": None if plan is None else {"plan": plan, "credits": 1}}


def _cp(city, plan):
    return {"city": city, "plan": plan}


def test_table_table_join_twins_are_inner_left_and_outer(kstreams) -> None:
    """The Java twins of table-table-join on a few hand-picked changes: each output is the join it
    names (a swapped leftJoin / outerJoin fails here), stamped with the larger timestamp of the two rows."""
    changes = [("k1", _user("Paris"), 10), ("k1", _account("gold"), 20), ("k2", _account("free"), 5),
               ("k1", _user("Rome"), 15),        # an update: stamped 20, the account's time
               ("k1", _account(None), 30),       # the account deleted
               ("k1", _account(None), 35),       # ... again: absent, the user still there
               ("k1", _user(None), 40),          # the user deleted, no account left
               ("k3", _user(None), 50),          # a tombstone for a key neither table holds
               ("k2", _user(None), 60)]          # a tombstone for an absent user, the account there
    recs = [{**change, "key": key, "timestamp": ts} for key, change, ts in changes]
    rows = _rows(kstreams.run("table-table-join", recs))
    rome_gold, rome_none = _cp("Rome", "gold"), _cp("Rome", None)
    assert rows["tt-inner"] == [("k1", _cp("Paris", "gold"), 20), ("k1", rome_gold, 20), ("k1", None, 30),
                                ("k1", None, 35), ("k2", None, 60)]
    assert rows["tt-left"] == [("k1", _cp("Paris", None), 10), ("k1", _cp("Paris", "gold"), 20),
                               ("k1", rome_gold, 20), ("k1", rome_none, 30), ("k1", rome_none, 35),
                               ("k1", None, 40), ("k2", None, 60)]
    assert rows["tt-outer"] == [("k1", _cp("Paris", None), 10), ("k1", _cp("Paris", "gold"), 20),
                                ("k2", _cp(None, "free"), 5), ("k1", rome_gold, 20), ("k1", rome_none, 30),
                                ("k1", rome_none, 35), ("k1", None, 40), ("k2", _cp(None, "free"), 60)]


def test_a_filter_after_a_table_join_deletes_only_rows_that_passed(kstreams) -> None:
    """table-join-filter's twin: a joined row that fails the filter is a tombstone only when the row it
    replaces passed (the filter sees the join's previous row)."""
    changes = [("k1", _user("Paris"), 1), ("k1", _account("free"), 2), ("k1", _account("gold"), 3),
               ("k1", _user("Rome"), 4), ("k1", _account("pro"), 5), ("k1", _account(None), 6)]
    recs = [{**change, "key": key, "timestamp": ts} for key, change, ts in changes]
    assert _rows(kstreams.run("table-join-filter", recs)) == {
        "tt-gold": [("k1", _cp("Paris", "gold"), 3), ("k1", _cp("Rome", "gold"), 4), ("k1", None, 5)]}


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
