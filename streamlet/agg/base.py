"""The aggregator protocol: ``initial / add / subtract / result`` over a storable state.

States are plain data (None, bool, int, float, str, bytes, list, dict with
str keys): the aggregate processor stores them with msgpack in RocksDB and
the changelog. ``add`` receives the whole record value and picks its field.

A user aggregator subclasses :class:`Aggregator`::

    class Longest(sl.agg.Aggregator):
        supports_subtract = False
        def initial(self): return ""
        def add(self, state, value, offset, timestamp):
            return max(state, value["word"], key=len)
        def result(self, state): return state

or, for simple folds, uses :func:`streamlet.agg.custom`.
"""

from __future__ import annotations

from typing import Any, Callable

from streamlet.errors import TopologyError

Field = str | Callable[[Any], Any] | None


class _Timestamp:
    def __repr__(self) -> str:
        return "sl.agg.TIMESTAMP"


#: ``by=TIMESTAMP`` in ``min_by`` / ``max_by`` orders by the record timestamp.
TIMESTAMP: Any = _Timestamp()


def field_getter(field: Field) -> Callable[[Any], Any]:
    """``None`` → the whole value; a str → that key of a dict value (else None); a callable as is."""
    if field is None:
        return lambda v: v
    if callable(field):
        return field
    if isinstance(field, str):
        def get(v: Any, _f: str = field) -> Any:
            return v.get(_f) if isinstance(v, dict) else None

        return get
    raise TypeError(f"field must be a name, a function or None, got {field!r}")


class Aggregator:
    """Base of every aggregator. Subclasses override :meth:`initial` and :meth:`add`."""

    supports_subtract = False
    name = "aggregator"

    def initial(self) -> Any:
        return None

    def add(self, state: Any, value: Any, offset: int, timestamp: int) -> Any:
        raise NotImplementedError

    def subtract(self, state: Any, value: Any, offset: int, timestamp: int) -> Any:
        raise TopologyError(
            f"{self.name} cannot undo a record, so it cannot aggregate a table (ksqlDB has the "
            "same rule); aggregate a stream instead"
        )

    def result(self, state: Any) -> Any:
        return state

    def __repr__(self) -> str:
        return f"sl.agg.{self.name}()"
