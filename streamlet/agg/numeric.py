"""count, sum, min, max, avg (ksqlDB meanings: nulls are skipped)."""

from __future__ import annotations

from typing import Any

from streamlet.agg.base import Aggregator, Field, field_getter


class Count(Aggregator):
    """Every record (no field), or records whose field is not None (ksqlDB ``COUNT(col)``)."""

    supports_subtract = True
    name = "count"

    def __init__(self, field: Field = None) -> None:
        self.counts_all = field is None
        self.get = field_getter(field)

    def initial(self) -> int:
        return 0

    def add(self, state: int, value: Any, offset: int, timestamp: int) -> int:
        return state + 1 if self.counts_all or self.get(value) is not None else state

    def subtract(self, state: int, value: Any, offset: int, timestamp: int) -> int:
        return state - 1 if self.counts_all or self.get(value) is not None else state


class Sum(Aggregator):
    """Sum of non-None values; 0 when there are none (ksqlDB ``SUM``). Ints stay ints."""

    supports_subtract = True
    name = "sum"

    def __init__(self, field: Field) -> None:
        self.get = field_getter(field)

    def initial(self) -> Any:
        return 0

    def add(self, state: Any, value: Any, offset: int, timestamp: int) -> Any:
        x = self.get(value)
        return state if x is None else state + x

    def subtract(self, state: Any, value: Any, offset: int, timestamp: int) -> Any:
        x = self.get(value)
        return state if x is None else state - x


class _Extreme(Aggregator):
    """min / max of non-None values; None until one arrives."""

    def __init__(self, field: Field, smaller: bool) -> None:
        self.get = field_getter(field)
        self.smaller = smaller
        self.name = "min" if smaller else "max"

    def add(self, state: Any, value: Any, offset: int, timestamp: int) -> Any:
        x = self.get(value)
        if x is None:
            return state
        if state is None:
            return x
        return (x if x < state else state) if self.smaller else (x if x > state else state)


class Avg(Aggregator):
    """Mean of non-None values (None when there are none)."""

    supports_subtract = True
    name = "avg"

    def __init__(self, field: Field) -> None:
        self.get = field_getter(field)

    def initial(self) -> list[Any]:
        return [0, 0]

    def add(self, state: list[Any], value: Any, offset: int, timestamp: int) -> list[Any]:
        x = self.get(value)
        return state if x is None else [state[0] + x, state[1] + 1]

    def subtract(self, state: list[Any], value: Any, offset: int, timestamp: int) -> list[Any]:
        x = self.get(value)
        return state if x is None else [state[0] - x, state[1] - 1]

    def result(self, state: list[Any]) -> float | None:
        return state[0] / state[1] if state[1] else None
