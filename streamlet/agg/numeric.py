"""count, sum, min, max, avg — ksqlDB meanings: a None value is skipped.

ksqlDB facts followed here: ``COUNT(col)`` counts the rows where col is not
null, ``COUNT(*)`` every row; ``SUM`` starts at 0 and skips nulls (so a row
with only null values sums to 0); ``MIN`` / ``MAX`` start at null and skip
nulls; ``AVG`` keeps (sum, count) of the non-null values and gives 0.0 when
the count is 0. ``MIN`` and ``MAX`` work on streams only in ksqlDB (they
cannot undo a value); so here.
"""

from __future__ import annotations

from typing import Any

from streamlet.agg.base import BuiltinAggregator, Field, field_repr


class CountAll(BuiltinAggregator):
    """Every record (``count()``; ksqlDB ``COUNT(*)``)."""

    supports_subtract = supports_merge = True
    name = "count"
    _args = ""

    def initial(self) -> int:
        return 0

    def add(self, state: int, value: Any, offset: int, timestamp: int) -> int:
        return state + 1

    def subtract(self, state: int, value: Any, offset: int, timestamp: int) -> int:
        return state - 1

    def merge(self, a: int, b: int) -> int:
        return a + b


class CountField(CountAll):
    """Records whose field is not None (``count(field)``; ksqlDB ``COUNT(col)``)."""

    def __init__(self, field: Field) -> None:
        self.get = self.field_getter(field)
        self._args = field_repr(field)

    def add(self, state: int, value: Any, offset: int, timestamp: int) -> int:
        return state if self.get(value) is None else state + 1

    def subtract(self, state: int, value: Any, offset: int, timestamp: int) -> int:
        return state if self.get(value) is None else state - 1


class Sum(BuiltinAggregator):
    """Sum of the non-None values; 0 for none (ksqlDB ``SUM``). A sum of ints stays an int."""

    supports_subtract = supports_merge = True
    name = "sum"

    def __init__(self, field: Field) -> None:
        self.get = self.field_getter(field)
        self._args = field_repr(field)

    def initial(self) -> Any:
        return 0

    def add(self, state: Any, value: Any, offset: int, timestamp: int) -> Any:
        x = self.get(value)
        return state if x is None else state + x

    def subtract(self, state: Any, value: Any, offset: int, timestamp: int) -> Any:
        x = self.get(value)
        return state if x is None else state - x

    def merge(self, a: Any, b: Any) -> Any:
        return a + b


class Min(BuiltinAggregator):
    """Smallest non-None value; None until one arrives (ksqlDB ``MIN``)."""

    supports_merge = True
    ksql_stream_only = "MIN"
    name = "min"

    def __init__(self, field: Field) -> None:
        self.get = self.field_getter(field)
        self._args = field_repr(field)

    def add(self, state: Any, value: Any, offset: int, timestamp: int) -> Any:
        x = self.get(value)
        if x is None:
            return state
        if state is None or x < state:
            return x
        return state

    def merge(self, a: Any, b: Any) -> Any:
        if a is None:
            return b
        if b is None or not b < a:
            return a
        return b


class Max(Min):
    """Largest non-None value; None until one arrives (ksqlDB ``MAX``)."""

    name = "max"
    ksql_stream_only = "MAX"

    def add(self, state: Any, value: Any, offset: int, timestamp: int) -> Any:
        x = self.get(value)
        if x is None:
            return state
        if state is None or x > state:
            return x
        return state

    def merge(self, a: Any, b: Any) -> Any:
        if a is None:
            return b
        if b is None or not b > a:
            return a
        return b


class Avg(BuiltinAggregator):
    """Mean of the non-None values; 0.0 when there are none (ksqlDB ``AVG``). State: ``[sum, count]``."""

    supports_subtract = supports_merge = True
    name = "avg"

    def __init__(self, field: Field) -> None:
        self.get = self.field_getter(field)
        self._args = field_repr(field)

    def initial(self) -> list[Any]:
        return [0, 0]

    def add(self, state: list[Any], value: Any, offset: int, timestamp: int) -> list[Any]:
        x = self.get(value)
        return state if x is None else [state[0] + x, state[1] + 1]

    def subtract(self, state: list[Any], value: Any, offset: int, timestamp: int) -> list[Any]:
        x = self.get(value)
        if x is None:
            return state
        n = state[1] - 1
        return [state[0] - x, n] if n else [0, 0]  # empty again: drop float rounding leftovers

    def merge(self, a: list[Any], b: list[Any]) -> list[Any]:
        return [a[0] + b[0], a[1] + b[1]]

    def result(self, state: list[Any]) -> float:
        return state[0] / state[1] if state[1] else 0.0
