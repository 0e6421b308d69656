"""Tables, aggregations and stream–table joins through the TestDriver (DESIGN §1 semantics)."""

from __future__ import annotations

import pytest

import streamlet as sl
from streamlet.errors import RecordError, TopologyError


def seed_app() -> sl.App:
    app = sl.App("seed-app")
    events = app.stream("user-events")
    seen: list = []
    events.peek(lambda k, v: seen.append((k, v))).to("user-events-copy")
    app.seen = seen  # type: ignore[attr-defined]
    app.table("users", name="users-table")
    events.group_by_key().aggregate(
        first_age=sl.agg.earliest_by_offset("age"),
        last_age=sl.agg.latest_by_offset("age"),
        events=sl.agg.count(),
        name="user-summary",
    ).to_stream().to("summaries")
    return app


def test_seed_scenario_stream_table_and_aggregates() -> None:
    app = seed_app()
    with sl.testing.TestDriver(app) as d:
        for age in (25, 26, 27):
            d.send("user-events", key="user-1", value={"name": "Alice", "age": age})
            d.send("users", key="user-1", value={"name": "Alice", "age": age})
        # a stream sees three independent events
        assert [v["age"] for _, v in d.read("user-events-copy")] == [25, 26, 27]
        assert len(app.seen) == 3  # type: ignore[attr-defined]
        # a table keeps the latest value per key
        assert d.store("users-table")["user-1"] == {"name": "Alice", "age": 27}
        assert len(d.store("users-table")) == 1
        row = d.store("user-summary")["user-1"]
        assert row == {"first_age": 25, "last_age": 27, "events": 3}
        # every update of the aggregate is emitted (EMIT CHANGES)
        assert [v["events"] for _, v in d.read("summaries")] == [1, 2, 3]
        # a tombstone deletes the table row
        d.send("users", key="user-1", value=None)
        assert "user-1" not in d.store("users-table")
        assert d.store("users-table").get("user-1") is None


def test_tombstone_on_grouped_stream_is_dropped() -> None:
    app = sl.App("t")
    app.stream("e").group_by_key().count(name="c").to_stream().to("out")
    with sl.testing.TestDriver(app) as d:
        d.send("e", key="a", value={"x": 1})
        d.send("e", key="a", value=None)
        assert d.store("c")["a"] == 1
        assert d.read("out") == [("a", 1)]


def test_group_by_none_key_drops_record_and_repartitions() -> None:
    app = sl.App("t")
    app.stream("orders").group_by(lambda k, v: v.get("user")).count(name="per-user").to_stream().to("out")
    assert "t-per-user-repartition" in app.topology.internal_topics
    assert "t-per-user-changelog" in app.topology.internal_topics
    with sl.testing.TestDriver(app) as d:
        d.send("orders", key="o1", value={"user": "u1"})
        d.send("orders", key="o2", value={"user": None})
        d.send("orders", key="o3", value={"user": "u1"})
        d.send("orders", key="o4", value={"user": "u2"})
        assert dict(d.store("per-user").items()) == {"u1": 2, "u2": 1}
        assert d.read("out") == [("u1", 1), ("u1", 2), ("u2", 1)]


def test_stream_table_join_reads_table_at_that_moment() -> None:
    app = sl.App("j")
    users = app.table("users")
    orders = app.stream("orders")
    orders.join(users, lambda o, u: {**o, "user": u["name"]}).to("enriched")
    orders.left_join(users, lambda o, u: {**o, "user": u and u["name"]}).to("enriched-left")
    with sl.testing.TestDriver(app) as d:
        d.send("orders", key="u1", value={"id": 0})  # no user yet
        d.send("users", key="u1", value={"name": "Alice"})
        d.send("orders", key="u1", value={"id": 1})
        d.send("users", key="u1", value={"name": "Alicia"})  # later update: no re-emit
        assert d.read("enriched") == [("u1", {"id": 1, "user": "Alice"})]
        d.send("orders", key="u1", value={"id": 2})
        assert d.read("enriched") == [("u1", {"id": 2, "user": "Alicia"})]
        assert d.read("enriched-left") == [
            ("u1", {"id": 0, "user": None}),
            ("u1", {"id": 1, "user": "Alice"}),
            ("u1", {"id": 2, "user": "Alicia"}),
        ]


def test_join_after_key_change_repartitions() -> None:
    app = sl.App("j")
    users = app.table("users")
    app.stream("orders").select_key(lambda k, v: v["user"]).join(users, lambda o, u: u["name"]).to("out")
    assert any(t.kind == "repartition" for t in app.topology.internal_topics.values())
    with sl.testing.TestDriver(app) as d:
        d.send("users", key="u1", value={"name": "Alice"})
        d.send("orders", key="o1", value={"user": "u1"})
        assert d.read("out") == [("u1", "Alice")]


def test_join_against_filtered_and_mapped_table() -> None:
    app = sl.App("j")
    adults = app.table("users").filter(lambda k, v: v["age"] >= 18).map_values(lambda v: v["name"])
    app.stream("orders").join(adults, lambda o, name: f"{o['id']}:{name}").to("out")
    with sl.testing.TestDriver(app) as d:
        d.send("users", key="a", value={"name": "Ann", "age": 30})
        d.send("users", key="b", value={"name": "Bob", "age": 12})
        d.send("orders", key="a", value={"id": 1})
        d.send("orders", key="b", value={"id": 2})
        assert d.read("out") == [("a", "1:Ann")]


