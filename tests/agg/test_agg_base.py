"""Field selection, the TIMESTAMP rule, plain-data states and the base class defaults."""

from __future__ import annotations

from typing import Any

import pytest

import streamlet as sl
from streamlet.agg.base import field_getter, state_problem
from streamlet.errors import FieldError, TopologyError
from tests.agg.agg_helpers import run


def test_field_name_reads_a_dict_key_and_a_value_that_is_not_a_dict_is_a_bad_record() -> None:
    get = field_getter("x")
    assert get({"x": 5}) == 5
    assert get({"y": 5}) is None  # missing key
    assert get(None) is None  # a tombstone keeps its meaning
    for bad in ("not a dict", 7, [1, 2]):
        with pytest.raises(FieldError, match=f"reads field 'x' .* is a {type(bad).__name__}, not a dict"):
            get(bad)


def test_field_function_and_whole_value() -> None:
    assert field_getter(lambda v: v["a"] * 2)({"a": 2}) == 4
    assert field_getter(None)({"a": 1}) == {"a": 1}
    assert run(sl.agg.sum(lambda v: v["a"] * 2), [{"a": 1}, {"a": 2}]) == 6
    assert run(sl.agg.collect_list(None), [1, "b", None]) == [1, "b", None]
    assert run(sl.agg.latest_by_offset(None), ["not a dict", {"x": 1}, 42]) == 42  # the whole value
    with pytest.raises(FieldError, match=r"sl.agg.latest_by_offset\('x'\) reads field 'x'"):
        run(sl.agg.latest_by_offset("x"), [{"x": 1}, 42])


@pytest.mark.parametrize("bad", [3, 2.5, b"x", ["x"]])
def test_a_field_of_another_type_is_a_clear_error(bad: Any) -> None:
    with pytest.raises(TopologyError, match="field must be a field name"):
        sl.agg.sum(bad)
    with pytest.raises(TopologyError, match="by must be a field name"):
        sl.agg.min_by("x", bad)


def test_timestamp_is_the_reserved_name_timestamp() -> None:
    assert sl.agg.TIMESTAMP == "timestamp"


def test_state_problem_accepts_plain_data_only() -> None:
    assert state_problem([None, True, 1, 2.5, "s", b"b", {"k": [1, {"n": None}]}]) is None
    assert "tuple" in state_problem([1, (2, 3)])
    assert "set" in state_problem({"k": {1, 2}})
    assert "not a str" in state_problem({1: "a"})
    assert "object" in state_problem([object()])


def test_base_class_defaults() -> None:
    class Bare(sl.agg.Aggregator):
        pass

    a = Bare()
    assert a.initial() is None and a.result(5) == 5
    assert not a.supports_subtract and not a.supports_merge and a.needs_state_check
    with pytest.raises(NotImplementedError, match="Bare must implement add"):
        a.add(None, 1, 0, 0)
    with pytest.raises(TopologyError, match="cannot be used in a table aggregation"):
        a.subtract(None, 1, 0, 0)
    with pytest.raises(TopologyError, match="cannot merge two session windows"):
        a.merge(None, None)
    assert repr(a) == "Bare()"


def test_reprs_read_like_the_call() -> None:
    assert repr(sl.agg.count()) == "sl.agg.count()"
    assert repr(sl.agg.count("x")) == "sl.agg.count('x')"
    assert repr(sl.agg.latest_by_offset("name", n=3, ignore_nulls=False)) == \
        "sl.agg.latest_by_offset('name', n=3, ignore_nulls=False)"
    assert repr(sl.agg.max_by("name", sl.agg.TIMESTAMP)) == "sl.agg.max_by('name', by='timestamp')"
    assert repr(sl.agg.top_k("x", 3)) == "sl.agg.top_k('x', 3)"
    assert repr(sl.agg.collect_set("x", limit=10)) == "sl.agg.collect_set('x', limit=10)"

    def price(v: Any) -> Any:
        return v["p"]

    assert repr(sl.agg.sum(price)) == "sl.agg.sum(price)"
