"""Fold records through an aggregator the way the aggregate processor does."""

from __future__ import annotations

import copy
from typing import Any

import msgpack


def roundtrip(state: Any) -> Any:
    """What the store gives back: msgpack out and in (default options, as the brief states)."""
    return msgpack.unpackb(msgpack.packb(state))


def fold(agg: Any, values: list[Any], offsets: list[int] | None = None, timestamps: list[int] | None = None,
         state: Any = None, store: bool = True) -> Any:
    """The state after ``values`` (offsets 0.. unless given), stored with msgpack between records.

    Also checks on every record that ``add`` leaves the state it was given untouched.
    """
    if state is None:
        state = agg.initial()
    for i, value in enumerate(values):
        offset = offsets[i] if offsets is not None else i
        ts = timestamps[i] if timestamps is not None else 1000 + i
        before = copy.deepcopy(state)
        new = agg.add(state, value, offset, ts)
        assert state == before, f"{agg!r}.add changed the state it was given"
        state = roundtrip(new) if store else new
    return state


def run(agg: Any, values: list[Any], **kw: Any) -> Any:
    """The row's result after ``values``."""
    return agg.result(fold(agg, values, **kw))


def rows(*xs: Any, field: str = "x") -> list[dict]:
    return [{field: x} for x in xs]
