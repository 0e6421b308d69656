"""User aggregators: sl.agg.custom and subclasses of sl.agg.Aggregator."""

from __future__ import annotations

from typing import Any

import pytest

import streamlet as sl
from streamlet.agg import Aggregation
from streamlet.errors import TopologyError
from tests.agg.agg_helpers import fold, run


def test_custom_fold_with_a_function_initial() -> None:
    longest = sl.agg.custom(lambda: "", lambda s, v: max(s, v["w"], key=len))
    assert run(longest, [{"w": "ab"}, {"w": "abcd"}, {"w": "x"}]) == "abcd"
    assert not longest.supports_subtract and not longest.supports_merge and longest.needs_state_check


def test_custom_with_a_plain_initial_gives_each_row_its_own_copy() -> None:
    agg = sl.agg.custom([], lambda s, v: s + [v])
    first, second = agg.initial(), agg.initial()
    assert first == [] and first is not second
    assert run(sl.agg.custom(0, lambda s, v: s + v), [1, 2, 3]) == 6


def test_custom_result_subtract_merge() -> None:
    uniq = sl.agg.custom(dict, lambda s, v: {**s, v["user"]: s.get(v["user"], 0) + 1}, result=len,
                         subtract=lambda s, v: {k: n - (k == v["user"]) for k, n in s.items()
                                                if n - (k == v["user"]) > 0},
                         merge=lambda a, b: {k: a.get(k, 0) + b.get(k, 0) for k in {**a, **b}})
    events = [{"user": u} for u in "abca"]
    assert run(uniq, events) == 3
    assert uniq.supports_subtract and uniq.supports_merge
    state = fold(uniq, events)
    assert uniq.result(uniq.subtract(state, {"user": "b"}, 9, 0)) == 2
    assert uniq.result(uniq.subtract(state, {"user": "a"}, 9, 0)) == 3
    assert uniq.result(uniq.merge(fold(uniq, events[:2]), fold(uniq, events[2:]))) == 3


def test_custom_without_subtract_says_how_to_add_one() -> None:
    agg = sl.agg.custom(0, lambda s, v: s + 1)
    with pytest.raises(TopologyError, match=r"sl.agg.custom\(\.\.\., subtract=\.\.\.\)"):
        agg.subtract(0, 1, 0, 0)
    with pytest.raises(TopologyError, match="cannot merge"):
        agg.merge(0, 0)


@pytest.mark.parametrize("initial,problem", [(set, "set"), (lambda: (0, 0), "tuple"),
                                             (lambda: {1: "a"}, "not a str"), (object, "object")])
def test_an_initial_state_that_cannot_be_stored_is_refused_at_once(initial: Any, problem: str) -> None:
    with pytest.raises(TopologyError, match=f"cannot be stored: .*{problem}"):
        sl.agg.custom(initial, lambda s, v: s)


def test_custom_functions_must_be_callable() -> None:
    with pytest.raises(TopologyError, match="add must be a function"):
        sl.agg.custom(0, 1)


def test_a_subclass_sees_offsets_and_timestamps() -> None:
    class Span(sl.agg.Aggregator):
        name = "span"

        def add(self, state: Any, value: Any, offset: int, timestamp: int) -> Any:
            return [timestamp, timestamp] if state is None else [state[0], timestamp]

        def result(self, state: Any) -> Any:
            return 0 if state is None else state[1] - state[0]

    assert run(Span(), [1, 2, 3], timestamps=[100, 150, 400]) == 300
    assert run(Span(), []) == 0
    agg = Aggregation({"span": Span(), "n": sl.agg.count()})
    assert run(agg, [1, 2], timestamps=[10, 25]) == {"span": 15, "n": 2}
    assert agg.needs_state_check and not agg.supports_subtract


def test_built_ins_need_no_state_check() -> None:
    assert not sl.agg.count().needs_state_check
    assert not Aggregation({"n": sl.agg.count(), "s": sl.agg.collect_set("x")}).needs_state_check
