"""The aggregator protocol, field selection and the rules every aggregator keeps.

An aggregator folds the records of one key (one row) into a *state* and
shows the user a *result*::

    class Aggregator:
        supports_subtract: bool    # subtract() works: usable in a table aggregation
        supports_merge: bool       # merge() works: usable with session windows
        needs_state_check: bool    # states may not be plain data: the processor should check them
        def initial(self) -> state
        def add(self, state, value, offset, timestamp) -> state
        def subtract(self, state, value, offset, timestamp) -> state
        def merge(self, a, b) -> state
        def result(self, state) -> what the row shows

Rules of the protocol:

* A state is plain data — ``None``, ``bool``, ``int``, ``float``, ``str``,
  ``bytes``, ``list``, ``dict`` with ``str`` keys, nested freely — because
  the aggregate processor stores it with msgpack in RocksDB and in the
  changelog. No tuples (they come back as lists), no sets, no objects.
* ``add`` / ``subtract`` return the new state and never change the state
  they were given: the processor may still need the old one (the row's old
  value for a table change, or the unchanged row when a record fails under
  ``on_error="skip"``). Returning the very same state means "unchanged".
* ``value`` is the whole record value (usually a dict); ``offset`` the
  record's real Kafka offset in the partition being aggregated (records
  arrive in offset order; several records may share one offset after a
  ``flat_map``; dropping replays is the processor's job); ``timestamp`` the
  record timestamp in ms.
* ``result`` returns fresh top-level containers (a list result is a new list
  each call); values taken from records inside them are shared, so treat
  results as read-only.
* ``merge(a, b)`` combines the states of two session windows that a late
  record joins; ``a`` is the earlier window.

A user aggregator subclasses :class:`Aggregator` (or uses
:func:`streamlet.agg.custom` for a simple fold)::

    class Span(sl.agg.Aggregator):
        '''Milliseconds between the first and the last record of a key.'''
        name = "span"

        def initial(self):
            return None                               # or [first_ts, last_ts]

        def add(self, state, value, offset, timestamp):
            return [timestamp, timestamp] if state is None else [state[0], timestamp]

        def result(self, state):
            return 0 if state is None else state[1] - state[0]

Field selection (``field`` of every aggregator, ``by`` of ``min_by`` /
``max_by``): a ``str`` is a key of a dict value (a missing key gives
``None``; a value that is not a dict — a string, a list, a number — is a bad
record: :class:`~streamlet.errors.FieldError`, under ``on_error``); a
callable is called with the value; ``None`` means the whole value.
"""

from __future__ import annotations

from typing import Any, Callable

from streamlet.errors import FieldError, TopologyError

Field = str | Callable[[Any], Any] | None

#: ``min_by(field, by=TIMESTAMP)`` / ``max_by``: order by the record timestamp.
#: It is the string ``"timestamp"``: in ``by=`` that name always means the
#: record timestamp, never a value field (for a value field called
#: "timestamp" pass ``by=lambda v: v["timestamp"]``).
TIMESTAMP = "timestamp"


def field_getter(field: Field, what: str = "field", owner: Any = None) -> Callable[[Any], Any]:
    """``None`` → the whole value; a str → that key of a dict value (None for a None value, a
    :class:`FieldError` naming ``owner`` for any other value); a callable as is."""
    if field is None:
        return _whole
    if isinstance(field, str):
        def get(v: Any, _f: str = field) -> Any:
            if isinstance(v, dict):
                return v.get(_f)
            if v is None:
                return None
            raise not_a_dict(owner, what, _f, v)

        return get
    if callable(field):
        return field
    raise TopologyError(
        f"{what} must be a field name (str), a function of the record value, or None for the "
        f"whole value; got {field!r} ({type(field).__name__})"
    )


def _whole(v: Any) -> Any:
    return v


def not_a_dict(owner: Any, what: str, field: str, value: Any) -> FieldError:
    text = repr(value)
    shown = text if len(text) <= 80 else text[:77] + "..."
    who = repr(owner) if owner is not None else "an aggregator"
    return FieldError(
        f"{who} reads {what} {field!r} of each record value, but "
        f"this value is a {type(value).__name__}, not a dict (a JSON object): {shown}"
    )


def field_repr(field: Field) -> str:
    if field is None or isinstance(field, str):
        return repr(field)
    return getattr(field, "__name__", None) or repr(field)


def positive_int(x: Any, what: str, allow_none: bool = False) -> Any:
    if x is None and allow_none:
        return None
    if isinstance(x, bool) or not isinstance(x, int) or x < 1:
        raise TopologyError(f"{what} must be a positive int, got {x!r}")
    return x


