"""Every built-in aggregator keeps the protocol: stored states, no mutation, fresh results, subtract."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

import streamlet as sl
from streamlet.agg.base import state_problem
from tests.agg.agg_helpers import fold, roundtrip

ALL = [
    sl.agg.count(), sl.agg.count("x"), sl.agg.sum("x"), sl.agg.min("x"), sl.agg.max("x"), sl.agg.avg("x"),
    sl.agg.latest_by_offset("x"), sl.agg.earliest_by_offset("x"),
    sl.agg.latest_by_offset("x", ignore_nulls=False), sl.agg.earliest_by_offset("x", ignore_nulls=False),
    sl.agg.latest_by_offset("x", n=3), sl.agg.earliest_by_offset("x", n=3),
    sl.agg.latest_by_offset("x", n=2, ignore_nulls=False),
    sl.agg.earliest_by_offset("x", n=2, ignore_nulls=False),
    sl.agg.first_value("x"), sl.agg.min_by("x", "y"), sl.agg.max_by("x", "y"),
    sl.agg.min_by("x", sl.agg.TIMESTAMP), sl.agg.max_by("x", sl.agg.TIMESTAMP),
    sl.agg.collect_list("x"), sl.agg.collect_list("x", limit=5), sl.agg.collect_set("x"),
    sl.agg.collect_set("x", limit=3), sl.agg.top_k("x", 3),
]
SUBTRACTS = {"count", "sum", "avg", "collect_list", "collect_set"}


def records(seed: int, n: int = 40) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    return [{"x": rnd.choice([None, 0, 1, 2, 3, 5, 8]), "y": rnd.choice([None, 1, 2, 3])} for _ in range(n)]


@pytest.mark.parametrize("agg", ALL, ids=repr)
def test_states_are_plain_data_that_survive_the_store(agg) -> None:
    values = records(1)
    ts = [random.Random(i).randrange(5) for i in range(len(values))]
    stored, kept = agg.initial(), agg.initial()
    assert state_problem(stored) is None
    for offset, value in enumerate(values):
        kept = agg.add(kept, value, offset, ts[offset])
        stored = roundtrip(agg.add(stored, value, offset, ts[offset]))
        assert state_problem(kept) is None, kept
        assert agg.result(stored) == agg.result(kept)
    assert agg.supports_subtract == (agg.name in SUBTRACTS)
    assert agg.supports_merge and not agg.needs_state_check


@pytest.mark.parametrize("agg", ALL, ids=repr)
def test_results_are_fresh_containers(agg) -> None:
    state = fold(agg, records(2))
    first = agg.result(state)
    if isinstance(first, list):
        first.append("mutated")
        assert agg.result(state) != first


@pytest.mark.parametrize("agg", [a for a in ALL if a.supports_subtract and getattr(a, "limit", None) is None],
                         ids=repr)
@pytest.mark.parametrize("seed", range(5))
def test_subtracting_records_equals_never_adding_them(agg, seed) -> None:
    values = records(seed)
    rnd = random.Random(seed)
    gone = sorted(rnd.sample(range(len(values)), len(values) // 2))
    state = fold(agg, values)
    for i in gone:
        before = copy.deepcopy(state)
        new = agg.subtract(state, values[i], len(values) + i, 0)
        assert state == before, "subtract changed the state it was given"
        state = roundtrip(new)
    kept = [v for i, v in enumerate(values) if i not in gone]
    got, want = agg.result(state), agg.result(fold(agg, kept))
    if agg.name in ("collect_list", "collect_set"):
        # a table's rows have no order: the same values, the same number of times
        assert sorted(map(repr, got)) == sorted(map(repr, want))
    else:
        assert got == pytest.approx(want)
