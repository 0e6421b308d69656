"""Grouped streams and tables: the step before an aggregation (``count``, ``reduce``, ``aggregate``).

An aggregation is a KTable kept in a state store named ``name`` with a
changelog topic ``<application id>-<name>-changelog``. When the grouping
changed the key, records first go through ``<application id>-<name>-repartition``
so that all records of a key meet in one task.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from streamlet.errors import TopologyError
from streamlet.serde.base import Serde
from streamlet.topology.aggregation import AggregateSpec, envelope_serde, stored_serde
from streamlet.serde.windowed import session_windowed, windowed
from streamlet.topology.graph import InternalTopic, StoreSpec, windowed_changelog
from streamlet.topology.windows import Session, Sliding

if TYPE_CHECKING:
    from streamlet.topology.builder import TopologyBuilder
    from streamlet.dsl.table import KTable


def _spec_from_args(op: str, initializer: Any, adder: Any, subtractor: Any,
                    columns: dict[str, Any], table: bool) -> AggregateSpec:
    if isinstance(initializer, dict):
        if adder is not None or columns:
            raise TopologyError("aggregate({...}) takes the columns dict alone (plus name=)")
        columns = initializer
        initializer = None
    if columns:
        if initializer is not None:
            raise TopologyError("aggregate() takes either initializer/adder or named aggregators, not both")
        return AggregateSpec.named(columns, table=table)
    if not callable(initializer) or not callable(adder):
        raise TopologyError(
            f"{op}() needs initializer and adder functions, or named aggregators: "
            "aggregate(name='summary', total=sl.agg.sum('amount'))"
        )
    if table and not callable(subtractor):
        raise TopologyError("a table aggregate(initializer, adder, subtractor) needs a subtractor, "
                            "called when a row leaves the group")
    return AggregateSpec.user(initializer, adder, subtractor)


class _Grouped:
    _table = False

    def __init__(self, app: "TopologyBuilder", node: str, key_serde: Serde, value_serde: Serde,
                 needs_repartition: bool) -> None:
        self._app = app
        self._node = node
        self.key_serde = key_serde
        self.value_serde = value_serde
        self._needs_repartition = needs_repartition

    def _aggregate(self, spec: AggregateSpec, name: str | None, windows: Any = None,
                   emit_final: bool = False) -> "KTable":
        from streamlet.dsl.table import KTable

        if not name:
            raise TopologyError(
                "aggregations need a stable name=: it names the state store, its changelog and "
                "repartition topics, e.g. .count(name='orders-per-user')"
            )
        app, topo = self._app, self._app.topology
        if name in topo.stores:
            raise TopologyError(
                f"two state stores are named {name!r}; pass a distinct name= to each aggregation "
                "(it names the store and its changelog topic)"
            )
        parent = self._node
        source_value_serde = self.value_serde
        if self._table:
            source_value_serde = envelope_serde(self.value_serde)
        if self._needs_repartition:
            topic = f"{app.application_id}-{name}-repartition"
            topo.add_internal_topic(InternalTopic(topic, "repartition"))
            topo.add("sink", [parent], name=f"{name}-repartition-sink", topic=topic,
                     key_serde=self.key_serde, value_serde=source_value_serde, partitioner=None)
            parent = topo.add("source", [], name=f"{name}-repartition-source", topic=topic,
                              key_serde=self.key_serde, value_serde=source_value_serde).name
        changelog = f"{app.application_id}-{name}-changelog"
        if windows is None:
            topo.add_internal_topic(InternalTopic(changelog, "changelog"))
            topo.add_store(StoreSpec(name, "aggregate", self.key_serde, stored_serde(), changelog,
                                     present=spec.present))
            node = topo.add("table_aggregate" if self._table else "aggregate", [parent], name=name,
                            store=name, spec=spec)
            return KTable(app, node.name, self.key_serde, app.default_value_serde, store=name)
        session = isinstance(windows, Session)
        kind = "session" if session else "sliding" if isinstance(windows, Sliding) else "window"
        topo.add_internal_topic(windowed_changelog(changelog, windows.retention))
        topo.add_store(StoreSpec(name, kind, self.key_serde, stored_serde(), changelog, present=spec.present,
                                 windows=windows))
        node = topo.add(f"{kind}_aggregate", [parent], name=name, store=name, spec=spec, windows=windows,
                        emit_final=emit_final)
        key_serde = session_windowed(self.key_serde) if session else windowed(self.key_serde, windows.size)
        return KTable(app, node.name, key_serde, app.default_value_serde, store=name)

    def count(self, name: str | None = None) -> "KTable":
        """Records per key (a table aggregation counts rows per group)."""
        return self._aggregate(AggregateSpec.count(), name)

    def reduce(self, reducer: Callable[[Any, Any], Any], subtractor: Callable[[Any, Any], Any] | None = None,
               name: str | None = None) -> "KTable":
        """``reducer(aggregate, value)`` folds values of one key; the first value starts the aggregate."""
        if not callable(reducer):
            raise TopologyError("reduce() needs a reducer function (aggregate, value) -> aggregate")
        if self._table and not callable(subtractor):
            raise TopologyError("a table reduce(adder, subtractor) needs a subtractor")
        return self._aggregate(AggregateSpec.reduce(reducer, subtractor), name)

    def aggregate(self, initializer: Any = None, adder: Any = None, subtractor: Any = None, *,
                  name: str | None = None, **columns: Any) -> "KTable":
        """Aggregate each key.

        Two forms:

        * named aggregators, one column each — the row is a dict::

              .aggregate(first_name=sl.agg.earliest_by_offset("name"), events=sl.agg.count(),
                         name="user-summary")
              .aggregate({"name": sl.agg.latest_by_offset("name")}, name="s")  # a column called "name"

        * ``aggregate(initializer, adder)`` with ``adder(key, value, aggregate) -> aggregate``
          (Kafka Streams' ``Aggregator``); tables also take ``subtractor``.
        """
        spec = _spec_from_args("aggregate", initializer, adder, subtractor, columns, self._table)
        return self._aggregate(spec, name)

    def windowed_by(self, windows: Any) -> Any:
        """Aggregate per key and window: ``sl.Tumbling``, ``sl.Hopping``, ``sl.Sliding`` or ``sl.Session``.
        The result is a table keyed by ``sl.Windowed(key, start, end)``.

            (orders.group_by(lambda k, v: v["user"])
                   .windowed_by(sl.Tumbling(timedelta(minutes=1), grace=timedelta(seconds=10)))
                   .emit_final()
                   .count(name="orders-per-minute"))
        """
        from streamlet.dsl.windowed import SessionWindowedKStream, TimeWindowedKStream

        if self._table:
            raise TopologyError("windowed_by() groups a stream; a grouped table has no windows "
                                "(Kafka Streams' KGroupedTable has none either)")
        if isinstance(windows, Session):
            return SessionWindowedKStream(self, windows)
        return TimeWindowedKStream(self, windows)


class KGroupedStream(_Grouped):
    """A stream grouped by key, ready for ``count`` / ``reduce`` / ``aggregate``.

    A tombstone (``None`` value) is dropped — not counted, the row untouched —
    and so is a record whose key is ``None`` (ksqlDB / Kafka Streams).
    """


class KGroupedTable(_Grouped):
    """A table re-keyed for aggregation; always repartitioned (the group key is new)."""

    _table = True

    def __init__(self, app: "TopologyBuilder", node: str, key_serde: Serde, value_serde: Serde) -> None:
        super().__init__(app, node, key_serde, value_serde, needs_repartition=True)
