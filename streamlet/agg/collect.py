"""collect_list, collect_set, top_k.

ksqlDB facts followed here: ``COLLECT_LIST`` keeps every value (nulls
included) in arrival order and, on a table, undoes a value by removing its
*last* occurrence; ``COLLECT_LIST`` / ``COLLECT_SET`` take an optional size
limit (``ksql.functions.collect_list.limit``; unlimited by default) beyond
which new values are silently ignored; ``TOPK`` skips nulls and keeps the K
largest values, duplicates included, largest first, and works on streams
only. ksqlDB's COLLECT_SET is stream-only too; here it keeps a count per
value so a table aggregation can subtract correctly.

Values are compared *as data* (:func:`same`): dicts and lists by content, a
list equal to a tuple, but values of different scalar types never equal
(``1``, ``1.0`` and ``True`` are three values).
"""

from __future__ import annotations

from typing import Any

from streamlet.agg.base import BuiltinAggregator, Field, field_repr, positive_int


def same(a: Any, b: Any) -> bool:
    """Equal as data: containers by content, scalars by type and value (NaN equals NaN)."""
    if isinstance(a, (list, tuple)):
        return (isinstance(b, (list, tuple)) and len(a) == len(b)
                and all(map(same, a, b)))
    if isinstance(a, dict):
        return (isinstance(b, dict) and a.keys() == b.keys()
                and all(same(v, b[k]) for k, v in a.items()))
    return type(a) is type(b) and (a == b or (a != a and b != b))


def index_of(values: list[Any], x: Any, last: bool = False) -> int:
    """Index of the first (or last) element of ``values`` that is :func:`same` as ``x``, else -1."""
    if not last and type(x) in _FAST and x == x:
        # list.index finds == candidates in C; check them strictly (1 == 1.0 == True)
        i = -1
        try:
            while True:
                i = values.index(x, i + 1)
                if same(values[i], x):
                    return i
        except ValueError:
            return -1
    for i in (range(len(values) - 1, -1, -1) if last else range(len(values))):
        if same(values[i], x):
            return i
    return -1


_FAST = frozenset({str, int, float, bool, bytes, type(None)})


class CollectList(BuiltinAggregator):
    """Every value in arrival order, None included; ``limit``: at most that many (later ones ignored)."""

    supports_subtract = supports_merge = True
    name = "collect_list"

    def __init__(self, field: Field, limit: int | None = None) -> None:
        self.get = self.field_getter(field)
        self.limit = positive_int(limit, "limit", allow_none=True)
        self._args = field_repr(field) + ("" if limit is None else f", limit={limit}")

    def initial(self) -> list[Any]:
        return []

    def add(self, state: list[Any], value: Any, offset: int, timestamp: int) -> list[Any]:
        if self.limit is not None and len(state) >= self.limit:
            if value.__class__ is not dict and self.check:
                self.check(value)  # not a dict: a bad record all the same
            return state
        return state + [self.get(value)]

    def subtract(self, state: list[Any], value: Any, offset: int, timestamp: int) -> list[Any]:
        i = index_of(state, self.get(value), last=True)
        if i < 0:
            return state  # never collected (it came past the limit)
        return state[:i] + state[i + 1:]

    def merge(self, a: list[Any], b: list[Any]) -> list[Any]:
        merged = a + b
        return merged if self.limit is None else merged[: self.limit]

    def result(self, state: list[Any]) -> list[Any]:
        return list(state)


class CollectSet(BuiltinAggregator):
    """Distinct values in first-seen order, None included; ``limit``: at most that many.

    State: ``[values, counts]`` — how many aggregated records hold each value,
    so that a table aggregation removes a value only when its last record is
    subtracted.
    """

    supports_subtract = supports_merge = True
    name = "collect_set"

    def __init__(self, field: Field, limit: int | None = None) -> None:
        self.get = self.field_getter(field)
        self.limit = positive_int(limit, "limit", allow_none=True)
        self._args = field_repr(field) + ("" if limit is None else f", limit={limit}")

    def initial(self) -> list[Any]:
        return [[], []]

    def add(self, state: list[Any], value: Any, offset: int, timestamp: int) -> list[Any]:
        values, counts = state
        x = self.get(value)
        i = index_of(values, x)
        if i < 0:
            if self.limit is not None and len(values) >= self.limit:
                return state
            return [values + [x], counts + [1]]
        counts = list(counts)
        counts[i] += 1
        return [values, counts]

    def subtract(self, state: list[Any], value: Any, offset: int, timestamp: int) -> list[Any]:
        values, counts = state
        i = index_of(values, self.get(value))
        if i < 0:
            return state
        if counts[i] > 1:
            counts = list(counts)
            counts[i] -= 1
            return [values, counts]
        return [values[:i] + values[i + 1:], counts[:i] + counts[i + 1:]]

    def merge(self, a: list[Any], b: list[Any]) -> list[Any]:
        values, counts = list(a[0]), list(a[1])
        for x, c in zip(*b):
            i = index_of(values, x)
            if i >= 0:
                counts[i] += c
            elif self.limit is None or len(values) < self.limit:
                values.append(x)
                counts.append(c)
        return [values, counts]

    def result(self, state: list[Any]) -> list[Any]:
        return list(state[0])


class TopK(BuiltinAggregator):
    """The ``k`` largest non-None values, largest first, duplicates kept (ksqlDB ``TOPK``)."""

    supports_merge = True
    ksql_stream_only = "TOPK"
    name = "top_k"

    def __init__(self, field: Field, k: int) -> None:
        self.get = self.field_getter(field)
        self.k = positive_int(k, "k")
        self._args = f"{field_repr(field)}, {k}"

    def initial(self) -> list[Any]:
        return []

    def add(self, state: list[Any], value: Any, offset: int, timestamp: int) -> list[Any]:
        x = self.get(value)
        if x is None:
            return state
        n = len(state)
        if n >= self.k and not x > state[-1]:
            return state
        i = n
        while i > 0 and state[i - 1] < x:
            i -= 1
        new = state[:i] + [x] + state[i:]
        if len(new) > self.k:
            new.pop()
        return new

    def merge(self, a: list[Any], b: list[Any]) -> list[Any]:
        return sorted(a + b, reverse=True)[: self.k]

    def result(self, state: list[Any]) -> list[Any]:
        return list(state)
