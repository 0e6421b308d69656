"""Aggregators for ``aggregate(...)``, with ksqlDB names and meanings.

    >>> stream.group_by_key().aggregate(
    ...     first_name=sl.agg.earliest_by_offset("name"),
    ...     last_name=sl.agg.latest_by_offset("name"),
    ...     events=sl.agg.count(),
    ...     name="user-summary")

``field`` is a key of a dict value, a function of the value, or None (the
whole value). Null rules follow ksqlDB: ``sum/min/max/avg/top_k`` skip
None; ``collect_list/collect_set`` keep it; by-offset aggregators ignore
None unless ``ignore_nulls=False``; a record whose field is None still
creates the row.
"""

from __future__ import annotations

from typing import Any, Callable

from streamlet.agg.aggregation import Aggregation
from streamlet.agg.base import TIMESTAMP, Aggregator, Field
from streamlet.agg.by_offset import EarliestByOffset, FirstValue, LatestByOffset, _By
from streamlet.agg.collections import CollectList, CollectSet, TopK
from streamlet.agg.numeric import Avg, Count, Sum, _Extreme

__all__ = ["Aggregator", "Aggregation", "TIMESTAMP", "count", "sum", "min", "max", "avg",
           "latest_by_offset", "earliest_by_offset", "first_value", "min_by", "max_by",
           "collect_list", "collect_set", "top_k", "custom"]


def count(field: Field = None) -> Aggregator:
    """Records per key; with ``field``, records whose field is not None."""
    return Count(field)


def sum(field: Field) -> Aggregator:  # noqa: A001 - ksqlDB name
    """Sum of the non-None values (0 when none)."""
    return Sum(field)


def min(field: Field) -> Aggregator:  # noqa: A001
    """Smallest non-None value (None when none)."""
    return _Extreme(field, smaller=True)


def max(field: Field) -> Aggregator:  # noqa: A001
    """Largest non-None value (None when none)."""
    return _Extreme(field, smaller=False)


def avg(field: Field) -> Aggregator:
    """Mean of the non-None values (None when none)."""
    return Avg(field)


def latest_by_offset(field: Field, n: int | None = None, ignore_nulls: bool = True) -> Aggregator:
    """Value of the record with the highest offset (``n=``: the N latest as a list, oldest first)."""
    return LatestByOffset(field, n, ignore_nulls)


def earliest_by_offset(field: Field, n: int | None = None, ignore_nulls: bool = True) -> Aggregator:
    """Value of the record with the lowest offset (``n=``: the N earliest as a list, oldest first)."""
    return EarliestByOffset(field, n, ignore_nulls)


def first_value(field: Field) -> Aggregator:
    """The first non-None value this aggregate accepted (Kafka Streams ``agg == null ? value : agg``)."""
    return FirstValue(field)


def min_by(field: Field, by: Any) -> Aggregator:
    """``field`` of the record with the smallest ``by`` (a field, or ``sl.agg.TIMESTAMP``)."""
    return _By(field, by, smaller=True)


def max_by(field: Field, by: Any) -> Aggregator:
    """``field`` of the record with the largest ``by`` (a field, or ``sl.agg.TIMESTAMP``)."""
    return _By(field, by, smaller=False)


def collect_list(field: Field) -> Aggregator:
    """All values in arrival order (None kept)."""
    return CollectList(field)


def collect_set(field: Field) -> Aggregator:
    """Distinct values by equality in first-seen order (None kept)."""
    return CollectSet(field)


def top_k(field: Field, k: int) -> Aggregator:
    """The k largest non-None values, descending, duplicates kept."""
    return TopK(field, k)


class _Custom(Aggregator):
    name = "custom"

    def __init__(self, initial: Callable[[], Any], add: Callable[[Any, Any], Any],
                 result: Callable[[Any], Any] | None, subtract: Callable[[Any, Any], Any] | None) -> None:
        self._initial, self._add, self._result, self._subtract = initial, add, result, subtract
        self.supports_subtract = subtract is not None

    def initial(self) -> Any:
        return self._initial()

    def add(self, state: Any, value: Any, offset: int, timestamp: int) -> Any:
        return self._add(state, value)

    def subtract(self, state: Any, value: Any, offset: int, timestamp: int) -> Any:
        if self._subtract is None:
            return super().subtract(state, value, offset, timestamp)
        return self._subtract(state, value)

    def result(self, state: Any) -> Any:
        return state if self._result is None else self._result(state)


def custom(initial: Callable[[], Any], add: Callable[[Any, Any], Any], result: Callable[[Any], Any] | None = None,
           subtract: Callable[[Any, Any], Any] | None = None) -> Aggregator:
    """A user aggregator from functions: ``add(state, value) -> state`` (states must be plain data).

        >>> longest = sl.agg.custom(lambda: "", lambda s, v: max(s, v["word"], key=len))
    """
    return _Custom(initial, add, result, subtract)
