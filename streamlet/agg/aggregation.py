"""Several named aggregators computed together: one state per column, a dict per row."""

from __future__ import annotations

from typing import Any

from streamlet.agg.base import Aggregator


class Aggregation:
    """``Aggregation({"events": count(), "last": latest_by_offset("name")})``.

    The state is a list with one state per column, in column order; the
    result is a dict column → result.
    """

    def __init__(self, columns: dict[str, Aggregator]) -> None:
        self.columns = list(columns)
        self.aggregators = list(columns.values())
        self.supports_subtract = all(getattr(a, "supports_subtract", False) for a in self.aggregators)

    def initial(self) -> list[Any]:
        return [a.initial() for a in self.aggregators]

    def add(self, state: list[Any], value: Any, offset: int, timestamp: int) -> list[Any]:
        return [a.add(s, value, offset, timestamp) for a, s in zip(self.aggregators, state)]

    def subtract(self, state: list[Any], value: Any, offset: int, timestamp: int) -> list[Any]:
        return [a.subtract(s, value, offset, timestamp) for a, s in zip(self.aggregators, state)]

    def result(self, state: list[Any]) -> dict[str, Any]:
        return {c: a.result(s) for c, a, s in zip(self.columns, self.aggregators, state)}
