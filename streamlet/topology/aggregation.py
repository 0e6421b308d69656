"""What an aggregation node computes, as data: count, reduce, user aggregate, named aggregators.

The aggregate processor stores ``[mark, state, ...]`` per key (msgpack): the
mark of the last input record applied, so that a replayed record (at or below
it) changes nothing (:mod:`streamlet.topology.origin`), and the state the spec
folds records into.
"""

from __future__ import annotations

from typing import Any, Callable

import msgpack

from streamlet.errors import TopologyError
from streamlet.serde.base import FunctionSerde
from streamlet.serde.context import ContextSerde, SerializationContext, needs_context
from streamlet.state.row import aggregate_serde, state_of

Add = Callable[[Any, Any, Any, int, int], Any]  # (state, key, value, offset, timestamp) -> state


class AggregateSpec:
    """``initial() / add / subtract / result`` of one aggregation.

    ``add(state, key, value, offset, timestamp)``; ``subtract`` is ``None``
    when the aggregation cannot undo a record (by-offset aggregators).
    """

    def __init__(self, kind: str, initial: Callable[[], Any], add: Add, subtract: Add | None,
                 result: Callable[[Any], Any] | None = None, check_serializable: bool = False) -> None:
        self.kind = kind
        self.initial = initial
        self.add = add
        self.subtract = subtract
        self.result = result
        #: user functions may return anything: check states as they are made
        self.check_serializable = check_serializable
        #: the named aggregators' :class:`~streamlet.agg.Aggregation` (code generation writes its
        #: columns' updates inline), None for count / reduce / user functions
        self.aggregation: Any = None
        #: ``merge(a, b, key)`` of two session windows' states (None: this aggregation cannot merge)
        self.merge: Callable[[Any, Any, Any], Any] | None = None
        #: why it cannot, when ``merge`` is None
        self.no_merge_reason = f"a {kind} aggregation cannot merge session windows"

    def present(self, stored: Any) -> Any:
        """What users see for a stored ``[mark, state, ...]`` row."""
        if stored is None:
            return None
        state = state_of(stored)
        return state if self.result is None else self.result(state)

    @classmethod
    def count(cls) -> "AggregateSpec":
        spec = cls("count", lambda: 0, lambda s, k, v, o, t: s + 1, lambda s, k, v, o, t: s - 1)
        spec.merge = lambda a, b, k: a + b
        return spec

    @classmethod
    def reduce(cls, reducer: Callable[[Any, Any], Any],
               subtractor: Callable[[Any, Any], Any] | None) -> "AggregateSpec":
        def add(s: Any, k: Any, v: Any, o: int, t: int) -> Any:
            return v if s is None else reducer(s, v)

        def subtract(s: Any, k: Any, v: Any, o: int, t: int) -> Any:
            return subtractor(s, v)  # type: ignore[misc]

        sub = subtract if subtractor is not None else None
        spec = cls("reduce", lambda: None, add, sub, check_serializable=True)
        spec.merge = lambda a, b, k: b if a is None else a if b is None else reducer(a, b)
        return spec

    @classmethod
    def user(cls, initializer: Callable[[], Any], adder: Callable[[Any, Any, Any], Any],
             subtractor: Callable[[Any, Any, Any], Any] | None,
             merger: Callable[[Any, Any, Any], Any] | None = None) -> "AggregateSpec":
        def add(s: Any, k: Any, v: Any, o: int, t: int) -> Any:
            return adder(k, v, s)

        def subtract(s: Any, k: Any, v: Any, o: int, t: int) -> Any:
            return subtractor(k, v, s)  # type: ignore[misc]

        sub = subtract if subtractor is not None else None
        spec = cls("aggregate", initializer, add, sub, check_serializable=True)
        spec.no_merge_reason = ("aggregate(initializer, adder) on session windows needs merger=(key, a, b) -> "
                                "aggregate, called when a record joins two sessions (Kafka Streams' Merger)")
        if merger is not None:
            spec.merge = lambda a, b, k: merger(k, a, b)
        return spec

    @classmethod
    def named(cls, columns: dict[str, Any], table: bool = False) -> "AggregateSpec":
        from streamlet.agg import Aggregation

        if not columns:
            raise TopologyError("aggregate() needs at least one named aggregator")
        for col, agg in columns.items():
            if not hasattr(agg, "add") or not hasattr(agg, "initial"):
                raise TopologyError(
                    f"column {col!r} is not an aggregator: use sl.agg.count(), sl.agg.sum('field'), ..."
                )
        aggregation = Aggregation(dict(columns))
        if table and not aggregation.supports_subtract:
            raise TopologyError(aggregation.no_subtract_reason())
        a_add, a_sub = aggregation.add, aggregation.subtract

        def add(s: Any, k: Any, v: Any, o: int, t: int) -> Any:
            return a_add(s, v, o, t)

        def sub(s: Any, k: Any, v: Any, o: int, t: int) -> Any:
            return a_sub(s, v, o, t)

        spec = cls("named", aggregation.initial, add, sub if aggregation.supports_subtract else None,
                   aggregation.result, check_serializable=aggregation.needs_state_check)
        spec.aggregation = aggregation
        if aggregation.supports_merge:
            a_merge = aggregation.merge
            spec.merge = lambda a, b, k: a_merge(a, b)
        else:
            bad = [f"{c}={a!r}" for c, a in columns.items() if not getattr(a, "supports_merge", False)]
            spec.no_merge_reason = f"column(s) {', '.join(bad)} cannot merge session windows"
        return spec


