"""collect_list, collect_set, top_k."""

from __future__ import annotations

from typing import Any

from streamlet.agg.base import Aggregator, Field, field_getter


class CollectList(Aggregator):
    """Every value in arrival order, None included."""

    supports_subtract = True
    name = "collect_list"

    def __init__(self, field: Field) -> None:
        self.get = field_getter(field)

    def initial(self) -> list[Any]:
        return []

    def add(self, state: list[Any], value: Any, offset: int, timestamp: int) -> list[Any]:
        state.append(self.get(value))
        return state

    def subtract(self, state: list[Any], value: Any, offset: int, timestamp: int) -> list[Any]:
        x = self.get(value)
        if x in state:
            state.remove(x)
        return state


class CollectSet(Aggregator):
    """Distinct values (compared by value, dicts and lists too) in first-seen order, None included.

    The state keeps each value's multiplicity so that a table aggregation can
    subtract a row correctly.
    """

    supports_subtract = True
    name = "collect_set"

    def __init__(self, field: Field) -> None:
        self.get = field_getter(field)

    def initial(self) -> list[Any]:
        return []  # [[value, count], ...]

    def add(self, state: list[Any], value: Any, offset: int, timestamp: int) -> list[Any]:
        x = self.get(value)
        for entry in state:
            if entry[0] == x and type(entry[0]) is type(x):
                entry[1] += 1
                return state
        state.append([x, 1])
        return state

    def subtract(self, state: list[Any], value: Any, offset: int, timestamp: int) -> list[Any]:
        x = self.get(value)
        for i, entry in enumerate(state):
            if entry[0] == x and type(entry[0]) is type(x):
                entry[1] -= 1
                if entry[1] <= 0:
                    del state[i]
                break
        return state

    def result(self, state: list[Any]) -> list[Any]:
        return [entry[0] for entry in state]


class TopK(Aggregator):
    """The ``k`` largest non-None values, descending, duplicates kept."""

    name = "top_k"

    def __init__(self, field: Field, k: int) -> None:
        if not isinstance(k, int) or k < 1:
            raise ValueError("k must be a positive int")
        self.get, self.k = field_getter(field), k

    def initial(self) -> list[Any]:
        return []

    def add(self, state: list[Any], value: Any, offset: int, timestamp: int) -> list[Any]:
        x = self.get(value)
        if x is None:
            return state
        if len(state) >= self.k and x <= state[-1]:
            return state
        i = len(state)
        while i > 0 and state[i - 1] < x:
            i -= 1
        state.insert(i, x)
        if len(state) > self.k:
            state.pop()
        return state
