"""Offset- and order-based aggregators: latest/earliest by offset, first value, min_by/max_by.

Records reach an aggregation in offset order within its partition, and the
processor drops replays (offsets at or below what was applied), so arrival
order *is* offset order here. None of these can undo a record, so none can
aggregate a table (ksqlDB: LATEST_BY_OFFSET is for streams only).
"""

from __future__ import annotations

from typing import Any

from streamlet.agg.base import TIMESTAMP, Aggregator, Field, field_getter


class _ByOffset(Aggregator):
    def __init__(self, field: Field, n: int | None = None, ignore_nulls: bool = True) -> None:
        if n is not None and (not isinstance(n, int) or n < 1):
            raise ValueError("n must be a positive int")
        self.get, self.n, self.ignore_nulls = field_getter(field), n, ignore_nulls


class LatestByOffset(_ByOffset):
    """Value of the record with the highest offset; ``n=``: the N latest, oldest first."""

    name = "latest_by_offset"

    def initial(self) -> Any:
        return None if self.n is None else []

    def add(self, state: Any, value: Any, offset: int, timestamp: int) -> Any:
        x = self.get(value)
        if x is None and self.ignore_nulls:
            return state
        if self.n is None:
            return x
        state.append(x)
        if len(state) > self.n:
            del state[0]
        return state


class EarliestByOffset(_ByOffset):
    """Value of the record with the lowest offset; ``n=``: the N earliest, oldest first.

    With ``ignore_nulls=False`` a leading None is the earliest value.
    """

    name = "earliest_by_offset"

    def initial(self) -> Any:
        return [False, None] if self.n is None else []

    def add(self, state: Any, value: Any, offset: int, timestamp: int) -> Any:
        if self.n is None:
            if state[0]:
                return state
            x = self.get(value)
            if x is None and self.ignore_nulls:
                return state
            return [True, x]
        if len(state) >= self.n:
            return state
        x = self.get(value)
        if x is None and self.ignore_nulls:
            return state
        state.append(x)
        return state

    def result(self, state: Any) -> Any:
        return state[1] if self.n is None else state


class FirstValue(Aggregator):
    """The first value this aggregate accepted: Kafka Streams' ``agg == null ? value : agg``.

    A None value leaves the aggregate open, so the first non-None value wins.
    """

    name = "first_value"

    def __init__(self, field: Field) -> None:
        self.get = field_getter(field)

    def add(self, state: Any, value: Any, offset: int, timestamp: int) -> Any:
        return self.get(value) if state is None else state


class _By(Aggregator):
    """``field`` of the record with the smallest / largest ``by``; ties keep the earlier record.

    ``by`` is a field name or function, or ``sl.agg.TIMESTAMP`` for the record
    timestamp (a string is always a field name). Records whose ``by`` is None
    are skipped.
    """

    def __init__(self, field: Field, by: Any, smaller: bool) -> None:
        self.get = field_getter(field)
        self.by_timestamp = by is TIMESTAMP
        self.by = None if self.by_timestamp else field_getter(by)
        self.smaller = smaller
        self.name = "min_by" if smaller else "max_by"

    def initial(self) -> Any:
        return None  # or [by, value]

    def add(self, state: Any, value: Any, offset: int, timestamp: int) -> Any:
        b = timestamp if self.by_timestamp else self.by(value)  # type: ignore[misc]
        if b is None:
            return state
        if state is None or (b < state[0] if self.smaller else b > state[0]):
            return [b, self.get(value)]
        return state

    def result(self, state: Any) -> Any:
        return None if state is None else state[1]
