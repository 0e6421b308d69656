"""Bad records the TestDriver handles like the runtime: an aggregator reading a field of a value that
is not a dict, and an output too large for the producer's ``message.max.bytes``."""

from __future__ import annotations

from typing import Any

import pytest

import streamlet as sl
from streamlet.errors import FieldError, ProduceError, RecordError
from streamlet.topology import codegen

BAD_VALUES = ["text", [1, 2], 5]


def summary_app(policy: str, regroup: bool) -> sl.App:
    app = sl.App("fields", on_error=policy)
    events = app.stream("events")
    grouped = events.group_by(lambda k, v: k) if regroup else events.group_by_key()
    grouped.aggregate(first=sl.agg.earliest_by_offset("name"), last=sl.agg.latest_by_offset("name"),
                      n=sl.agg.count(), name="summary")
    return app


@pytest.fixture(params=["generated", "closures"])
def chains(request: pytest.FixtureRequest) -> Any:
    old = codegen.enabled
    codegen.enabled = request.param == "generated"
    yield request.param
    codegen.enabled = old


@pytest.mark.parametrize("regroup", [False, True], ids=["group_by_key", "group_by"])
@pytest.mark.parametrize("bad", BAD_VALUES, ids=["str", "list", "int"])
def test_a_value_that_is_not_a_dict_is_a_bad_record_under_fail(chains: str, regroup: bool, bad: Any) -> None:
    with sl.testing.TestDriver(summary_app("fail", regroup)) as d:
        d.send("events", key="u1", value={"name": "Alice"})
        with pytest.raises(RecordError) as info:
            d.send("events", key="u1", value=bad)
        error = info.value
        assert isinstance(error.cause, FieldError) and error.stage == "process"
        text = str(error)
        assert "sl.agg.earliest_by_offset('name') reads field 'name'" in text
        assert f"this value is a {type(bad).__name__}, not a dict" in text
        if not regroup:
            assert (error.topic, error.offset) == ("events", 1)
        assert d.store("summary")["u1"] == {"first": "Alice", "last": "Alice", "n": 1}  # row untouched


@pytest.mark.parametrize("policy", ["skip", "dead_letter"])
def test_bad_values_are_skipped_or_dead_lettered_and_tombstones_and_missing_fields_keep_their_meaning(
        chains: str, policy: str) -> None:
    app = summary_app(policy, regroup=False)
    with sl.testing.TestDriver(app) as d:
        d.send("events", key="u1", value={"name": "Alice"})
        for bad in BAD_VALUES:
            d.send("events", key="u1", value=bad)
        d.send("events", key="u1", value=None)  # a tombstone on a grouped stream: dropped
        d.send("events", key="u1", value={"age": 3})  # no name: the field is None
        d.send("events", key="u1", value={"name": "Bob"})
        assert d.store("summary")["u1"] == {"first": "Alice", "last": "Bob", "n": 3}
        if policy == "skip":
            assert d.policy.skipped == 3
            return
        dead = d.read_records("fields-dead-letter")
        assert [r.value for r in dead] == [b'"text"', b"[1,2]", b"5"]
        assert all(dict(r.headers)["streamlet.error.type"] == b"FieldError" for r in dead)
        assert [dict(r.headers)["streamlet.offset"] for r in dead] == [b"1", b"2", b"3"]


@pytest.mark.parametrize("agg", [
    sl.agg.first_value("name"), sl.agg.min_by("name", by=sl.agg.TIMESTAMP),
    sl.agg.collect_list("name", limit=1),
    sl.agg.earliest_by_offset("name", n=1), sl.agg.count("name"), sl.agg.collect_set("name"),
    sl.agg.top_k("name", 2), sl.agg.max_by("x", by="name"),
], ids=repr)
def test_every_aggregator_reading_a_field_by_name_checks_the_value(chains: str, agg: Any) -> None:
    """Also where the aggregator need not read the field (a value is already held, a limit is reached)."""
    app = sl.App("each", on_error="fail")
    app.stream("events").group_by_key().aggregate(col=agg, name="rows")
    with sl.testing.TestDriver(app) as d:
        d.send("events", key="u1", value={"name": "a", "x": 1})
        with pytest.raises(RecordError) as info:
            d.send("events", key="u1", value="text")
        assert isinstance(info.value.cause, FieldError) and repr(agg) in str(info.value)


def test_a_field_read_by_a_function_or_the_whole_value_takes_any_value(chains: str) -> None:
    app = sl.App("whole")
    app.stream("events").group_by_key().aggregate(all=sl.agg.collect_list(None),
                                                  lens=sl.agg.sum(lambda v: len(v)), name="rows")
    with sl.testing.TestDriver(app) as d:
        for value in ["ab", [1, 2, 3], {"a": 1}]:
            d.send("events", key="u1", value=value)
        assert d.store("rows")["u1"] == {"all": ["ab", [1, 2, 3], {"a": 1}], "lens": 6}


def big_app(policy: str) -> sl.App:
    app = sl.App("big", on_error=policy, config={"message.max.bytes": 10_000})
    app.stream("in").map_values(lambda v: {"pad": "x" * v["n"]}).to("out")
    return app


@pytest.mark.parametrize("policy", ["fail", "skip", "dead_letter"])
def test_an_output_over_message_max_bytes_is_a_record_error(chains: str, policy: str) -> None:
    app = big_app(policy)
    with sl.testing.TestDriver(app) as d:
        d.send("in", key="k", value={"n": 1})
        if policy == "fail":
            with pytest.raises(RecordError) as info:
                d.send("in", key="k", value={"n": 20_000})
            assert isinstance(info.value.cause, ProduceError) and info.value.stage == "produce"
            assert "topic 'out'" in str(info.value) and "message.max.bytes" in str(info.value)
            return
        d.send("in", key="k", value={"n": 20_000})
        d.send("in", key="k", value={"n": 2})
        assert [len(v["pad"]) for _, v in d.read("out")] == [1, 2]
        if policy == "skip":
            assert d.policy.skipped == 1
            return
        (r,) = d.read_records("big-dead-letter")
        headers = dict(r.headers)
        assert r.value == b'{"n":20000}' and headers["streamlet.output.topic"] == b"out"
        assert headers["streamlet.stage"] == b"produce" and headers["streamlet.error.type"] == b"ProduceError"
