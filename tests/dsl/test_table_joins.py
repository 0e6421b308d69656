"""Table–table joins (KTable.join / left_join / outer_join): re-evaluated whenever either side changes,
with Kafka Streams' KTableKTableJoin semantics, through the TestDriver."""

from __future__ import annotations

from typing import Any

import pytest

import streamlet as sl
from streamlet.errors import TopologyError
from streamlet.testing import TestDriver


def joiner(u: Any, a: Any) -> dict[str, Any]:
    return {"city": None if u is None else u["city"], "plan": None if a is None else a["plan"]}


def _app(how: str) -> sl.App:
    app = sl.App(f"tt-{how}")
    users, accounts = app.table("users"), app.table("accounts")
    getattr(users, how)(accounts, joiner, name="joined").to_stream().to("out")
    return app


#: (topic, key, value) in order; the same timeline for every kind of join
TIMELINE = [
    ("users", "u1", {"city": "Rome"}),     # 0 left only
    ("accounts", "u1", {"plan": "gold"}),  # 1 both
    ("users", "u1", {"city": "Oslo"}),     # 2 left update
    ("accounts", "u2", {"plan": "free"}),  # 3 right only, another key
    ("accounts", "u1", None),              # 4 right deleted
    ("users", "u1", None),                 # 5 left deleted (right already gone)
    ("users", "u1", None),                 # 6 left deleted again: already gone
    ("accounts", "u2", None),              # 7 right-only key deleted
]

EXPECTED = {
    "join": [
        None, ("u1", {"city": "Rome", "plan": "gold"}), ("u1", {"city": "Oslo", "plan": "gold"}), None,
        ("u1", None),  # a joined row deleted: a tombstone
        None, None, None,  # nothing while the other side is absent
    ],
    "left_join": [
        ("u1", {"city": "Rome", "plan": None}), ("u1", {"city": "Rome", "plan": "gold"}),
        ("u1", {"city": "Oslo", "plan": "gold"}), None,  # a right change without a left row: nothing
        ("u1", {"city": "Oslo", "plan": None}),  # the right row deleted: the left row with nulls
        ("u1", None),  # every left change emits (a tombstone on delete)
        None, None,  # a tombstone for a key neither side holds: nothing (Kafka Streams)
    ],
    "outer_join": [
        ("u1", {"city": "Rome", "plan": None}), ("u1", {"city": "Rome", "plan": "gold"}),
        ("u1", {"city": "Oslo", "plan": "gold"}), ("u2", {"city": None, "plan": "free"}),
        ("u1", {"city": "Oslo", "plan": None}), ("u1", None),
        None,  # neither side holds u1 any more: nothing
        ("u2", None),
    ],
}


@pytest.mark.parametrize("how", sorted(EXPECTED))
def test_each_change_on_either_side_emits_as_kafka_streams_does(how: str) -> None:
    with TestDriver(_app(how)) as d:
        got = []
        for topic, key, value in TIMELINE:
            d.send(topic, key=key, value=value)
            out = d.read("out")
            assert len(out) <= 1, out
            got.append(out[0] if out else None)
    assert got == EXPECTED[how]


def test_a_filter_after_a_join_deletes_only_rows_that_passed() -> None:
    app = sl.App("tt-filter")
    users, accounts = app.table("users"), app.table("accounts")
    users.join(accounts, joiner).filter(lambda k, v: v["plan"] == "gold").to_stream().to("gold")
    with TestDriver(app) as d:
        d.send("users", key="u1", value={"city": "Rome"})
        d.send("accounts", key="u1", value={"plan": "free"})
        d.send("accounts", key="u1", value={"plan": "basic"})  # never passed: no tombstone
        assert d.read("gold") == []
        d.send("accounts", key="u1", value={"plan": "gold"})
        d.send("accounts", key="u1", value={"plan": "free"})  # passed before: a tombstone
        assert d.read("gold") == [("u1", {"city": "Rome", "plan": "gold"}), ("u1", None)]


def test_a_stream_joins_the_joined_table_through_its_value_getter() -> None:
    app = sl.App("tt-lookup")
    users, accounts = app.table("users"), app.table("accounts")
    plans = users.left_join(accounts, joiner)
    app.stream("orders").join(plans, lambda o, p: {**o, **p}).to("enriched")
    with TestDriver(app) as d:
        d.send("orders", key="u1", value={"n": 1})  # no user yet: dropped
        d.send("users", key="u1", value={"city": "Rome"})
        d.send("orders", key="u1", value={"n": 2})
        d.send("accounts", key="u1", value={"plan": "gold"})
        d.send("orders", key="u1", value={"n": 3})
        assert d.read("enriched") == [("u1", {"n": 2, "city": "Rome", "plan": None}),
                                      ("u1", {"n": 3, "city": "Rome", "plan": "gold"})]


