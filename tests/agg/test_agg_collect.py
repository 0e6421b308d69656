"""collect_list, collect_set, top_k: nulls, order, equality by value, limits, subtract, merge."""

from __future__ import annotations

import math
from typing import Any

import pytest

import streamlet as sl
from streamlet.agg.collect import same
from streamlet.errors import TopologyError
from tests.agg.agg_helpers import fold, run, rows

MIXED = rows(1, None, 1, {"a": 1, "b": [2]}, [1, 2], {"b": [2], "a": 1}, [1, 2], None, "1")


def test_collect_list_keeps_everything_in_order() -> None:
    assert run(sl.agg.collect_list("x"), MIXED) == [m["x"] for m in MIXED]
    assert run(sl.agg.collect_list("x"), rows(None)) == [None]
    assert run(sl.agg.collect_list("x"), []) == []


def test_collect_set_keeps_none_and_first_seen_order_and_compares_by_value() -> None:
    assert run(sl.agg.collect_set("x"), MIXED) == [1, None, {"a": 1, "b": [2]}, [1, 2], "1"]
    assert run(sl.agg.collect_set("x"), rows(None, None)) == [None]


def test_collect_set_tells_types_apart() -> None:
    assert run(sl.agg.collect_set("x"), rows(1, True, 1.0, 1, True, 1.0)) == [1, True, 1.0]
    assert run(sl.agg.collect_set("x"), rows([1], [True], [1.0], [1])) == [[1], [True], [1.0]]
    assert run(sl.agg.collect_set("x"), rows(0, False, None, "", [], {})) == [0, False, None, "", [], {}]


def test_collect_set_treats_a_tuple_as_the_list_it_is_stored_as() -> None:
    agg = sl.agg.collect_set(lambda v: (v["a"], v["b"]))
    assert run(agg, [{"a": 1, "b": 2}, {"a": 1, "b": 2}, {"a": 2, "b": 1}]) == [[1, 2], [2, 1]]


def test_collect_set_counts_nan_once() -> None:
    assert len(run(sl.agg.collect_set("x"), rows(math.nan, float("nan"), 1.0), store=False)) == 2


def test_same() -> None:
    assert same({"a": [1, {"b": None}]}, {"a": (1, {"b": None})})
    assert not same({"a": 1}, {"a": 1, "b": 2}) and not same([1], [1, 1]) and not same(1, "1")
    assert not same(1, True) and not same(1, 1.0) and same(math.nan, math.nan)


def test_limits_ignore_values_beyond_them() -> None:
    assert run(sl.agg.collect_list("x", limit=2), rows(1, 2, 3)) == [1, 2]
    assert run(sl.agg.collect_set("x", limit=2), rows(1, 1, 2, 3, 2)) == [1, 2]
    with pytest.raises(TopologyError, match="limit must be a positive int"):
        sl.agg.collect_list("x", limit=0)


def test_top_k_is_descending_keeps_duplicates_skips_none() -> None:
    assert run(sl.agg.top_k("x", 3), rows(5, None, 9, 5, 1, 9)) == [9, 9, 5]
    assert run(sl.agg.top_k("x", 10), rows(2, None, 1, 3)) == [3, 2, 1]
    assert run(sl.agg.top_k("x", 2), rows(None)) == []
    assert run(sl.agg.top_k("x", 2), rows("b", "c", "a")) == ["c", "b"]
    assert run(sl.agg.top_k("x", 3), rows(1, 2.5, 2, 7)) == [7, 2.5, 2]


@pytest.mark.parametrize("bad", [0, -3, None, True, 1.5])
def test_k_must_be_a_positive_int(bad: Any) -> None:
    with pytest.raises(TopologyError, match="k must be a positive int"):
        sl.agg.top_k("x", bad)


@pytest.mark.parametrize("make", [sl.agg.collect_list, sl.agg.collect_set])
def test_subtract_undoes_add(make) -> None:
    agg = make("x")
    for a, b in [({"x": 3}, {"x": 4}), ({"x": None}, {"x": 4}), ({"x": [1]}, {"x": {"k": 1}}),
                 ({"x": 3}, {"x": 3}), ({"x": 1}, {"x": True})]:
        state = fold(agg, [a, b])
        assert agg.result(agg.subtract(state, a, 2, 0)) == agg.result(fold(agg, [b]))
        assert agg.result(agg.subtract(state, b, 2, 0)) == agg.result(fold(agg, [a]))


def test_collect_list_subtract_removes_the_last_occurrence_like_ksqldb() -> None:
    agg = sl.agg.collect_list("x")
    state = fold(agg, rows("a", "b", "a", 1))
    assert agg.result(agg.subtract(state, {"x": "a"}, 9, 0)) == ["a", "b", 1]
    assert agg.result(agg.subtract(state, {"x": True}, 9, 0)) == ["a", "b", "a", 1]  # True is not 1
    assert agg.result(agg.subtract(state, {"x": "zz"}, 9, 0)) == ["a", "b", "a", 1]


def test_collect_list_subtract_of_a_value_past_the_limit_changes_nothing() -> None:
    agg = sl.agg.collect_list("x", limit=2)
    state = fold(agg, rows("a", "b", "c"))
    assert agg.result(agg.subtract(state, {"x": "c"}, 9, 0)) == ["a", "b"]


def test_collect_set_keeps_a_value_until_its_last_record_is_subtracted() -> None:
    agg = sl.agg.collect_set("x")
    state = fold(agg, rows(1, {"k": 1}, 1, 2, {"k": 1}))
    state = agg.subtract(state, {"x": 1}, 9, 0)
    assert agg.result(state) == [1, {"k": 1}, 2]
    state = agg.subtract(state, {"x": 1}, 9, 0)
    assert agg.result(state) == [{"k": 1}, 2]
    state = agg.subtract(state, {"x": {"k": 1}}, 9, 0)
    assert agg.result(state) == [{"k": 1}, 2]
    state = agg.subtract(state, {"x": {"k": 1}}, 9, 0)
    assert agg.result(state) == [2]
    assert agg.subtract(state, {"x": "never"}, 9, 0) == state
    # after a subtract the value is new again: it goes to the end
    assert agg.result(agg.add(state, {"x": 1}, 10, 0)) == [2, 1]


def test_top_k_cannot_subtract_like_ksqldb() -> None:
    agg = sl.agg.top_k("x", 2)
    assert not agg.supports_subtract
    with pytest.raises(TopologyError, match="ksqlDB allows TOPK on streams only"):
        agg.subtract(agg.initial(), {"x": 1}, 0, 0)


@pytest.mark.parametrize("agg", [sl.agg.collect_list("x"), sl.agg.collect_list("x", limit=4),
                                 sl.agg.collect_set("x"), sl.agg.collect_set("x", limit=3),
                                 sl.agg.top_k("x", 3)], ids=repr)
def test_merging_two_sessions_equals_one_run(agg) -> None:
    values = rows(3, None, 1, 3, [1], 7, 1, None, 5, [1])
    if agg.name == "top_k":
        values = [v for v in values if not isinstance(v["x"], list)]
    whole = run(agg, values)
    for cut in range(len(values) + 1):
        merged = agg.merge(fold(agg, values[:cut]), fold(agg, values[cut:]))
        assert agg.result(merged) == whole, cut
