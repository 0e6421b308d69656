"""count, sum, min, max, avg: ksqlDB null rules, subtract, merge."""

from __future__ import annotations

import pytest

import streamlet as sl
from streamlet.errors import TopologyError
from tests.agg.agg_helpers import fold, run, rows


def test_count_every_record_or_non_null_field() -> None:
    assert run(sl.agg.count(), rows(1, None, 3)) == 3
    assert run(sl.agg.count("x"), rows(1, None, 3)) == 2  # ksqlDB COUNT(col)
    assert run(sl.agg.count("x"), [None, {"y": 1}]) == 0
    assert run(sl.agg.count(lambda v: v.get("x")), rows(None, 0)) == 1  # 0 is a value
    assert run(sl.agg.count(), []) == 0


def test_sum_skips_none_and_keeps_ints() -> None:
    total = run(sl.agg.sum("x"), rows(1, None, 2))
    assert total == 3 and type(total) is int
    assert run(sl.agg.sum("x"), rows(1, 2.5)) == 3.5


def test_sum_of_nothing_or_only_none_is_zero_like_ksqldb() -> None:
    # ksqlDB's SUM starts at 0 and skips nulls, so a row with only null values shows 0
    assert run(sl.agg.sum("x"), []) == 0
    only_none = run(sl.agg.sum("x"), rows(None, None))
    assert only_none == 0 and type(only_none) is int


def test_min_max_skip_none_and_start_as_none() -> None:
    assert run(sl.agg.min("x"), rows(5, None, 2, 9)) == 2
    assert run(sl.agg.max("x"), rows(5, None, 2, 9)) == 9
    assert run(sl.agg.min("x"), rows(None)) is None
    assert run(sl.agg.max("x"), rows(None)) is None
    assert run(sl.agg.min("x"), rows("b", "a", "c")) == "a"
    assert run(sl.agg.max("x"), rows(1.5, 2, None)) == 2


def test_avg_skips_none_and_is_a_float() -> None:
    assert run(sl.agg.avg("x"), rows(1, None, 2)) == 1.5
    two = run(sl.agg.avg("x"), rows(2, 2))
    assert two == 2.0 and type(two) is float


def test_avg_of_no_values_is_zero_like_ksqldb() -> None:
    # ksqlDB's AVG maps a (sum, count=0) aggregate to 0.0
    assert run(sl.agg.avg("x"), rows(None)) == 0.0
    assert run(sl.agg.avg("x"), []) == 0.0


@pytest.mark.parametrize("agg", [sl.agg.count(), sl.agg.count("x"), sl.agg.sum("x"), sl.agg.avg("x")],
                         ids=repr)
def test_subtract_undoes_add(agg) -> None:
    for a, b in [({"x": 3}, {"x": 4}), ({"x": None}, {"x": 4}), ({"x": 3}, {"x": None}),
                 ({"x": 3}, {"x": 3})]:
        state = fold(agg, [a, b])
        assert agg.result(agg.subtract(state, a, 2, 0)) == agg.result(fold(agg, [b]))
        assert agg.result(agg.subtract(state, b, 2, 0)) == agg.result(fold(agg, [a]))


def test_avg_subtracted_to_empty_is_clean() -> None:
    agg = sl.agg.avg("x")
    state = fold(agg, rows(0.1, 0.2))
    state = agg.subtract(agg.subtract(state, {"x": 0.1}, 2, 0), {"x": 0.2}, 3, 0)
    assert state == [0, 0] and agg.result(state) == 0.0


@pytest.mark.parametrize("make,ksql", [(sl.agg.min, "MIN"), (sl.agg.max, "MAX")])
def test_min_max_cannot_subtract_like_ksqldb(make, ksql) -> None:
    agg = make("x")
    assert not agg.supports_subtract
    with pytest.raises(TopologyError, match=f"ksqlDB allows {ksql} on streams only"):
        agg.subtract(agg.initial(), {"x": 1}, 0, 0)


def test_merge() -> None:
    a, b = rows(3, None, 5), rows(1, 2)
    for agg, expected in [(sl.agg.count(), 5), (sl.agg.count("x"), 4), (sl.agg.sum("x"), 11),
                          (sl.agg.min("x"), 1), (sl.agg.max("x"), 5), (sl.agg.avg("x"), 11 / 4)]:
        assert agg.result(agg.merge(fold(agg, a), fold(agg, b))) == expected, agg
        assert agg.result(agg.merge(agg.initial(), fold(agg, b))) == agg.result(fold(agg, b))
        assert agg.result(agg.merge(fold(agg, a), agg.initial())) == agg.result(fold(agg, a))
