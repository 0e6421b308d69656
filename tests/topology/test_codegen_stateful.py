"""Aggregations in the generated chain (streamlet.topology.codegen_stateful): ``group_by(...)`` through a
repartition topic and ``group_by_key()`` take the same inline path, for named aggregators and for
count / reduce / user aggregates, and behave exactly like the closures, replays included."""

from __future__ import annotations

from typing import Any

import pytest

import streamlet as sl
from codegen_helpers import _same
from streamlet.testing import TestDriver

ORDERS = [("orders", f"k{i % 3}", {"user": f"u{i % 2}", "amount": i * 40, "n": i}, 1000 + i) for i in range(8)]

AGGREGATIONS = {
    "named": lambda g: g.aggregate(n=sl.agg.count(), total=sl.agg.sum("amount"),
                                   last=sl.agg.latest_by_offset("n"), first=sl.agg.earliest_by_offset("n"),
                                   name="s"),
    "count": lambda g: g.count(name="s"),
    "reduce": lambda g: g.reduce(lambda a, b: {"amount": a["amount"] + b["amount"]}, name="s"),
    "user": lambda g: g.aggregate(lambda: {"n": 0}, lambda k, v, a: {"n": a["n"] + v["n"], "k": k}, name="s"),
}


def _build(grouping: str, aggregation: str) -> Any:
    def build(app: sl.App) -> None:
        orders = app.stream("orders")
        grouped = orders.group_by(lambda k, v: v["user"]) if grouping == "group_by" else orders.group_by_key()
        AGGREGATIONS[aggregation](grouped).to_stream().to("out")

    return build


def _aggregation_source(grouping: str, aggregation: str) -> str:
    """The generated source of the chain that holds the aggregation."""
    app = sl.App("codegen-agg")
    _build(grouping, aggregation)(app)
    with TestDriver(app) as d:
        topic = "codegen-agg-s-repartition" if grouping == "group_by" else "orders"
        return d.tasks.routes[topic][0].__streamlet_source__  # type: ignore[no-any-return]


@pytest.mark.parametrize("aggregation", sorted(AGGREGATIONS))
@pytest.mark.parametrize("grouping", ["group_by", "group_by_key"])
def test_every_aggregation_is_generated_inline_and_matches_the_closures(grouping: str, aggregation: str) -> None:
    src = _aggregation_source(grouping, aggregation)
    assert "# aggregate s" in src  # the row is updated inline, not through the aggregation's closure
    assert ("read_origin" in src) == (grouping == "group_by")  # marks per upstream partition
    log = _same(_build(grouping, aggregation), ORDERS)
    assert sum(len(rs) for rs in log["out"].values()) == len(ORDERS)


@pytest.mark.parametrize("aggregation", sorted(AGGREGATIONS))
def test_group_by_replays_count_once_on_the_generated_path(aggregation: str) -> None:
    app = sl.App("codegen-agg-replay")
    _build("group_by", aggregation)(app)
    with TestDriver(app) as d:
        for _, key, value, ts in ORDERS:
            d.send("orders", key=key, value=value, timestamp=ts)
        before = dict(d.store("s").items())
        emitted = d.read("out")
        assert d.redeliver("orders", from_offset=3) == len(ORDERS) - 3  # the upstream task writes again
        assert dict(d.store("s").items()) == before
        assert d.read("out") == []
    assert len(emitted) == len(ORDERS)
    if aggregation == "named":
        assert before["u0"] == {"n": 4, "total": 480, "last": 6, "first": 0}


def test_an_unstorable_user_aggregate_fails_alike_generated_or_not() -> None:
    def build(app: sl.App) -> None:
        app.stream("orders").group_by(lambda k, v: v["user"]).aggregate(
            lambda: 0, lambda k, v, a: object() if v["n"] == 5 else a + 1, name="s").to_stream().to("out")

    log = _same(build, ORDERS, on_error="skip")
    assert sum(len(rs) for rs in log["out"].values()) == len(ORDERS) - 1


def test_group_by_and_its_repartition_sink_are_generated_and_stamp_the_origin() -> None:
    app = sl.App("codegen-regroup")
    _build("group_by", "named")(app)
    with TestDriver(app) as d:
        src = d.tasks.routes["orders"][0].__streamlet_source__
        d.send("orders", key="k1", value={"user": "u1", "n": 1, "amount": 5}, timestamp=7)
    assert "# a None group key drops the record" in src and "origin_stamp" in src
    assert "ctx.msg = m" not in src  # no closure on the way to the repartition topic


def test_flat_map_before_group_by_keeps_the_closure_sink_that_numbers_records() -> None:
    def build(app: sl.App) -> None:
        (app.stream("orders").flat_map(lambda k, v: [(k, v), (k, {**v, "n": v["n"] + 100})])
            .group_by(lambda k, v: v["user"]).aggregate(n=sl.agg.count(), s=sl.agg.sum("n"), name="s")
            .to_stream().to("out"))

    log = _same(build, ORDERS)
    assert sum(len(rs) for rs in log["out"].values()) == 2 * len(ORDERS)


@pytest.mark.parametrize("grouping", ["group_by", "group_by_key"])
def test_a_custom_aggregator_whose_state_cannot_be_stored_fails_alike(grouping: str) -> None:
    def build(app: sl.App) -> None:
        orders = app.stream("orders")
        grouped = orders.group_by(lambda k, v: v["user"]) if grouping == "group_by" else orders.group_by_key()
        grouped.aggregate(n=sl.agg.count(), bad=sl.agg.custom(0, lambda s, v: {s} if v["n"] == 5 else s + 1),
                          name="s").to_stream().to("out")

    log = _same(build, ORDERS, on_error="skip")
    assert sum(len(rs) for rs in log["out"].values()) == len(ORDERS) - 1


@pytest.mark.parametrize("aggregation", sorted(AGGREGATIONS))
@pytest.mark.parametrize("grouping", ["group_by", "group_by_key"])
def test_an_aggregate_keeps_the_largest_timestamp_it_has_seen(grouping: str, aggregation: str) -> None:
    # Kafka Streams: an aggregation's output is stamped max(previous aggregate's time, record's time)
    late = [("orders", "k1", {"user": "u1", "amount": 1, "n": 1}, 5000),
            ("orders", "k1", {"user": "u1", "amount": 2, "n": 2}, 3000),  # out of order
            ("orders", "k1", {"user": "u1", "amount": 3, "n": 3}, 7000)]
    _same(_build(grouping, aggregation), late)
    app = sl.App("agg-ts")
    _build(grouping, aggregation)(app)
    with TestDriver(app) as d:
        for _, key, value, ts in late:
            d.send("orders", key=key, value=value, timestamp=ts)
        assert [r.timestamp for r in d.read_records("out")] == [5000, 5000, 7000]