def test_table_regroup_subtracts_from_old_group() -> None:
    app = sl.App("g")
    users = app.table("users")
    users.group_by(lambda k, v: v["city"]).count(name="per-city").to_stream().to("out")
    users.group_by(lambda k, v: v["city"]).aggregate(
        lambda: 0, lambda k, v, agg: agg + v["age"], lambda k, v, agg: agg - v["age"], name="age-sum")
    with sl.testing.TestDriver(app) as d:
        d.send("users", key="u1", value={"city": "Paris", "age": 30})
        d.send("users", key="u2", value={"city": "Paris", "age": 40})
        d.send("users", key="u1", value={"city": "Rome", "age": 31})
        assert dict(d.store("per-city").items()) == {"Paris": 1, "Rome": 1}
        assert dict(d.store("age-sum").items()) == {"Paris": 40, "Rome": 31}
        d.send("users", key="u2", value=None)
        assert dict(d.store("per-city").items()) == {"Paris": 0, "Rome": 1}
        assert d.read("out") == [("Paris", 1), ("Paris", 2), ("Paris", 1), ("Rome", 1), ("Paris", 0)]


def test_table_aggregation_rejects_by_offset_aggregators() -> None:
    app = sl.App("g")
    with pytest.raises(TopologyError, match="latest"):
        app.table("users").group_by(lambda k, v: v["city"]).aggregate(
            last=sl.agg.latest_by_offset("name"), name="x")


def test_replay_after_crash_does_not_change_offset_aggregates() -> None:
    app = sl.App("r")
    app.stream("e").group_by_key().aggregate(
        first=sl.agg.earliest_by_offset("v"), last=sl.agg.latest_by_offset("v"),
        n=sl.agg.count(), name="s")
    app.stream("f").group_by_key().count(name="plain-count")
    with sl.testing.TestDriver(app) as d:
        for v in (1, 2, 3):
            d.send("e", key="k", value={"v": v})
            d.send("f", key="k", value={"v": v})
        assert d.redeliver("e", from_offset=1) == 2
        assert d.redeliver("f", from_offset=0) == 3
        assert d.store("s")["k"] == {"first": 1, "last": 3, "n": 3}
        assert d.store("plain-count")["k"] == 3


def test_dict_form_serves_a_column_called_name() -> None:
    app = sl.App("d")
    app.stream("e").group_by_key().aggregate({"name": sl.agg.latest_by_offset("name")}, name="s")
    with sl.testing.TestDriver(app) as d:
        d.send("e", key="k", value={"name": "A"})
        d.send("e", key="k", value={"name": "B"})
        assert d.store("s")["k"] == {"name": "B"}


def test_reduce_and_user_aggregate() -> None:
    app = sl.App("d")
    app.stream("x").group_by_key().reduce(lambda a, b: a + b, name="sum").to_stream().to("sums")
    app.stream("y").group_by_key().aggregate(lambda: [], lambda k, v, agg: agg + [v], name="lists")
    with sl.testing.TestDriver(app) as d:
        d.send("x", key="k", value=1)
        d.send("x", key="k", value=2)
        d.send("y", key="k", value="a")
        d.send("y", key="k", value="b")
        assert d.read("sums") == [("k", 1), ("k", 3)]
        assert d.store("lists")["k"] == ["a", "b"]


def test_non_serializable_aggregate_is_a_record_error() -> None:
    app = sl.App("d")
    app.stream("y").group_by_key().aggregate(lambda: set(), lambda k, v, agg: agg | {v}, name="sets")
    with sl.testing.TestDriver(app) as d:
        with pytest.raises(RecordError) as info:
            d.send("y", key="k", value="a")
        assert info.value.topic == "y" and info.value.offset == 0
        assert "cannot be stored" in str(info.value)


def test_table_record_without_key_follows_error_policy() -> None:
    app = sl.App("d")
    app.table("users")
    with sl.testing.TestDriver(app) as d:
        with pytest.raises(RecordError, match="no key"):
            d.send("users", key=None, value={"a": 1})
    app2 = sl.App("d2", on_error="skip")
    app2.table("users")
    with sl.testing.TestDriver(app2) as d:
        d.send("users", key=None, value={"a": 1})
        d.send("users", key="k", value={"a": 2})
        assert d.policy.skipped == 1
        assert dict(d.store("users").items()) == {"k": {"a": 2}}


def test_aggregations_need_a_name_and_unique_stores() -> None:
    app = sl.App("d")
    with pytest.raises(TopologyError, match="name="):
        app.stream("e").group_by_key().count()
    app.stream("f").group_by_key().count(name="c")
    with pytest.raises(TopologyError, match="named 'c'"):
        app.stream("g").group_by_key().count(name="c")


def test_a_filter_after_an_aggregation_deletes_a_row_that_stops_passing() -> None:
    app = sl.App("agg-filter")
    (app.stream("clicks").group_by_key().count(name="clicks")
     .filter(lambda k, n: n < 2).to_stream().to("rare"))
    with sl.testing.TestDriver(app) as d:
        for key in ("a", "b", "a", "a"):
            d.send("clicks", key=key, value={})
        # a's second click fails the filter: its row is deleted (a tombstone), then nothing more
        assert d.read("rare") == [("a", 1), ("b", 1), ("a", None)]
