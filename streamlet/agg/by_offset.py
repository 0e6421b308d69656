"""Order-based aggregators: latest/earliest by offset, first value, min_by/max_by.

The by-offset aggregators keep each value with the offset of its record, so
"latest" and "earliest" are decided by offsets, not by arrival: the answer
stays right if records ever arrive out of offset order, and two session
windows merge correctly. Records of one partition do arrive in offset order
(and the processor drops replays), so in practice the offsets only confirm
the arrival order. Several records may share an offset (one input record
``flat_map``-ed into many): among them the later arrival is the later one.

None of these can undo a record, so none can aggregate a table (ksqlDB:
LATEST_BY_OFFSET and EARLIEST_BY_OFFSET are for streams only).
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any

from streamlet.agg.base import TIMESTAMP, BuiltinAggregator, Field, field_repr, positive_int
from streamlet.errors import TopologyError


def _offset(pair: list[Any]) -> int:
    return pair[0]


class _ByOffset(BuiltinAggregator):
    supports_merge = True

    def __init__(self, field: Field, n: int | None = None, ignore_nulls: bool = True) -> None:
        if not isinstance(ignore_nulls, bool):
            raise TopologyError(f"ignore_nulls must be True or False, got {ignore_nulls!r}")
        #: what the aggregator reads (code generation reads it too: a str field is read inline)
        self.field = field
        self.get = self.field_getter(field)
        self.n = positive_int(n, "n", allow_none=True)
        self.ignore_nulls = ignore_nulls
        args = [field_repr(field)]
        if n is not None:
            args.append(f"n={n}")
        if not ignore_nulls:
            args.append("ignore_nulls=False")
        self._args = ", ".join(args)

    def initial(self) -> Any:
        # single: None (nothing accepted yet) or [offset, value]; n=: [[offset, value], ...] oldest first
        return None if self.n is None else []

    def result(self, state: Any) -> Any:
        if self.n is None:
            return None if state is None else state[1]
        return [pair[1] for pair in state]


class LatestByOffset(_ByOffset):
    """Value of the record with the highest offset; ``n=``: the N latest, oldest first."""

    name = "latest_by_offset"
    ksql_stream_only = "LATEST_BY_OFFSET"

    def add(self, state: Any, value: Any, offset: int, timestamp: int) -> Any:
        x = self.get(value)
        if x is None and self.ignore_nulls:
            return state
        if self.n is None:
            return [offset, x] if state is None or offset >= state[0] else state
        if not state or offset >= state[-1][0]:  # the usual case: in offset order
            new = state + [[offset, x]]
        else:
            new = list(state)
            new.insert(bisect_right(new, offset, key=_offset), [offset, x])
        if len(new) > self.n:
            del new[0]
        return new

    def merge(self, a: Any, b: Any) -> Any:
        if self.n is None:
            if a is None:
                return b
            return a if b is None or a[0] > b[0] else b
        return sorted(a + b, key=_offset)[-self.n:]


class EarliestByOffset(_ByOffset):
    """Value of the record with the lowest offset; ``n=``: the N earliest, oldest first.

    With ``ignore_nulls=False`` a leading None is the earliest value (and
    Nones are elements of the ``n=`` list).
    """

    name = "earliest_by_offset"
    ksql_stream_only = "EARLIEST_BY_OFFSET"

    def add(self, state: Any, value: Any, offset: int, timestamp: int) -> Any:
        if self.n is None:
            if state is not None and offset >= state[0]:
                if value.__class__ is not dict and self.check:
                    self.check(value)  # not a dict: a bad record all the same
                return state  # the usual case: a later record changes nothing
            x = self.get(value)
            if x is None and self.ignore_nulls:
                return state
            return [offset, x]
        if len(state) >= self.n and offset >= state[-1][0]:
            if value.__class__ is not dict and self.check:
                self.check(value)
            return state
        x = self.get(value)
        if x is None and self.ignore_nulls:
            return state
        new = list(state)
        new.insert(bisect_right(new, offset, key=_offset), [offset, x])
        if len(new) > self.n:
            new.pop()
        return new

    def merge(self, a: Any, b: Any) -> Any:
        if self.n is None:
            if a is None:
                return b
            return a if b is None or a[0] <= b[0] else b
        return sorted(a + b, key=_offset)[: self.n]


class FirstValue(BuiltinAggregator):
    """The first value this aggregate accepted: Kafka Streams' ``agg == null ? value : agg``.

    The state is the value itself and None means "nothing accepted yet", so a
    None value (a missing field) leaves the aggregate open and the first
    non-None value wins. It is decided by arrival, without offsets; for the
    value of the lowest offset use ``earliest_by_offset`` (which can also keep
    a leading None with ``ignore_nulls=False``).
    """

    supports_merge = True
    name = "first_value"

    def __init__(self, field: Field) -> None:
        self.get = self.field_getter(field)
        self._args = field_repr(field)

    def add(self, state: Any, value: Any, offset: int, timestamp: int) -> Any:
        if state is None:
            return self.get(value)
        if value.__class__ is not dict and self.check:
            self.check(value)  # not a dict: a bad record all the same
        return state

    def merge(self, a: Any, b: Any) -> Any:
        return b if a is None else a


class MinBy(BuiltinAggregator):
    """``field`` of the record with the smallest ``by``.

    Records are ordered by ``(by, offset)``: ``min_by`` takes the smallest,
    ``max_by`` the largest — so on a tie of ``by`` ``min_by`` keeps the
    earlier record and ``max_by`` takes the later one (by offset, then by
    arrival). ``by`` is a field name or a function of the value; the name
    ``"timestamp"`` (``sl.agg.TIMESTAMP``) always means the record
    timestamp. A record whose ``by`` is None is skipped; a record whose
    ``field`` is None can still win (the result is then None).
    State: None or ``[by, offset, value]``.
    """

    supports_merge = True
    name = "min_by"

    def __init__(self, field: Field, by: Any) -> None:
        if by is None:
            raise TopologyError(
                f"{self.name} needs by=: a field name, a function of the value, or "
                "sl.agg.TIMESTAMP (\"timestamp\") for the record timestamp"
            )
        self.get = self.field_getter(field)
        self.by_timestamp = by == TIMESTAMP
        self.uses_timestamp = self.by_timestamp
        self.by = None if self.by_timestamp else self.field_getter(by, "by")
        self._args = f"{field_repr(field)}, by={field_repr(by)}"

    def _wins(self, b: Any, offset: int, state: list[Any]) -> bool:
        s = state[0]
        return b < s or (b == s and offset < state[1])

    def add(self, state: Any, value: Any, offset: int, timestamp: int) -> Any:
        b = timestamp if self.by_timestamp else self.by(value)  # type: ignore[misc]
        if b is not None and (state is None or self._wins(b, offset, state)):
            return [b, offset, self.get(value)]
        if value.__class__ is not dict and self.check:
            self.check(value)  # not a dict: a bad record all the same
        return state

    def merge(self, a: Any, b: Any) -> Any:
        if a is None:
            return b
        if b is None:
            return a
        return b if self._wins(b[0], b[1], a) else a

    def result(self, state: Any) -> Any:
        return None if state is None else state[2]


class MaxBy(MinBy):
    __doc__ = MinBy.__doc__
    name = "max_by"

    def _wins(self, b: Any, offset: int, state: list[Any]) -> bool:
        s = state[0]
        return b > s or (b == s and offset >= state[1])