def state_problem(state: Any) -> str | None:
    """Why ``state`` is not plain data the aggregate store can keep as is, or None if it is."""
    stack = [state]
    while stack:
        x = stack.pop()
        if x is None or type(x) in _SCALARS:
            continue
        if isinstance(x, list):
            stack.extend(x)
        elif isinstance(x, dict):
            for k, v in x.items():
                if not isinstance(k, str):
                    return f"dict key {k!r} is a {type(k).__name__}, not a str"
                stack.append(v)
        elif isinstance(x, tuple):
            return f"{x!r} is a tuple (it would come back from the store as a list): use a list"
        elif isinstance(x, (set, frozenset)):
            return f"{x!r} is a set: use a list (or a dict with str keys)"
        elif isinstance(x, (bool, int, float, str, bytes)):
            continue  # subclasses of the plain types
        else:
            return f"{x!r} is a {type(x).__name__}: use None, bool, int, float, str, bytes, list or dict"
    return None


_SCALARS = frozenset({bool, int, float, str, bytes})


class Aggregator:
    """Base of every aggregator; see the module docstring for the protocol.

    Subclasses override :meth:`initial` and :meth:`add`, and :meth:`result`
    when the state is not what the user should see. Set
    ``supports_subtract = True`` and override :meth:`subtract` to allow table
    aggregations; ``supports_merge = True`` and :meth:`merge` for session
    windows.
    """

    supports_subtract: bool = False
    supports_merge: bool = False
    #: user aggregators may build states msgpack cannot store faithfully; built-ins never do
    needs_state_check: bool = True
    #: reads ``timestamp`` in add/subtract: when no column does, the processor passes 0 instead of
    #: reading the record timestamp (an aggregator of your own is assumed to read it)
    uses_timestamp: bool = True
    #: used in messages and in ``repr``
    name: str = ""

    def initial(self) -> Any:
        return None

    def add(self, state: Any, value: Any, offset: int, timestamp: int) -> Any:
        raise NotImplementedError(
            f"{type(self).__name__} must implement add(state, value, offset, timestamp)")

    def subtract(self, state: Any, value: Any, offset: int, timestamp: int) -> Any:
        raise TopologyError(self.no_subtract_reason())

    def merge(self, a: Any, b: Any) -> Any:
        raise TopologyError(
            f"{self!r} cannot merge two session windows (it has no merge()), so it cannot aggregate "
            "session windows; use it with time windows or without a window"
        )

    def result(self, state: Any) -> Any:
        return state

    def no_subtract_reason(self) -> str:
        """The message for a table aggregation that would need :meth:`subtract`."""
        return table_aggregation_message([(None, self)])

    def __repr__(self) -> str:
        args = getattr(self, "_args", None)
        if args is None:
            return f"{type(self).__name__}()"
        return f"sl.agg.{self.name}({args})"


class BuiltinAggregator(Aggregator):
    """Base of the aggregators in this package: plain-data states, a readable repr."""

    needs_state_check = False
    uses_timestamp = False
    #: the ksqlDB function of the same meaning when ksqlDB allows it on streams only
    ksql_stream_only: str | None = None
    #: a getter of a field by name, for ``add`` paths that do not read the field: there a value
    #: that is not a dict must fail it all the same (``value.__class__ is not dict and ...``)
    check: Callable[[Any], Any] | None = None

    def field_getter(self, field: Field, what: str = "field") -> Callable[[Any], Any]:
        """:func:`field_getter` naming this aggregator in its errors (and setting ``check``)."""
        get = field_getter(field, what, self)
        if isinstance(field, str):
            self.check = get
        return get


def table_aggregation_message(columns: list[tuple[str | None, Any]]) -> str:
    """Why these aggregators (``(column or None, aggregator)``) cannot aggregate a table."""
    what = ", ".join(f"{c}={a!r}" if c is not None else repr(a) for c, a in columns)
    ksql = sorted({k for _, a in columns if (k := getattr(a, "ksql_stream_only", None))})
    plural = len(columns) > 1
    text = (
        f"{what} cannot be used in a table aggregation (table.group_by(...).aggregate): a row that "
        f"changes or leaves a group is subtracted, and {'these aggregators' if plural else 'it'} "
        "cannot undo a record"
    )
    if ksql:
        text += f" (ksqlDB allows {', '.join(ksql)} on streams only, too)"
    return text + (
        ". Aggregate a stream instead (e.g. table.to_stream().group_by(...)), or use aggregators that "
        "can subtract: count, sum, avg, collect_list, collect_set, or sl.agg.custom(..., subtract=...)"
    )
