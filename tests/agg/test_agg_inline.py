"""The unrolled ``Aggregation.add`` (usual cases inlined) returns what each column's own ``add`` returns."""

from __future__ import annotations

import random

import pytest

import streamlet as sl
from streamlet.agg import Aggregation
from streamlet.errors import FieldError


class Sub(dict):
    pass


def test_inlined_add_equals_the_aggregators_add() -> None:
    cols = {"n": sl.agg.count(), "first": sl.agg.earliest_by_offset("a"), "last": sl.agg.latest_by_offset("a"),
            "last_all": sl.agg.latest_by_offset("a", ignore_nulls=False), "cnt": sl.agg.count("a")}
    agg = Aggregation(cols)
    aggs = list(cols.values())
    rnd = random.Random(1)
    state = agg.initial()
    ref = [a.initial() for a in aggs]
    for i in range(2000):
        offset = i if rnd.random() < 0.9 else rnd.randrange(max(i, 1))  # mostly in order
        kind = rnd.random()
        value = ({"a": rnd.choice([None, 1, "x"])} if kind < 0.7 else Sub(a=2) if kind < 0.8
                 else rnd.choice([None, 5, "s", {"b": 1}]))
        try:
            new_ref = [a.add(s, value, offset, 0) for a, s in zip(aggs, ref)]
        except FieldError:  # a value that is not a dict: a bad record for the inlined add too
            with pytest.raises(FieldError):
                agg.add(state, value, offset, 0)
            continue
        state, ref = agg.add(state, value, offset, 0), new_ref
        assert state == ref


def test_uses_timestamp_only_when_a_column_reads_it() -> None:
    assert not Aggregation({"n": sl.agg.count(), "l": sl.agg.latest_by_offset("a")}).uses_timestamp
    assert Aggregation({"m": sl.agg.min_by("a", by=sl.agg.TIMESTAMP)}).uses_timestamp
    assert not Aggregation({"m": sl.agg.min_by("a", by="b")}).uses_timestamp

    class Mine(sl.agg.Aggregator):
        def initial(self):  # type: ignore[no-untyped-def]
            return 0

        def add(self, state, value, offset, timestamp):  # type: ignore[no-untyped-def]
            return timestamp

        def result(self, state):  # type: ignore[no-untyped-def]
            return state

    assert Aggregation({"t": Mine()}).uses_timestamp
