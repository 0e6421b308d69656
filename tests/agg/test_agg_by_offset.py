"""latest/earliest_by_offset, first_value, min_by/max_by: nulls, n=, offsets, ties, merge."""

from __future__ import annotations

from typing import Any

import pytest

import streamlet as sl
from streamlet.errors import TopologyError
from tests.agg.agg_helpers import fold, run, rows

latest, earliest = sl.agg.latest_by_offset, sl.agg.earliest_by_offset


def test_the_seed_scenario() -> None:
    ages = rows(25, 26, 27, field="age")
    assert run(earliest("age"), ages) == 25
    assert run(latest("age"), ages) == 27


def test_a_record_whose_field_is_none_still_creates_the_row() -> None:
    # the state exists (the processor stores it); the value shown is None / []
    for agg in (latest("x"), earliest("x"),
                latest("x", ignore_nulls=False), earliest("x", ignore_nulls=False)):
        assert run(agg, rows(None)) is None
    for agg in (latest("x", n=2), earliest("x", n=2)):
        assert run(agg, rows(None)) == []
    assert run(sl.agg.first_value("x"), rows(None)) is None
    assert run(sl.agg.min_by("x", "y"), [{"x": None, "y": 1}]) is None


def test_ignore_nulls_skips_none_by_default() -> None:
    values = rows(None, "a", None, "b", None)
    assert run(latest("x"), values) == "b"
    assert run(earliest("x"), values) == "a"
    assert run(latest("x", n=5), values) == ["a", "b"]
    assert run(earliest("x", n=5), values) == ["a", "b"]


def test_ignore_nulls_false_keeps_none_as_a_value() -> None:
    values = rows(None, "a", None, "b", None)
    assert run(earliest("x", ignore_nulls=False), values) is None  # a leading None is the earliest value
    assert run(earliest("x", ignore_nulls=False), rows("a", None)) == "a"
    assert run(latest("x", ignore_nulls=False), values) is None
    assert run(latest("x", ignore_nulls=False), rows(None, "a")) == "a"
    assert run(earliest("x", n=3, ignore_nulls=False), values) == [None, "a", None]
    assert run(latest("x", n=3, ignore_nulls=False), values) == [None, "b", None]


def test_n_latest_and_earliest_are_oldest_first() -> None:
    values = rows(1, 2, None, 3, 4)
    assert run(latest("x", n=3), values) == [2, 3, 4]
    assert run(earliest("x", n=3), values) == [1, 2, 3]
    assert run(latest("x", n=1), values) == [4]
    assert run(earliest("x", n=1), values) == [1]
    assert run(latest("x", n=10), values) == [1, 2, 3, 4]


def test_offsets_decide_even_out_of_arrival_order() -> None:
    values, offsets = rows("c", "a", "b", "d"), [12, 10, 11, 13]
    assert run(earliest("x"), values, offsets=offsets) == "a"
    assert run(latest("x"), values, offsets=[12, 10, 11, 9]) == "c"
    assert run(earliest("x", n=2), values, offsets=offsets) == ["a", "b"]
    assert run(latest("x", n=2), values, offsets=offsets) == ["c", "d"]
    assert run(latest("x", n=3), values, offsets=[12, 10, 13, 11]) == ["d", "c", "b"]


def test_records_sharing_an_offset_keep_arrival_order() -> None:
    # one input record flat_mapped into several: same offset, arrival decides
    values, offsets = rows("a", "b", "c"), [7, 7, 7]
    assert run(earliest("x"), values, offsets=offsets) == "a"
    assert run(latest("x"), values, offsets=offsets) == "c"
    assert run(earliest("x", n=2), values, offsets=offsets) == ["a", "b"]
    assert run(latest("x", n=2), values, offsets=offsets) == ["b", "c"]


def test_values_of_any_shape() -> None:
    values = [{"x": {"a": [1]}}, {"x": [1, 2]}, {"x": 0}, {"x": False}, {"x": ""}]
    assert run(earliest("x"), values) == {"a": [1]}
    assert run(latest("x", n=4), values) == [[1, 2], 0, False, ""]  # falsy values are values
    assert run(earliest(None), [5, 6]) == 5


@pytest.mark.parametrize("bad", [0, -1, True, 2.0, "2"])
def test_n_must_be_a_positive_int(bad: Any) -> None:
    with pytest.raises(TopologyError, match="n must be a positive int"):
        latest("x", n=bad)
    with pytest.raises(TopologyError, match="n must be a positive int"):
        earliest("x", n=bad)


def test_ignore_nulls_must_be_a_bool() -> None:
    with pytest.raises(TopologyError, match="ignore_nulls must be True or False"):
        latest("x", ignore_nulls="no")


def test_first_value_is_kafka_streams_agg_null_rule() -> None:
    fv = sl.agg.first_value("x")
    assert run(fv, rows("a", "b")) == "a"
    assert run(fv, rows(None, "b", "c")) == "b"  # a None keeps it open
    assert run(fv, rows(0, 1)) == 0  # falsy values are accepted
    assert run(fv, rows(False, True)) is False
    assert run(fv, rows({"a": 1}, {"a": 2})) == {"a": 1}