def stored_serde() -> FunctionSerde:
    """Serde of stored aggregation rows (:mod:`streamlet.state.row`)."""
    return aggregate_serde()


def check_state(state: Any) -> None:
    """Raise a clear error if a user aggregate cannot be stored."""
    try:
        msgpack.packb(state, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise TypeError(
            f"the aggregate {state!r} ({type(state).__name__}) cannot be stored: {exc}; return "
            "plain data (dict, list, str, int, float, bool, None, bytes)"
        ) from exc


def envelope_serde(inner: Any) -> Any:
    """Serde of table re-grouping records: ``(sign, value)`` with sign ``+`` (add) or ``-`` (subtract),
    or ``("=", (new, old))``: a row updated within its group, one record (Kafka Streams KIP-904).
    A context serde inside makes it one too (``ctx`` passed through to ``inner``)."""
    ser, de = inner.serialize, inner.deserialize

    def serialize(pair: Any, *ctx: Any) -> bytes:
        sign, value = pair
        if sign == "=":
            new, old = (b"" if v is None else ser(v, *ctx) or b"" for v in value)
            return b"=" + len(old).to_bytes(4, "big") + old + new
        body = None if value is None else ser(value, *ctx)
        return (b"+" if sign == "+" else b"-") + (body or b"")

    def deserialize(data: bytes, *ctx: Any) -> Any:
        if data[:1] == b"=":
            size = int.from_bytes(data[1:5], "big")
            return ("=", (de(data[5 + size:], *ctx), de(data[5:5 + size], *ctx)))
        sign = "+" if data[:1] == b"+" else "-"
        return (sign, de(data[1:], *ctx))

    if needs_context(inner):
        return _ContextEnvelope(f"change({inner.name})", serialize, deserialize)
    return FunctionSerde(f"change({inner.name})", serialize, deserialize)


class _ContextEnvelope(ContextSerde):
    """:func:`envelope_serde` around a serde that needs a context."""

    def __init__(self, name: str, ser: Callable[..., bytes], de: Callable[..., Any]) -> None:
        self.name, self._ser, self._de = name, ser, de

    def serialize(self, value: Any, ctx: SerializationContext) -> bytes:
        return self._ser(value, ctx)

    def deserialize(self, data: bytes, ctx: SerializationContext) -> Any:
        return self._de(data, ctx)
