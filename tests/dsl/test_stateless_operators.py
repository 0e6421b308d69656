"""Every stateless KStream operator, through the TestDriver."""

from __future__ import annotations

import pytest

import streamlet as sl
from streamlet.errors import TopologyError
from streamlet.partitioner import murmur2_partition


def drive(build, *records, partitions: int = 1):
    app = sl.App("ops")
    build(app.stream("in"))
    d = sl.testing.TestDriver(app, partitions=partitions)
    for key, value in records:
        d.send("in", key=key, value=value, timestamp=1000)
    return d


def test_filter_and_filter_not() -> None:
    d = drive(lambda s: (s.filter(lambda k, v: v > 1).to("a"), s.filter_not(lambda k, v: v > 1).to("b")),
              ("x", 1), ("y", 2))
    assert d.read("a") == [("y", 2)] and d.read("b") == [("x", 1)]


def test_map_map_values_select_key() -> None:
    d = drive(lambda s: (s.map(lambda k, v: (f"{v}", k)).to("m"), s.map_values(lambda v: v * 10).to("mv"),
                         s.select_key(lambda k, v: f"{k}-{v}").to("sk")), ("x", 1))
    assert d.read("m") == [("1", "x")]
    assert d.read("mv") == [("x", 10)]
    assert d.read("sk") == [("x-1", 1)]


def test_map_output_with_matching_serdes() -> None:
    app = sl.App("ops")
    app.stream("in").map(lambda k, v: (str(v["id"]), {"from": k})).to("out")
    with sl.testing.TestDriver(app) as d:
        d.send("in", key="k1", value={"id": 7})
        assert d.read("out") == [("7", {"from": "k1"})]


def test_flat_map_and_flat_map_values() -> None:
    d = drive(lambda s: (s.flat_map(lambda k, v: [(f"{k}{i}", i) for i in range(v)]).to("fm"),
                         s.flat_map_values(lambda v: [v, v]).to("fmv")), ("k", 3))
    assert d.read("fm") == [("k0", 0), ("k1", 1), ("k2", 2)]
    assert d.read("fmv") == [("k", 3), ("k", 3)]


def test_peek_and_foreach_see_every_record() -> None:
    peeked, each = [], []
    d = drive(lambda s: (s.peek(lambda k, v: peeked.append(v)).to("p"), s.foreach(lambda k, v: each.append(k))),
              ("a", 1), ("b", 2))
    assert peeked == [1, 2] and each == ["a", "b"] and d.read("p") == [("a", 1), ("b", 2)]


def test_split_named_branches_first_match_and_default() -> None:
    def build(s):
        b = (s.split(name="n-").branch(lambda k, v: v < 10, name="small")
             .branch(lambda k, v: v < 100, name="medium").default_branch(name="large"))
        assert set(b) == {"n-small", "n-medium", "n-large"}
        for name, stream in b.items():
            stream.to(name)
    d = drive(build, ("a", 5), ("b", 50), ("c", 500))
    assert d.read("n-small") == [("a", 5)] and d.read("n-medium") == [("b", 50)] and d.read("n-large") == [("c", 500)]


def test_split_without_default_drops_unmatched_and_branch_list_form() -> None:
    def build(s):
        only = s.split().branch(lambda k, v: v == 1).no_default_branch()
        list(only.values())[0].to("ones")
        evens, odds = s.branch(lambda k, v: v % 2 == 0, lambda k, v: True)
        evens.to("evens")
        odds.to("odds")
    d = drive(build, ("a", 1), ("b", 2))
    assert d.read("ones") == [("a", 1)] and d.read("evens") == [("b", 2)] and d.read("odds") == [("a", 1)]
    with pytest.raises(TopologyError):
        sl.App("x").stream("t").branch()


def test_merge_interleaves_two_streams() -> None:
    app = sl.App("m")
    app.stream("a").merge(app.stream("b")).map_values(lambda v: v + 1).to("out")
    with sl.testing.TestDriver(app) as d:
        d.send("a", key="k", value=1)
        d.send("b", key="k", value=10)
        assert d.read("out") == [("k", 2), ("k", 11)]


def test_process_gets_the_whole_record_and_can_change_timestamp() -> None:
    seen = []

    def fn(r: sl.Record):
        seen.append(r)
        if r.value == "drop":
            return None
        if r.value == "two":
            return [r._replace(value="a"), r._replace(value="b")]
        return r._replace(value=r.value.upper(), timestamp=r.timestamp + 5, headers=[("h", b"1")])

    app = sl.App("p")
    app.stream("in").process(fn).to("out")
    with sl.testing.TestDriver(app) as d:
        d.send("in", key="k", value="x", timestamp=100, headers=[("orig", b"0")])
        d.send("in", key="k", value="drop", timestamp=200)
        d.send("in", key="k", value="two", timestamp=300)
        out = d.read_records("out")
    assert [(r.value, r.timestamp) for r in out] == [("X", 105), ("a", 300), ("b", 300)]
    assert out[0].headers == [("h", b"1")]
    first = seen[0]
    assert (first.key, first.topic, first.partition, first.offset, first.timestamp, first.headers) == \
        ("k", "in", 0, 0, 100, [("orig", b"0")])


def test_timestamps_and_headers_propagate_to_outputs() -> None:
    app = sl.App("t")
    app.stream("in").map_values(lambda v: v).to("out")
    with sl.testing.TestDriver(app) as d:
        d.send("in", key="k", value=1, timestamp=12345, headers=[("trace", b"abc")])
        (r,) = d.read_records("out")
    assert r.timestamp == 12345 and r.headers == [("trace", b"abc")]


def test_to_with_serdes_and_partitioner() -> None:
    app = sl.App("t")
    s = app.stream("in")
    s.map_values(lambda v: str(v)).to("text", value_serde=sl.serde.string())
    s.to("routed", partitioner=lambda k, v, n: v % n)
    with sl.testing.TestDriver(app, partitions=4) as d:
        d.send("in", key="k", value=6, partition=0)
        assert d.read_records("text")[0].value == "6"
        assert d.log["text"][0][0][1] == b"6"  # written as a plain string
        assert d.read_records("routed")[0].partition == 2
    with pytest.raises(TypeError):
        s.to("x", partitioner="nope")  # type: ignore[arg-type]


def test_default_partitioning_is_kafka_murmur2() -> None:
    app = sl.App("t")
    app.stream("in").select_key(lambda k, v: v).to("out")
    with sl.testing.TestDriver(app, partitions=8) as d:
        for v in ("a", "b", "c", "user-1"):
            d.send("in", key="k", value=v)
        assert [r.partition for r in d.read_records("out")] == [
            murmur2_partition(v.encode(), 8) for v in ("a", "b", "c", "user-1")]


def test_repartition_and_chained_topics_are_processed_in_turn() -> None:
    app = sl.App("r")
    app.stream("in").select_key(lambda k, v: v["user"]).repartition(name="by-user").to("mid")
    app.stream("mid").map_values(lambda v: v["n"]).to("out")
    assert "r-by-user-repartition" in app.topology.internal_topics
    assert len(app.topology.subtopologies()) == 3
    with sl.testing.TestDriver(app) as d:
        d.send("in", key="x", value={"user": "u1", "n": 1})
        assert d.read("out") == [("u1", 1)]


def test_functions_must_be_callable() -> None:
    s = sl.App("t").stream("in")
    with pytest.raises(TypeError):
        s.filter("not callable")  # type: ignore[arg-type]
