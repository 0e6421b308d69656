"""KStream: the record-at-a-time half of the DSL (Kafka Streams' ``KStream``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable

from streamlet.errors import TopologyError
from streamlet.record import Record
from streamlet.serde.base import Serde
from streamlet.topology.graph import InternalTopic
from streamlet.topology.kinds import KINDS

if TYPE_CHECKING:
    from streamlet.topology.builder import TopologyBuilder
    from streamlet.dsl.global_table import GlobalKTable
    from streamlet.dsl.grouped import KGroupedStream
    from streamlet.dsl.split import BranchedStreams
    from streamlet.dsl.table import KTable



class KStream:
    """An unbounded stream of independent key/value events.

    Each method adds a processor to the app's topology and returns the stream
    after it; nothing runs until ``app.run()`` or a ``TestDriver``.
    """

    def __init__(self, app: "TopologyBuilder", node: str, key_serde: Serde, value_serde: Serde,
                 key_changed: bool = False) -> None:
        self._app = app
        self._node = node
        self.key_serde = key_serde
        self.value_serde = value_serde
        #: True after an operation that may change the key: a following
        #: stateful operation must repartition.
        self.key_changed = key_changed

    # -- internals ----------------------------------------------------------
    def _then(self, kind: str, fn: Any = None, name: str | None = None, **params: Any) -> "KStream":
        if fn is not None and not callable(fn):
            raise TypeError(f"{kind}() expects a function, got {type(fn).__name__}")
        node = self._app.topology.add(kind, [self._node], fn=fn, name=name, **params)
        keeps_key = KINDS[kind].keeps_key
        key_serde = self.key_serde
        if not keeps_key and getattr(key_serde, "windowed", False):
            key_serde = self._app.default_key_serde  # a new key replaces the sl.Windowed one
        return KStream(self._app, node.name, key_serde, self.value_serde, self.key_changed or not keeps_key)

    # -- stateless operations ----------------------------------------------
    def filter(self, predicate: Callable[[Any, Any], bool], name: str | None = None) -> "KStream":
        """Keep records for which ``predicate(key, value)`` is true."""
        return self._then("filter", predicate, name)

    def filter_not(self, predicate: Callable[[Any, Any], bool], name: str | None = None) -> "KStream":
        """Drop records for which ``predicate(key, value)`` is true."""
        return self._then("filter", predicate, name, negate=True)

    def map(self, fn: Callable[[Any, Any], tuple[Any, Any]], name: str | None = None) -> "KStream":
        """Replace key and value: ``fn(key, value) -> (new_key, new_value)``. Marks for repartition."""
        return self._then("map", fn, name)

    def map_values(self, fn: Callable[[Any], Any], name: str | None = None) -> "KStream":
        """Replace the value: ``fn(value) -> new_value``; the key stays (no repartition)."""
        return self._then("map_values", fn, name)

    def flat_map(self, fn: Callable[[Any, Any], Iterable[tuple[Any, Any]]],
                 name: str | None = None) -> "KStream":
        """Zero or more ``(key, value)`` pairs per record. Marks for repartition."""
        return self._then("flat_map", fn, name)

    def flat_map_values(self, fn: Callable[[Any], Iterable[Any]], name: str | None = None) -> "KStream":
        """Zero or more values per record, each with the record's key."""
        return self._then("flat_map_values", fn, name)

    def select_key(self, fn: Callable[[Any, Any], Any], name: str | None = None) -> "KStream":
        """Set a new key ``fn(key, value)``. Marks for repartition."""
        return self._then("select_key", fn, name)

    def peek(self, fn: Callable[[Any, Any], None], name: str | None = None) -> "KStream":
        """Call ``fn(key, value)`` for its side effect and pass the record on."""
        return self._then("peek", fn, name)

    def foreach(self, fn: Callable[[Any, Any], None], name: str | None = None) -> None:
        """Call ``fn(key, value)`` for each record; ends the stream."""
        self._then("foreach", fn, name)

    def process(self, fn: Callable[[Record], Record | Iterable[Record] | None],
                name: str | None = None) -> "KStream":
        """Low-level step with the whole :class:`Record` (timestamp, topic, partition, offset, headers).

        ``fn(record)`` returns ``None`` (drop), a Record, or an iterable of Records
        to forward; ``record._replace(value=...)`` keeps the metadata. ``fn`` may also be a
        :class:`~streamlet.Processor` class (Kafka Streams' Processor API): one instance per
        task, whose ``init(context)`` can schedule punctuators (``context.schedule``).
        """
        if isinstance(fn, type) and not callable(getattr(fn, "process", None)):
            raise TypeError(f"process() takes a function or a Processor class; {fn.__name__} has no "
                            "process(record) method")
        return self._then("process", fn, name)

    def merge(self, other: "KStream", name: str | None = None) -> "KStream":
        """Interleave this stream with ``other`` (same app)."""
        if other._app is not self._app:
            raise TopologyError("merge() needs two streams of the same App")
        node = self._app.topology.add("merge", [self._node, other._node], name=name)
        return KStream(self._app, node.name, self.key_serde, self.value_serde,
                       self.key_changed or other.key_changed)

    def split(self, name: str | None = None) -> "BranchedStreams":
        """Route each record to the first branch whose predicate matches.

            >>> branches = (orders.split(name="order-")
            ...     .branch(lambda k, v: v["amount"] > 100, name="big")
            ...     .default_branch(name="small"))
            >>> branches["order-big"].to("big-orders")
        """
        from streamlet.dsl.split import BranchedStreams

        return BranchedStreams(self, name or "")

    def branch(self, *predicates: Callable[[Any, Any], bool]) -> list["KStream"]:
        """Old-style branching: one stream per predicate, first match wins."""
        if not predicates:
            raise TopologyError("branch() needs at least one predicate")
        splitter = self.split()
        for i, pred in enumerate(predicates):
            splitter.branch(pred, name=str(i))
        return list(splitter.no_default_branch().values())

    def repartition(self, name: str | None = None, partitions: int | None = None,
                    key_serde: Serde | None = None, value_serde: Serde | None = None) -> "KStream":
        """Write through an internal topic ``<application id>-<name>-repartition`` and read it back.

        Records are then partitioned by their current key, so that all records
        of a key are processed by one task.
        """
        app = self._app
        base = name or f"repartition-{len(app.topology.internal_topics) + 1}"
        topic = f"{app.application_id}-{base}-repartition"
        ks, vs = key_serde or self.key_serde, value_serde or self.value_serde
        app.topology.add_internal_topic(InternalTopic(topic, "repartition", partitions))
        app.topology.add("sink", [self._node], name=f"{base}-repartition-sink",
                         topic=topic, key_serde=ks, value_serde=vs, partitioner=None)
        src = app.topology.add("source", [], name=f"{base}-repartition-source",
                               topic=topic, key_serde=ks, value_serde=vs)
        return KStream(app, src.name, ks, vs, key_changed=False)

    def to(self, topic: str, key_serde: Serde | None = None, value_serde: Serde | None = None,
           partitioner: Callable[[Any, Any, int], int] | None = None, name: str | None = None) -> None:
        """Write every record to ``topic``.

        Serdes default to this stream's; ``partitioner(key, value, partition_count)``
        picks the partition (default: Kafka's murmur2 of the key bytes).
        """
        if partitioner is not None and not callable(partitioner):
            raise TypeError("partitioner must be a function (key, value, partition_count) -> int")
        self._app.topology.add(
            "sink", [self._node], name=name, topic=topic,
            key_serde=key_serde or self.key_serde,
            value_serde=value_serde or self.value_serde,
            partitioner=partitioner,
        )

    # -- stateful ---------------------------------------------------------------
    def group_by_key(self, key_serde: Serde | None = None, value_serde: Serde | None = None) -> "KGroupedStream":
        """Group by the current key for an aggregation (repartitions only if the key was changed)."""
        from streamlet.dsl.grouped import KGroupedStream

        return KGroupedStream(self._app, self._node, key_serde or self.key_serde,
                              value_serde or self.value_serde, needs_repartition=self.key_changed)

    def group_by(self, fn: Callable[[Any, Any], Any], key_serde: Serde | None = None,
                 value_serde: Serde | None = None, name: str | None = None) -> "KGroupedStream":
        """Group by a new key ``fn(key, value)``; records go through a repartition topic.

        A ``None`` group key drops the record.
        """
        from streamlet.dsl.grouped import KGroupedStream

        if not callable(fn):
            raise TypeError("group_by() expects a function (key, value) -> new key")
        node = self._app.topology.add("group_by", [self._node], fn=fn, name=name)
        return KGroupedStream(self._app, node.name, key_serde or self.key_serde,
                              value_serde or self.value_serde, needs_repartition=True)

    def _join_table(self, table: "KTable", joiner: Callable[[Any, Any], Any], left: bool,
                    name: str | None) -> "KStream":
        from streamlet.dsl.table import KTable

        if not isinstance(table, KTable):
            raise NotImplementedError(
                "stream–stream joins (with sl.JoinWindows) are not built yet; join a KTable: "
                "stream.join(app.table('users'), joiner)"
            )
        if not callable(joiner):
            raise TypeError("join() expects a joiner function (stream_value, table_value) -> value")
        stream = self
        if self.key_changed:
            base = name or f"join-{len(self._app.topology.internal_topics) + 1}"
            stream = self.repartition(name=f"{base}-left")
        node = self._app.topology.add("stream_table_join", [stream._node], fn=joiner, name=name,
                                      table=table._node, peers=[table._node], left=left)
        return KStream(self._app, node.name, stream.key_serde, self._app.default_value_serde)

    def _join_global(self, table: "GlobalKTable", joiner: Callable[[Any, Any], Any],
                     key_selector: Callable[[Any, Any], Any] | None, left: bool, name: str | None) -> "KStream":
        """Stream–global-table join (Kafka Streams' ``KStream#join(GlobalKTable, KeyValueMapper,
        ValueJoiner)``): no repartition, no co-partitioning (every worker holds the whole table)."""
        if table._app is not self._app:
            raise TopologyError("a stream–global-table join needs a global table of the same App")
        if not callable(joiner):
            raise TypeError("join() expects a joiner function (stream_value, table_value) -> value")
        if key_selector is not None and not callable(key_selector):
            raise TypeError("key_selector must be a function (key, value) -> the global table's key")
        node = self._app.topology.add("stream_global_join", [self._node], fn=joiner, name=name,
                                      global_store=table.store_name, key_selector=key_selector, left=left)
        return KStream(self._app, node.name, self.key_serde, self._app.default_value_serde, self.key_changed)

    def join(self, other: Any, joiner: Callable[[Any, Any], Any], window: Any = None,
             name: str | None = None, key_selector: Callable[[Any, Any], Any] | None = None) -> "KStream":
        """Stream–table inner join: for each record, ``joiner(value, table_value)`` with the table's
        value for the record's key *at that moment*; records with no table row are dropped.
        Later table updates emit nothing.

        With a :class:`~streamlet.dsl.global_table.GlobalKTable`, the row is the one of
        ``key_selector(key, value)`` (default: the record's key); a record whose lookup key is
        ``None`` or has no row is dropped; the output keeps the stream's key.
        """
        from streamlet.dsl.global_table import GlobalKTable

        if isinstance(other, GlobalKTable):
            return self._join_global(other, joiner, key_selector, left=False, name=name)
        if key_selector is not None:
            raise TypeError("key_selector= picks the row of a GlobalKTable (app.global_table(...)); a KTable "
                            "is joined by the stream's key")
        if window is not None:
            raise NotImplementedError("windowed stream–stream joins are not built yet")
        return self._join_table(other, joiner, left=False, name=name)

    def left_join(self, other: Any, joiner: Callable[[Any, Any], Any], window: Any = None,
                  name: str | None = None, key_selector: Callable[[Any, Any], Any] | None = None) -> "KStream":
        """Like :meth:`join`, but a record with no table row (or, with a GlobalKTable, a ``None``
        lookup key) still emits ``joiner(value, None)``."""
        from streamlet.dsl.global_table import GlobalKTable

        if isinstance(other, GlobalKTable):
            return self._join_global(other, joiner, key_selector, left=True, name=name)
        if key_selector is not None:
            raise TypeError("key_selector= picks the row of a GlobalKTable (app.global_table(...)); a KTable "
                            "is joined by the stream's key")
        if window is not None:
            raise NotImplementedError("windowed stream–stream joins are not built yet")
        return self._join_table(other, joiner, left=True, name=name)

    def __repr__(self) -> str:
        return f"<KStream {self._node}>"
