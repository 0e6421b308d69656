"""Aggregation: several named columns over one list of states."""

from __future__ import annotations

import pytest

import streamlet as sl
from streamlet.agg import Aggregation
from streamlet.errors import StateError, TopologyError
from tests.agg.agg_helpers import fold, run, rows


def test_several_columns_give_a_dict_per_row() -> None:
    agg = Aggregation({"n": sl.agg.count(), "total": sl.agg.sum("x"), "first": sl.agg.earliest_by_offset("x"),
                       "last": sl.agg.latest_by_offset("x"), "all": sl.agg.collect_list("x")})
    assert agg.columns == ["n", "total", "first", "last", "all"]
    state = fold(agg, rows(1, 2, None))
    assert isinstance(state, list) and len(state) == 5
    assert agg.result(state) == {"n": 3, "total": 3, "first": 1, "last": 2, "all": [1, 2, None]}
    assert agg.result(agg.initial()) == {"n": 0, "total": 0, "first": None, "last": None, "all": []}


def test_a_column_called_name() -> None:
    agg = Aggregation({"name": sl.agg.latest_by_offset("name")})
    assert run(agg, [{"name": "Alice"}, {"name": "Bob"}]) == {"name": "Bob"}


def test_supports_subtract_and_merge_only_when_every_column_does() -> None:
    table_ok = Aggregation({"n": sl.agg.count(), "s": sl.agg.sum("x"), "a": sl.agg.avg("x"),
                            "l": sl.agg.collect_list("x"), "set": sl.agg.collect_set("x")})
    assert table_ok.supports_subtract and table_ok.supports_merge
    mixed = Aggregation({"n": sl.agg.count(), "last": sl.agg.latest_by_offset("x")})
    assert not mixed.supports_subtract and mixed.supports_merge
    custom = Aggregation({"n": sl.agg.count(), "c": sl.agg.custom(0, lambda s, v: s + 1)})
    assert not custom.supports_merge


def test_subtract_undoes_add_across_columns() -> None:
    agg = Aggregation({"n": sl.agg.count(), "s": sl.agg.sum("x"), "a": sl.agg.avg("x"),
                       "l": sl.agg.collect_list("x"), "set": sl.agg.collect_set("x"),
                       "nx": sl.agg.count("x")})
    a, b = {"x": 3}, {"x": None}
    state = fold(agg, [a, b])
    assert agg.result(agg.subtract(state, a, 5, 0)) == agg.result(fold(agg, [b]))
    assert agg.result(agg.subtract(state, b, 5, 0)) == agg.result(fold(agg, [a]))


def test_subtract_on_a_stream_only_column_names_it() -> None:
    agg = Aggregation({"n": sl.agg.count(), "last": sl.agg.latest_by_offset("x"),
                       "top": sl.agg.top_k("x", 2)})
    with pytest.raises(TopologyError) as err:
        agg.subtract(agg.initial(), {"x": 1}, 0, 0)
    text = str(err.value)
    assert "last=sl.agg.latest_by_offset('x')" in text and "top=sl.agg.top_k('x', 2)" in text
    assert "n=" not in text and "LATEST_BY_OFFSET, TOPK" in text
    assert agg.no_subtract_reason() == text


def test_merge_per_column() -> None:
    agg = Aggregation({"n": sl.agg.count(), "first": sl.agg.earliest_by_offset("x"),
                       "top": sl.agg.top_k("x", 2)})
    a = fold(agg, rows(5, 1))
    b = fold(agg, rows(7, 2), offsets=[2, 3])
    assert agg.result(agg.merge(a, b)) == {"n": 4, "first": 5, "top": [7, 5]}
    with pytest.raises(TopologyError, match="c=sl.agg.custom"):
        Aggregation({"c": sl.agg.custom(0, lambda s, v: s)}).merge([0], [0])


def test_a_failing_column_leaves_the_whole_state_untouched() -> None:
    # all built-ins return new states: a record that fails in one column changes no other
    agg = Aggregation({"all": sl.agg.collect_list("x"), "set": sl.agg.collect_set("x"), "s": sl.agg.sum("x")})
    state = fold(agg, rows(1, 2))
    snapshot = [list(state[0]), [list(state[1][0]), list(state[1][1])], state[2]]
    with pytest.raises(TypeError):
        agg.add(state, {"x": "three"}, 2, 0)
    assert state == snapshot


def test_a_stored_state_of_another_shape_is_a_clear_error() -> None:
    agg = Aggregation({"n": sl.agg.count(), "s": sl.agg.sum("x")})
    for stored in ([3], [3, 4, 5], 3):
        with pytest.raises(StateError, match="the aggregate\\(...\\) columns changed"):
            agg.add(stored, {"x": 1}, 0, 0)
        with pytest.raises(StateError):
            agg.result(stored)


@pytest.mark.parametrize("columns,match", [
    ({}, "at least one column"),
    ({"n": 5}, "column 'n' is 5, not an aggregator"),
    ({"n": sl.agg.count}, "not an aggregator"),
    ({1: sl.agg.count()}, "column names must be str"),
])
def test_bad_columns(columns, match) -> None:
    with pytest.raises(TopologyError, match=match):
        Aggregation(columns)


def test_repr_lists_columns() -> None:
    assert repr(Aggregation({"n": sl.agg.count()})) == "Aggregation({'n': sl.agg.count()})"


def test_the_unrolled_methods_match_the_plain_loops() -> None:
    agg = Aggregation({"n": sl.agg.count(), "s": sl.agg.sum("x"), "l": sl.agg.collect_list("x")})
    state = fold(agg, rows(1, 2))
    assert agg.add(state, {"x": 3}, 2, 0) == Aggregation.add(agg, state, {"x": 3}, 2, 0)
    assert agg.subtract(state, {"x": 1}, 2, 0) == Aggregation.subtract(agg, state, {"x": 1}, 2, 0)
    assert agg.result(state) == Aggregation.result(agg, state) == {"n": 2, "s": 3, "l": [1, 2]}
    with pytest.raises(StateError):
        Aggregation.add(agg, [1], {"x": 3}, 2, 0)
