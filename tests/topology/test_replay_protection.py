"""Replay protection of aggregations: a re-processed input record changes nothing.

``TestDriver.redeliver`` re-processes records at their original offsets, as a
task restarted from its last committed offset does after a crash. Records
made from one input (flat_map, process) and records that crossed a
repartition topic (re-written there at new offsets) must count exactly once.
"""

from __future__ import annotations

import streamlet as sl
from streamlet.record import Record
from streamlet.topology.origin import ORIGIN_HEADER, origin_value, parse_origin, with_origin


def test_records_made_from_one_input_all_count_and_replay_counts_none() -> None:
    app = sl.App("fm")
    app.stream("e").flat_map(lambda k, v: [(k, v), (k, v), ("other", v)]).group_by_key().aggregate(
        n=sl.agg.count(), last=sl.agg.latest_by_offset("v"), name="s")
    with sl.testing.TestDriver(app) as d:
        d.send("e", key="a", value={"v": 1})
        d.send("e", key="a", value={"v": 2})
        assert d.store("s")["a"] == {"n": 4, "last": 2}
        assert d.store("s")["other"] == {"n": 2, "last": 2}
        assert d.redeliver("e", from_offset=0) == 2
        assert d.store("s")["a"] == {"n": 4, "last": 2}
        assert d.store("s")["other"] == {"n": 2, "last": 2}


def test_flat_map_values_without_repartition_counts_each_output_once() -> None:
    app = sl.App("fmv")
    app.stream("e").flat_map_values(lambda v: [v, v, v]).group_by_key().count(name="c")
    with sl.testing.TestDriver(app) as d:
        d.send("e", key="a", value=1)
        d.send("e", key="a", value=2)
        assert d.store("c")["a"] == 6
        d.redeliver("e", from_offset=1)
        d.redeliver("e", from_offset=0)
        assert d.store("c")["a"] == 6


def test_process_outputs_of_one_input_count_once_each() -> None:
    app = sl.App("proc")

    def twice(r: Record) -> list[Record]:
        return [r._replace(value={"value": 1}), r._replace(value={"value": 2})]

    app.stream("e").process(twice).group_by_key().aggregate(
        n=sl.agg.count(), total=sl.agg.sum("value"), name="p")
    with sl.testing.TestDriver(app) as d:
        d.send("e", key="a", value=0)
        assert d.store("p")["a"] == {"n": 2, "total": 3}
        d.redeliver("e", from_offset=0)
        assert d.store("p")["a"] == {"n": 2, "total": 3}


def test_repartitioned_records_written_again_count_once() -> None:
    app = sl.App("rp")
    app.stream("e").group_by(lambda k, v: v["user"]).aggregate(
        first=sl.agg.earliest_by_offset("v"), last=sl.agg.latest_by_offset("v"), n=sl.agg.count(),
        name="summary").to_stream().to("out")
    with sl.testing.TestDriver(app) as d:
        for i in range(6):
            d.send("e", key=f"k{i}", value={"user": f"u{i % 2}", "v": i})
        before = dict(d.store("summary").items())
        out = d.read("out")
        # a crashed upstream task re-writes every record after its committed offset
        assert d.redeliver("e", from_offset=2) == 4
        assert dict(d.store("summary").items()) == before == {
            "u0": {"first": 0, "last": 4, "n": 3}, "u1": {"first": 1, "last": 5, "n": 3}}
        assert len(out) == 6
        assert d.read("out") == []  # nothing applied, nothing emitted


def test_flat_map_before_group_by_counts_each_output_once_across_the_hop() -> None:
    app = sl.App("fmrp")
    app.stream("e").flat_map(lambda k, v: [(g, v) for g in v["groups"]]).group_by_key().count(name="c")
    with sl.testing.TestDriver(app) as d:
        d.send("e", key="x", value={"groups": ["a", "a", "b"]})
        d.send("e", key="y", value={"groups": ["b"]})
        assert dict(d.store("c").items()) == {"a": 2, "b": 2}
        d.redeliver("e", from_offset=0)
        assert dict(d.store("c").items()) == {"a": 2, "b": 2}
        d.send("e", key="z", value={"groups": ["a"]})
        assert dict(d.store("c").items()) == {"a": 3, "b": 2}


def test_table_row_updated_within_its_group_subtracts_then_adds() -> None:
    app = sl.App("tg")
    app.table("users", name="users").group_by(lambda k, v: v["city"]).aggregate(
        lambda: 0, lambda k, v, agg: agg + v["age"], lambda k, v, agg: agg - v["age"], name="ages")
    with sl.testing.TestDriver(app) as d:
        d.send("users", key="u1", value={"city": "Paris", "age": 30})
        d.send("users", key="u1", value={"city": "Paris", "age": 31})  # "-30" and "+31" to Paris
        d.send("users", key="u2", value={"city": "Rome", "age": 50})
        assert dict(d.store("ages").items()) == {"Paris": 31, "Rome": 50}
        d.redeliver("users", from_offset=1)
        assert dict(d.store("ages").items()) == {"Paris": 31, "Rome": 50}


def test_origin_header_replaces_an_earlier_hop_and_keeps_user_headers() -> None:
    first = origin_value(7, 0, 1, "events")
    second = origin_value(42, 3, 2, "app-x-repartition")
    headers = with_origin([("trace", b"1"), (ORIGIN_HEADER, first)], second)
    assert headers == [(ORIGIN_HEADER, second), ("trace", b"1")]
    offset, seq, identity = parse_origin(second)
    assert (offset, seq) == (42, 3)
    assert identity.endswith(b"app-x-repartition")
    assert identity != parse_origin(origin_value(42, 3, 1, "app-x-repartition"))[2]