def test_derived_tables_join_too() -> None:
    app = sl.App("tt-derived")
    adults = app.table("users").filter(lambda k, v: v["age"] >= 18)
    totals = app.stream("orders").group_by_key().aggregate(n=sl.agg.count(), name="totals")
    adults.join(totals, lambda u, t: {"age": u["age"], "orders": t["n"]}).to_stream().to("out")
    with TestDriver(app) as d:
        d.send("users", key="u1", value={"age": 30})
        d.send("orders", key="u1", value={"x": 1})
        d.send("orders", key="u1", value={"x": 2})
        d.send("users", key="u1", value={"age": 12})  # filtered out: the joined row goes
        assert d.read("out") == [("u1", {"age": 30, "orders": 1}), ("u1", {"age": 30, "orders": 2}),
                                 ("u1", None)]


def test_wrong_arguments_say_what_to_pass() -> None:
    app = sl.App("tt-bad")
    users = app.table("users")
    with pytest.raises(TypeError, match="needs another KTable"):
        users.join(app.stream("orders"), joiner)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="joiner function"):
        users.join(app.table("accounts"), "nope")  # type: ignore[arg-type]
    with pytest.raises(TopologyError, match="same App"):
        users.join(sl.App("other").table("x"), joiner)


def test_the_joined_tables_sources_share_one_task() -> None:
    app = _app("join")
    topics = app.topology.topics_of_subtopology()
    assert sorted(next(iter(topics.values()))) == ["accounts", "users"] and len(topics) == 1


@pytest.mark.parametrize("how", sorted(EXPECTED))
def test_a_result_carries_the_later_of_the_two_rows_times(how: str) -> None:
    """Kafka Streams stamps a table–table join's result with max(the change's time, the other row's
    time): a right row updated "in the past" still yields a result at the left row's later time."""
    with TestDriver(_app(how)) as d:
        d.send("users", key="u1", value={"city": "Rome"}, timestamp=5000)
        d.send("accounts", key="u1", value={"plan": "gold"}, timestamp=3000)   # older than the left row
        d.send("accounts", key="u1", value={"plan": "free"}, timestamp=4000)
        d.send("users", key="u1", value={"city": "Oslo"}, timestamp=6000)     # newer than the right row
        d.send("accounts", key="u1", value=None, timestamp=2000)              # a delete, also older
        got = [(r.value, r.timestamp) for r in d.read_records("out")]
    first = [({"city": "Rome", "plan": None}, 5000)] if how != "join" else []
    last = ({"city": "Oslo", "plan": None}, 6000) if how != "join" else (None, 6000)
    assert got == first + [({"city": "Rome", "plan": "gold"}, 5000), ({"city": "Rome", "plan": "free"}, 5000),
                           ({"city": "Oslo", "plan": "free"}, 6000), last]


def test_a_joined_aggregate_carries_its_latest_records_time() -> None:
    app = sl.App("tt-agg-time")
    totals = app.stream("orders").group_by_key().aggregate(n=sl.agg.count(), name="totals")
    app.table("users").join(totals, lambda u, t: {"city": u["city"], "orders": t["n"]}).to_stream().to("out")
    with TestDriver(app) as d:
        d.send("orders", key="u1", value={"x": 1}, timestamp=7000)
        d.send("orders", key="u1", value={"x": 2}, timestamp=6500)  # out of order: the aggregate keeps 7000
        d.send("users", key="u1", value={"city": "Rome"}, timestamp=1000)
        assert [(r.value, r.timestamp) for r in d.read_records("out")] == [({"city": "Rome", "orders": 2}, 7000)]


def test_a_stream_table_join_keeps_the_stream_records_time() -> None:
    app = sl.App("st-time")
    app.stream("orders").join(app.table("users"), lambda o, u: {**o, **u}).to("enriched")
    with TestDriver(app) as d:
        d.send("users", key="u1", value={"city": "Rome"}, timestamp=9000)
        d.send("orders", key="u1", value={"n": 1}, timestamp=1000)
        assert [(r.value, r.timestamp) for r in d.read_records("enriched")] == [({"n": 1, "city": "Rome"}, 1000)]
