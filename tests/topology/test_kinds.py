"""Node kinds as data (streamlet.topology.kinds): every kind's functions exist, the properties the
compiler and generator read match what the kinds do, and a new kind is its descriptor plus its code."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

import streamlet as sl
from streamlet.testing import TestDriver
from streamlet.topology import kinds
from streamlet.topology.chain import fan_out
from streamlet.topology.kinds import KINDS, NodeKind, kind_of, resolve


@pytest.mark.parametrize("name", sorted(KINDS))
def test_every_descriptor_names_functions_that_exist(name: str) -> None:
    kind = KINDS[name]
    compile_fn = resolve(kind.compile)
    assert list(inspect.signature(compile_fn).parameters) == ["node", "ctx", "downs", "comp"]
    if kind.generate is not None:
        assert list(inspect.signature(resolve(kind.generate)).parameters) == ["w", "node", "k", "v", "depth"]
    if kind.lookup is not None:
        assert kind.table and list(inspect.signature(resolve(kind.lookup)).parameters) == ["node", "ctx", "comp"]


def test_every_kind_the_dsl_builds_has_a_descriptor() -> None:
    app = sl.App("kinds")
    users = app.table("users", name="users")
    s = app.stream("orders").filter(lambda k, v: True).map_values(lambda v: v).peek(print)
    s.map(lambda k, v: (k, v)).select_key(lambda k, v: k).flat_map(lambda k, v: [(k, v)]).to("a")
    s.flat_map_values(lambda v: [v]).process(lambda r: r).to("b")
    s.merge(app.stream("more")).foreach(print)
    s.split().branch(lambda k, v: True).default_branch()
    s.join(users, lambda a, b: a).to("c")
    s.group_by(lambda k, v: k).count(name="n").to_stream().to("d")
    s.group_by_key().windowed_by(sl.Tumbling(1000, grace=0)).count(name="w")
    s.group_by_key().windowed_by(sl.Session(1000, grace=0)).count(name="sw")
    s.group_by_key().windowed_by(sl.Sliding(1000, grace=0)).count(name="slw")
    users.filter(lambda k, v: True).map_values(lambda v: v).group_by(lambda k, v: (k, v)).count(name="m")
    users.join(app.table("accounts"), lambda u, a: u).to_stream().to("e")
    s.join(app.global_table("countries"), lambda a, b: a, key_selector=lambda k, v: k).to("f")
    app.table("orders-table").join(users, lambda o, u: o, foreign_key=lambda o: o["user"], name="fk")
    used = {n.kind for n in app.topology.nodes.values()}
    assert used == set(KINDS)


def test_unknown_kind_says_which_exist() -> None:
    with pytest.raises(KeyError, match="known: .*'filter'"):
        kind_of("filtre")


def test_key_changing_kinds_make_the_dsl_repartition() -> None:
    app = sl.App("rekey")
    app.stream("orders").map_values(lambda v: v).group_by_key().count(name="kept")
    app.stream("other").select_key(lambda k, v: v).group_by_key().count(name="changed")
    topics = set(app.topology.internal_topics)
    assert "rekey-changed-repartition" in topics and "rekey-kept-repartition" not in topics


# -- a new node kind: its descriptor plus its implementation, nothing else ------------------------
def upper_keys(node: Any, ctx: Any, downs: list[Any], comp: Any) -> Any:
    down = fan_out(downs)
    return lambda k, v: down(k.upper(), v)


def test_a_new_kind_is_a_descriptor_and_a_function(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(kinds.KINDS, "upper_keys", NodeKind("upper_keys", f"{__name__}:upper_keys",
                                                            single_output=True))
    app = sl.App("new-kind")
    src = app.stream("in")
    node = app.topology.add("upper_keys", [src._node])
    app.topology.add("sink", [node.name], topic="out", key_serde=src.key_serde, value_serde=src.value_serde,
                     partitioner=None)
    with TestDriver(app) as d:
        d.send("in", key="abc", value={"n": 1})
        assert d.read("out") == [("ABC", {"n": 1})]
