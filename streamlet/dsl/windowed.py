"""Windowed grouped streams (Kafka Streams' ``TimeWindowedKStream``): a grouped stream with windows,
ready for ``count`` / ``reduce`` / ``aggregate``, emitting changes (default) or final results."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from streamlet.errors import TopologyError
from streamlet.topology.aggregation import AggregateSpec
from streamlet.topology.windows import Session, Sliding, TimeWindows

if TYPE_CHECKING:
    from streamlet.dsl.grouped import _Grouped
    from streamlet.dsl.table import KTable


class TimeWindowedKStream:
    """Records of a grouped stream, per key and time window.

    The result of ``count`` / ``reduce`` / ``aggregate`` is a table keyed by
    ``sl.Windowed(key, start, end)``, written to a window store named ``name``
    with a changelog (``compact,delete``, kept for the windows' retention).
    Null keys and values are dropped; so is a record for a window whose
    ``end + grace <= stream time`` (late).
    """

    def __init__(self, grouped: "_Grouped", windows: Any, emit_final: bool = False) -> None:
        if not isinstance(windows, (TimeWindows, Sliding, Session)):
            raise TopologyError(f"windowed_by() takes sl.Tumbling(...), sl.Hopping(...), sl.Sliding(...) or "
                                f"sl.Session(...), got {windows!r}")
        self._grouped = grouped
        self.windows = windows
        self._final = emit_final

    def emit_final(self) -> Any:
        """Emit each window once, when it closes (stream time >= end + grace) — ksqlDB's ``EMIT FINAL``,
        Kafka Streams' ``EmitStrategy.onWindowClose()`` — instead of every change."""
        return type(self)(self._grouped, self.windows, emit_final=True)

    def _aggregate(self, spec: AggregateSpec, name: str | None) -> "KTable":
        return self._grouped._aggregate(spec, name, windows=self.windows, emit_final=self._final)

    def count(self, name: str | None = None) -> "KTable":
        """Records per key and window."""
        return self._aggregate(AggregateSpec.count(), name)

    def reduce(self, reducer: Callable[[Any, Any], Any], name: str | None = None) -> "KTable":
        """``reducer(aggregate, value)`` folds the values of a key's window; the first value starts it."""
        if not callable(reducer):
            raise TopologyError("reduce() needs a reducer function (aggregate, value) -> aggregate")
        return self._aggregate(AggregateSpec.reduce(reducer, None), name)

    def aggregate(self, initializer: Any = None, adder: Any = None, *, name: str | None = None,
                  **columns: Any) -> "KTable":
        """Named aggregators (``total=sl.agg.sum("amount")``) or ``aggregate(initializer, adder)``,
        per key and window, as :meth:`KGroupedStream.aggregate`."""
        from streamlet.dsl.grouped import _spec_from_args

        return self._aggregate(_spec_from_args("aggregate", initializer, adder, None, columns, False), name)


class SessionWindowedKStream(TimeWindowedKStream):
    """Records of a grouped stream, per key and activity session (Kafka Streams'
    ``SessionWindowedKStream``): records closer than the gap share a session; a record that bridges two
    sessions merges them. Keys of the result are ``sl.Windowed(key, start, end)`` with ``end`` the last
    record's timestamp. Emit final emits a session once ``end + gap + grace < stream time``.
    ``aggregate(initializer, adder, merger=...)`` needs the merger that combines two sessions' states;
    count, reduce and ``sl.agg`` aggregators merge by themselves.
    """

    def aggregate(self, initializer: Any = None, adder: Any = None, *, name: str | None = None,
                  merger: Any = None, **columns: Any) -> "KTable":
        from streamlet.dsl.grouped import _spec_from_args

        spec = _spec_from_args("aggregate", initializer, adder, None, columns, False)
        if spec.kind == "aggregate":
            if not callable(merger):
                raise TopologyError(spec.no_merge_reason)
            spec = AggregateSpec.user(initializer, adder, None, merger)
        if spec.merge is None:
            raise TopologyError(spec.no_merge_reason)
        return self._aggregate(spec, name)
