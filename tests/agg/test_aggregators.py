"""Every aggregator's semantics (ksqlDB / Kafka Streams rules), states that survive storage."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

import streamlet as sl
from streamlet.agg import Aggregation
from streamlet.errors import TopologyError


def run(agg: Any, values: list[Any], roundtrip: bool = True, timestamps: list[int] | None = None) -> Any:
    """Fold values as the processor does (offsets 0..n), storing the state with msgpack in between."""
    state = agg.initial()
    for offset, value in enumerate(values):
        ts = timestamps[offset] if timestamps else 1000 + offset
        state = agg.add(state, value, offset, ts)
        if roundtrip:
            state = msgpack.unpackb(msgpack.packb(state, use_bin_type=True), raw=False)
    return agg.result(state)


def rows(*xs: Any) -> list[dict]:
    return [{"x": x} for x in xs]


def test_count_all_and_count_field() -> None:
    assert run(sl.agg.count(), rows(1, None, 3)) == 3
    assert run(sl.agg.count("x"), rows(1, None, 3)) == 2
    assert run(sl.agg.count(), []) == 0


def test_sum_min_max_avg_skip_none_and_keep_ints() -> None:
    assert run(sl.agg.sum("x"), rows(1, None, 2)) == 3 and isinstance(run(sl.agg.sum("x"), rows(1, 2)), int)
    assert run(sl.agg.sum("x"), rows(None)) == 0
    assert run(sl.agg.min("x"), rows(5, None, 2, 9)) == 2
    assert run(sl.agg.max("x"), rows(5, None, 2, 9)) == 9
    assert run(sl.agg.min("x"), rows(None)) is None
    assert run(sl.agg.avg("x"), rows(1, None, 2)) == 1.5
    assert run(sl.agg.avg("x"), rows(None)) is None


def test_latest_and_earliest_by_offset_with_nulls() -> None:
    values = rows(None, "a", None, "b", "c")
    assert run(sl.agg.latest_by_offset("x"), values) == "c"
    assert run(sl.agg.earliest_by_offset("x"), values) == "a"
    # a record whose field is None still creates the row
    assert run(sl.agg.earliest_by_offset("x"), rows(None)) is None
    assert run(sl.agg.latest_by_offset("x", n=2), rows(None)) == []
    # ignore_nulls=False: a leading None is the earliest value, Nones are list elements
    assert run(sl.agg.earliest_by_offset("x", ignore_nulls=False), values) is None
    assert run(sl.agg.latest_by_offset("x", ignore_nulls=False), rows("a", None)) is None
    assert run(sl.agg.earliest_by_offset("x", n=3, ignore_nulls=False), values) == [None, "a", None]


def test_n_latest_and_earliest_are_oldest_first() -> None:
    values = rows(1, 2, None, 3, 4)
    assert run(sl.agg.latest_by_offset("x", n=3), values) == [2, 3, 4]
    assert run(sl.agg.earliest_by_offset("x", n=3), values) == [1, 2, 3]
    assert run(sl.agg.latest_by_offset("x", n=3, ignore_nulls=False), values) == [None, 3, 4]


def test_first_value_is_kafka_streams_agg_null_rule() -> None:
    assert run(sl.agg.first_value("x"), rows("a", "b")) == "a"
    assert run(sl.agg.first_value("x"), rows(None, "b", "c")) == "b"  # a None keeps it open


def test_min_by_max_by_field_and_timestamp_with_ties() -> None:
    values = [{"name": "a", "price": 3}, {"name": "b", "price": 1}, {"name": "c", "price": 1},
              {"name": "d", "price": None}, {"name": "e", "price": 7}]
    assert run(sl.agg.min_by("name", "price"), values) == "b"  # tie: the earlier record
    assert run(sl.agg.max_by("name", "price"), values) == "e"
    ts = [50, 10, 10, 99, 20]
    assert run(sl.agg.min_by("name", sl.agg.TIMESTAMP), values, timestamps=ts) == "b"
    assert run(sl.agg.max_by("name", sl.agg.TIMESTAMP), values, timestamps=ts) == "d"
    # a plain string is always a field name
    assert run(sl.agg.max_by("name", "timestamp"), [{"name": "z", "timestamp": 5}]) == "z"


def test_collect_list_and_collect_set_keep_none_and_order() -> None:
    values = rows(1, None, 1, {"a": 1}, [1, 2], {"a": 1}, [1, 2], None)
    assert run(sl.agg.collect_list("x"), values) == [1, None, 1, {"a": 1}, [1, 2], {"a": 1}, [1, 2], None]
    assert run(sl.agg.collect_set("x"), values) == [1, None, {"a": 1}, [1, 2]]
    assert run(sl.agg.collect_set("x"), rows(1, True, 1.0)) == [1, True, 1.0]  # compared by value and type


def test_top_k_descending_keeps_duplicates_skips_none() -> None:
    assert run(sl.agg.top_k("x", 3), rows(5, None, 9, 5, 1, 9)) == [9, 9, 5]
    assert run(sl.agg.top_k("x", 10), rows(2, 1)) == [2, 1]


def test_field_forms() -> None:
    assert run(sl.agg.sum(lambda v: v["a"] * 2), [{"a": 1}, {"a": 2}]) == 6
    assert run(sl.agg.collect_list(None), [1, 2]) == [1, 2]
    assert run(sl.agg.latest_by_offset("x"), ["not a dict", {"x": 1}]) == 1
    with pytest.raises(ValueError):
        sl.agg.latest_by_offset("x", n=0)


@pytest.mark.parametrize("agg", [sl.agg.count(), sl.agg.count("x"), sl.agg.sum("x"), sl.agg.avg("x"),
                                 sl.agg.collect_list("x"), sl.agg.collect_set("x")],
                         ids=lambda a: a.name)
def test_subtract_undoes_add(agg) -> None:
    a, b = {"x": 3}, {"x": 4}
    state = agg.add(agg.add(agg.initial(), a, 0, 0), b, 1, 0)
    state = agg.subtract(state, a, 2, 0)
    only_b = agg.add(agg.initial(), b, 0, 0)
    assert agg.result(state) == agg.result(only_b)


def test_collect_set_subtract_keeps_values_still_present() -> None:
    agg = sl.agg.collect_set("x")
    state = agg.initial()
    for v in (1, 1, 2):
        state = agg.add(state, {"x": v}, 0, 0)
    state = agg.subtract(state, {"x": 1}, 0, 0)
    assert agg.result(state) == [1, 2]


@pytest.mark.parametrize("agg", [sl.agg.latest_by_offset("x"), sl.agg.earliest_by_offset("x"),
                                 sl.agg.first_value("x"), sl.agg.min_by("x", "y"), sl.agg.top_k("x", 2)],
                         ids=lambda a: a.name)
def test_order_based_aggregators_cannot_subtract(agg) -> None:
    assert not agg.supports_subtract
    with pytest.raises(TopologyError, match="cannot undo"):
        agg.subtract(agg.initial(), {"x": 1}, 0, 0)


def test_custom_and_subclassed_aggregators() -> None:
    longest = sl.agg.custom(lambda: "", lambda s, v: max(s, v["w"], key=len))
    assert run(longest, [{"w": "ab"}, {"w": "abcd"}, {"w": "x"}]) == "abcd"
    assert not longest.supports_subtract

    class Span(sl.agg.Aggregator):
        name = "span"

        def initial(self) -> Any:
            return None

        def add(self, state: Any, value: Any, offset: int, timestamp: int) -> Any:
            return [timestamp, timestamp] if state is None else [state[0], timestamp]

        def result(self, state: Any) -> Any:
            return state[1] - state[0]

    assert run(Span(), [1, 2, 3], timestamps=[100, 150, 400]) == 300


def test_aggregation_of_several_columns() -> None:
    agg = Aggregation({"n": sl.agg.count(), "total": sl.agg.sum("x"), "last": sl.agg.latest_by_offset("x")})
    assert run(agg, rows(1, 2, None)) == {"n": 3, "total": 3, "last": 2}
    assert not agg.supports_subtract
    assert Aggregation({"n": sl.agg.count(), "s": sl.agg.sum("x")}).supports_subtract