def test_first_value_goes_by_arrival_earliest_by_offset_by_offset() -> None:
    values, offsets = rows("late", "early"), [9, 3]
    assert run(sl.agg.first_value("x"), values, offsets=offsets) == "late"
    assert run(earliest("x"), values, offsets=offsets) == "early"


PRICES = [{"name": "a", "price": 3}, {"name": "b", "price": 1}, {"name": "c", "price": 1},
          {"name": "d", "price": None}, {"name": "e", "price": 7}, {"name": "f", "price": 7}]


def test_min_by_max_by_a_field_with_ties() -> None:
    # ordered by (by, offset): min_by keeps the earlier of a tie, max_by takes the later
    assert run(sl.agg.min_by("name", "price"), PRICES) == "b"
    assert run(sl.agg.max_by("name", "price"), PRICES) == "f"
    assert run(sl.agg.min_by("name", lambda v: v["price"]), PRICES) == "b"
    # out of arrival order: the offset still decides the tie
    assert run(sl.agg.min_by("name", "price"), PRICES[1:3], offsets=[5, 4]) == "c"
    assert run(sl.agg.max_by("name", "price"), PRICES[4:6], offsets=[5, 4]) == "e"


def test_min_by_max_by_skip_a_none_by_but_not_a_none_field() -> None:
    assert run(sl.agg.max_by("name", "price"), [{"name": "a", "price": None}]) is None
    assert run(sl.agg.min_by("name", "price"), [{"name": "a", "price": 2}, {"price": 1}]) is None
    assert run(sl.agg.min_by("name", "price"), [{"name": "a", "price": 2}, {"name": "b"}]) == "a"


def test_by_timestamp_is_the_record_timestamp() -> None:
    # value fields called "timestamp" are ignored: in by=, "timestamp" is the record timestamp
    values = [{"name": n, "timestamp": -i} for i, n in enumerate("abcde")]
    ts = [50, 10, 10, 99, 99]
    for by in (sl.agg.TIMESTAMP, "timestamp"):
        assert run(sl.agg.min_by("name", by), values, timestamps=ts) == "b"
        assert run(sl.agg.max_by("name", by), values, timestamps=ts) == "e"
    # a value field of that name is reached with a function
    assert run(sl.agg.min_by("name", lambda v: v["timestamp"]), values, timestamps=ts) == "e"


def test_by_is_required() -> None:
    with pytest.raises(TopologyError, match="min_by needs by="):
        sl.agg.min_by("name", None)


@pytest.mark.parametrize("agg,ksql", [
    (latest("x"), "LATEST_BY_OFFSET"), (earliest("x", n=2), "EARLIEST_BY_OFFSET"),
    (sl.agg.first_value("x"), None), (sl.agg.min_by("x", "y"), None), (sl.agg.max_by("x", "timestamp"), None),
], ids=repr)
def test_none_of_them_can_subtract(agg, ksql) -> None:
    assert not agg.supports_subtract
    with pytest.raises(TopologyError, match="cannot be used in a table aggregation") as err:
        agg.subtract(agg.initial(), {"x": 1}, 0, 0)
    assert repr(agg) in str(err.value)
    if ksql:
        assert f"ksqlDB allows {ksql} on streams only" in str(err.value)


@pytest.mark.parametrize("agg", [
    latest("x"), earliest("x"), latest("x", ignore_nulls=False), earliest("x", ignore_nulls=False),
    latest("x", n=3), earliest("x", n=3), latest("x", n=2, ignore_nulls=False), sl.agg.first_value("x"),
    sl.agg.min_by("x", "y"), sl.agg.max_by("x", "y"), sl.agg.min_by("x", "timestamp"),
    sl.agg.max_by("x", "timestamp"),
], ids=repr)
def test_merging_two_sessions_equals_one_run(agg) -> None:
    values = [{"x": x, "y": y} for x, y in [(None, 2), ("a", 1), ("b", None), (None, 1), ("c", 3), ("d", 1),
                                            ("e", 3), (None, None)]]
    ts = [5, 1, 5, 1, 9, 1, 9, 0]
    whole = run(agg, values, timestamps=ts)
    for cut in range(len(values) + 1):
        a = fold(agg, values[:cut], timestamps=ts[:cut])
        b = fold(agg, values[cut:], offsets=list(range(cut, len(values))), timestamps=ts[cut:])
        assert agg.result(agg.merge(a, b)) == whole, cut
    # a late record can fall between them: the later session's records may have lower offsets
    if agg.name in ("latest_by_offset", "earliest_by_offset"):
        a = fold(agg, values[4:], offsets=[4, 5, 6, 7])
        b = fold(agg, values[:4], offsets=[0, 1, 2, 3])
        assert agg.result(agg.merge(a, b)) == whole
