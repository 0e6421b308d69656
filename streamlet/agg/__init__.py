"""Aggregators for ``aggregate(...)``, with ksqlDB names and meanings.

    >>> stream.group_by_key().aggregate(
    ...     first_name=sl.agg.earliest_by_offset("name"),
    ...     last_name=sl.agg.latest_by_offset("name"),
    ...     events=sl.agg.count(),
    ...     name="user-summary")

``field`` is a key of a dict value (a missing key or a value that is not a
dict gives None), a function of the value, or None (the whole value).

Null rules (ksqlDB): a record whose field is None still creates the row;
``count(field)``, ``sum``, ``min``, ``max``, ``avg`` and ``top_k`` skip None;
``collect_list`` and ``collect_set`` keep it; ``latest_by_offset`` /
``earliest_by_offset`` skip it unless ``ignore_nulls=False`` (then a None
is a value like any other: a leading None is the earliest value, and Nones
are elements of the ``n=`` list); ``first_value`` stays open until a
non-None value arrives.

Table aggregations (``table.group_by(...).aggregate``) subtract the old row
of a key, so they take only aggregators with ``supports_subtract``: count,
sum, avg, collect_list, collect_set (and user aggregators that subtract).

Write your own with :func:`custom` (plain functions) or by subclassing
:class:`Aggregator` (to see offsets and timestamps); the protocol is in
:mod:`streamlet.agg.base`.
"""

from __future__ import annotations

from typing import Any, Callable

from streamlet.agg.aggregation import Aggregation
from streamlet.agg.base import TIMESTAMP, Aggregator, Field
from streamlet.agg.by_offset import EarliestByOffset, FirstValue, LatestByOffset, MaxBy, MinBy
from streamlet.agg.collect import CollectList, CollectSet, TopK
from streamlet.agg.custom import Custom
from streamlet.agg.numeric import Avg, CountAll, CountField, Max, Min, Sum

__all__ = ["Aggregator", "Aggregation", "TIMESTAMP", "count", "sum", "min", "max", "avg",
           "latest_by_offset", "earliest_by_offset", "first_value", "min_by", "max_by",
           "collect_list", "collect_set", "top_k", "custom"]


def count(field: Field = None) -> Aggregator:
    """Every record; with ``field``, the records whose field is not None (ksqlDB ``COUNT(col)``)."""
    return CountAll() if field is None else CountField(field)


def sum(field: Field) -> Aggregator:  # noqa: A001 - ksqlDB name
    """Sum of the non-None values: 0 when there are none (ksqlDB ``SUM``); a sum of ints stays an int."""
    return Sum(field)


def min(field: Field) -> Aggregator:  # noqa: A001
    """Smallest non-None value; None until one arrives. Streams only (as in ksqlDB)."""
    return Min(field)


def max(field: Field) -> Aggregator:  # noqa: A001
    """Largest non-None value; None until one arrives. Streams only (as in ksqlDB)."""
    return Max(field)


def avg(field: Field) -> Aggregator:
    """Mean of the non-None values as a float; 0.0 when there are none (ksqlDB ``AVG``)."""
    return Avg(field)


def latest_by_offset(field: Field, n: int | None = None, ignore_nulls: bool = True) -> Aggregator:
    """Value of the record with the highest offset in the partition; None until there is one.

    ``n``: the N latest values as a list, oldest first (``[]`` until there is
    one). ``ignore_nulls`` (default True, like ksqlDB): skip records whose
    field is None; with False a None is a value like any other. Streams only.
    """
    return LatestByOffset(field, n, ignore_nulls)


def earliest_by_offset(field: Field, n: int | None = None, ignore_nulls: bool = True) -> Aggregator:
    """Value of the record with the lowest offset in the partition; None until there is one.

    ``n``: the N earliest values as a list, oldest first (``[]`` until there
    is one). ``ignore_nulls`` (default True, like ksqlDB): skip records whose
    field is None; with False a leading None is the earliest value. Streams
    only. "Earliest" means something only if every record of a key is in one
    partition (same key → same partition).
    """
    return EarliestByOffset(field, n, ignore_nulls)


def first_value(field: Field) -> Aggregator:
    """The first value this aggregate accepted (Kafka Streams ``agg == null ? value : agg``).

    A None value does not count: it leaves the aggregate open, and the first
    non-None value to arrive is kept for good. Streams only.
    """
    return FirstValue(field)


def min_by(field: Field, by: Any) -> Aggregator:
    """``field`` of the record with the smallest ``by``; on a tie the earlier record (by offset).

    ``by``: a field name, a function of the value, or ``sl.agg.TIMESTAMP`` —
    the name ``"timestamp"``, which in ``by=`` always means the *record*
    timestamp (order by a value field called "timestamp" with
    ``by=lambda v: v["timestamp"]``). Records whose ``by`` is None are
    skipped. Streams only.
    """
    return MinBy(field, by)


def max_by(field: Field, by: Any) -> Aggregator:
    """``field`` of the record with the largest ``by``; on a tie the later record (by offset).

    ``by`` as in :func:`min_by` (``"timestamp"`` / ``sl.agg.TIMESTAMP`` is the
    record timestamp). Records whose ``by`` is None are skipped. Streams only.
    """
    return MaxBy(field, by)


def collect_list(field: Field, limit: int | None = None) -> Aggregator:
    """All values in arrival order, None included; ``limit``: keep the first ``limit`` only."""
    return CollectList(field, limit)


def collect_set(field: Field, limit: int | None = None) -> Aggregator:
    """Distinct values (compared by value: dicts and lists too) in first-seen order, None included.

    ``1``, ``1.0`` and ``True`` are three different values. ``limit``: at most
    that many distinct values; later new ones are ignored.
    """
    return CollectSet(field, limit)


def top_k(field: Field, k: int) -> Aggregator:
    """The ``k`` largest non-None values, largest first, duplicates kept. Streams only."""
    return TopK(field, k)


def custom(initial: Any, add: Callable[[Any, Any], Any], result: Callable[[Any], Any] | None = None,
           subtract: Callable[[Any, Any], Any] | None = None,
           merge: Callable[[Any, Any], Any] | None = None) -> Aggregator:
    """A user aggregator from functions.

    ``initial``: a function returning the empty state (or a plain value, copied
    for each new row); ``add(state, value) -> new state``; ``result(state)``:
    what the row shows (default: the state); ``subtract(state, value) -> new
    state`` makes it usable on tables; ``merge(a, b)`` on session windows.
    States must be plain data (None, bool, int, float, str, bytes, list, dict
    with str keys — no tuples or sets) and ``add`` must return a new state
    rather than change the one it is given::

        longest = sl.agg.custom("", lambda s, v: max(s, v["word"], key=len))
        uniq = sl.agg.custom(dict, lambda s, v: {**s, v["user"]: True}, result=len)

    To see the record's offset and timestamp, subclass :class:`Aggregator`.
    """
    return Custom(initial, add, result, subtract, merge)
