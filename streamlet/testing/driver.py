"""``TestDriver``: run a topology with no broker, with controlled time.

It compiles the same per-task chains as the runtime and applies the same
error policy (a record over the producer's ``message.max.bytes`` fails as
it would on a broker); outputs written to a topic the topology reads (repartition
topics, chained pipelines) are processed in turn, as on a broker.

    >>> with TestDriver(app) as d:
    ...     d.send("orders", key="o-1", value={"amount": 150}, timestamp=1000)
    ...     d.read("big-orders")
    [('o-1', {'amount': 150, 'big': True})]
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from streamlet.errors import TopologyError
from streamlet.record import Record, RecordMessage
from streamlet.runtime.error_policy import ErrorPolicy
from streamlet.runtime.clients import max_record_bytes
from streamlet.runtime.produce_errors import record_size, too_large
from streamlet.runtime.global_store import GlobalStore, source_serde
from streamlet.metrics import Metrics
from streamlet.runtime.store_view import GlobalStoreView, StoreView, view_of
from streamlet.runtime.task_manager import TaskManager
from streamlet.serde.context import KEY, VALUE, deserializer_for, serializer_for
from streamlet.topology.compile import DeserializationFailure

if TYPE_CHECKING:
    from streamlet.runtime.application import Application


class TestDriver:
    """Drives ``app``'s topology in this process: ``send``, ``read``, ``advance_wall_clock``.

    Every topic has ``partitions`` partitions (default 1); ``send`` takes an
    explicit ``partition=`` to model several. Offsets count per partition
    from 0, as on Kafka. A record sent to a global table's topic updates the
    table at once, whatever its partition (as in ``TopologyTestDriver``).
    """

    __test__ = False  # not a pytest test class

    def __init__(self, app: "Application", partitions: int = 1, start_time_ms: int = 0) -> None:
        self.app = app
        self.topology = app.topology
        self.topology.validate()
        self.partitions = partitions
        self.wall_clock_ms = start_time_ms
        #: topic → partition → list of (key bytes, value bytes, timestamp, headers)
        self.log: dict[str, dict[int, list[tuple[Any, Any, int, Any]]]] = {}
        self._read_pos: dict[str, int] = {}
        self._written: dict[str, list[tuple[int, int]]] = {}
        self._queue: deque[RecordMessage] = deque()
        self._processing = False
        topic_counts = {t: partitions for t in self.topology.source_topics() + self.topology.sink_topics()}
        #: the producer's message.max.bytes: a larger record fails as it would on a broker
        self.max_bytes = max_record_bytes(app.config.client_config)
        self.policy = ErrorPolicy(app.config.on_error, app.config.dead_letter, self._produce, self.max_bytes)
        self._metrics = Metrics()
        #: global table topic → its store (every partition, shared by every task)
        self.global_stores: dict[str, GlobalStore] = {}
        caches: dict[str, Any] = {}
        for spec in self.topology.global_stores.values():
            caches[spec.name] = self._open_store(spec, 0)
            self.global_stores[spec.changelog] = GlobalStore(spec, caches[spec.name], self.policy)
        self.tasks = TaskManager(self.topology, self._produce, topic_counts, self._open_store,
                                 clock=lambda: self.wall_clock_ms, global_stores=caches)
        self.tasks.metrics = self._metrics
        self.tasks.on_late = self.policy.late if app.config.late_records == "dead_letter" else None
        self.tasks.assign((t, p) for t in self.topology.source_topics() for p in range(partitions))

    # -- the fake broker ------------------------------------------------------
    def _append(self, topic: str, partition: int, key: Any, value: Any, ts: int, headers: Any) -> int:
        parts = self.log.setdefault(topic, {})
        records = parts.setdefault(partition, [])
        records.append((key, value, ts, headers))
        self._written.setdefault(topic, []).append((partition, len(records) - 1))
        return len(records) - 1

    def _produce(self, topic: str, value: bytes | None, key: bytes | None, partition: int = -1,
                 timestamp: int = 0, headers: Any = None) -> None:
        size = record_size(value, key, headers)
        if size > self.max_bytes:
            raise too_large(topic, size, self.max_bytes)
        if partition < 0:
            partition = 0 if self.partitions == 1 else _partition_of(key, self.partitions)
        offset = self._append(topic, partition, key, value, timestamp, headers)
        if topic in self.global_stores:
            self.global_stores[topic].apply([RecordMessage(topic, partition, offset, timestamp, headers, key, value)])
        elif topic in self.tasks.routes:
            self._queue.append(RecordMessage(topic, partition, offset, timestamp, headers, key, value))

    # -- public API -----------------------------------------------------------
    def send(self, topic: str, key: Any = None, value: Any = None, timestamp: int | None = None,
             headers: list[tuple[str, bytes]] | None = None, partition: int | None = None) -> None:
        """Write one record to input ``topic`` (serialized with its source serdes) and process it."""
        if topic in self.global_stores:
            spec = self.global_stores[topic].spec
            key_serde, value_serde = source_serde(spec.key_serde), source_serde(spec.value_serde)
        elif topic in self.tasks.routes:
            node = self.topology.source_node(topic)
            key_serde, value_serde = node.params["key_serde"], node.params["value_serde"]
        else:
            raise TopologyError(
                f"topic {topic!r} is not an input of this topology; inputs: "
                f"{self.topology.source_topics() + self.topology.global_topics()}"
            )
        kb = serializer_for(key_serde, topic, KEY)(key, headers)
        vb = serializer_for(value_serde, topic, VALUE)(value, headers)
        self.send_raw(topic, kb, vb, timestamp, headers, partition)

    def send_raw(self, topic: str, key: bytes | None, value: bytes | None, timestamp: int | None = None,
                 headers: list[tuple[str, bytes]] | None = None, partition: int | None = None) -> None:
        """Write already-serialized bytes (e.g. a malformed record) and process them."""
        ts = self.wall_clock_ms if timestamp is None else timestamp
        if partition is None:
            partition = 0 if self.partitions == 1 else _partition_of(key, self.partitions)
        if not 0 <= partition < self.partitions:
            raise ValueError(f"partition {partition} out of range (the driver has {self.partitions})")
        offset = self._append(topic, partition, key, value, ts, headers)
        message = RecordMessage(topic, partition, offset, ts, headers, key, value)
        if topic in self.global_stores:  # applied at once, as TopologyTestDriver does
            self.global_stores[topic].apply([message])
            return
        self._queue.append(message)
        self._drain()

    def redeliver(self, topic: str, from_offset: int = 0, partition: int = 0) -> int:
        """Process records of ``topic`` again from ``from_offset``, at their original offsets —
        what a restart under at-least-once does after a crash. Returns how many were redelivered."""
        records = self.log.get(topic, {}).get(partition, [])
        for offset in range(from_offset, len(records)):
            kb, vb, ts, headers = records[offset]
            self._queue.append(RecordMessage(topic, partition, offset, ts, headers, kb, vb))
        self._drain()
        return max(0, len(records) - from_offset)

    def _drain(self) -> None:
        if self._processing:
            return
        self._processing = True
        try:
            routes = self.tasks.routes
            while self._queue:
                m = self._queue.popleft()
                try:
                    routes[m.topic()][m.partition()](m)
                except DeserializationFailure as exc:
                    self.policy.handle(m, exc.cause, "deserialize")
                except Exception as exc:
                    self.policy.handle(m, exc, "process")
                # as TopologyTestDriver: stream-time punctuators are due after each record
                task = self.tasks.task_of(m.topic(), m.partition())
                punctuation = task.ctx.punctuation if task is not None else None
                if punctuation is not None:
                    punctuation.punctuate_stream_time()
        finally:
            self._processing = False
            self._queue.clear()

    def read_records(self, topic: str) -> list[Record]:
        """Records written to ``topic`` since the last read, deserialized with its sink's serdes."""
        written = self._written.get(topic, [])
        start = self._read_pos.get(topic, 0)
        self._read_pos[topic] = len(written)
        sinks = [n for n in self.topology.sinks() if n.params["topic"] == topic]
        ks = deserializer_for(sinks[0].params["key_serde"], topic, KEY) if sinks else None
        vs = deserializer_for(sinks[0].params["value_serde"], topic, VALUE) if sinks else None
        out = []
        for partition, offset in written[start:]:
            kb, vb, ts, headers = self.log[topic][partition][offset]
            key = ks(kb, headers) if ks else kb
            value = vs(vb, headers) if vs else vb
            out.append(Record(key, value, ts, topic, partition, offset, headers))
        return out

    def read(self, topic: str) -> list[tuple[Any, Any]]:
        """``(key, value)`` pairs written to ``topic`` since the last read."""
        return [(r.key, r.value) for r in self.read_records(topic)]

    def _open_store(self, spec: Any, partition: int) -> Any:
        from streamlet.state import InMemoryStore, StoreBuilder

        return StoreBuilder.for_spec(spec, partition).build(InMemoryStore(spec.name))

    def metrics(self) -> dict[str, int]:
        """The counters a worker would show in ``app.metrics()`` (``late_records_dropped``, ...)."""
        return self._metrics.snapshot()

    def store(self, name: str) -> StoreView:
        """Read-only mapping over store ``name``: ``[key]``, ``get``, ``items()``, ``len()``."""
        topo = self.topology
        if name in topo.global_stores:
            return GlobalStoreView(topo.global_stores[name], self.tasks.global_stores)
        if name not in topo.stores:
            raise KeyError(f"no store named {name!r}; stores: {sorted([*topo.stores, *topo.global_stores])}")
        return view_of(topo.stores[name], self.tasks)

    def advance_wall_clock(self, ms: int) -> None:
        """Move wall-clock time forward ``ms`` and run the wall-clock punctuators that are due (once
        each, like Kafka Streams' ``TopologyTestDriver.advanceWallClockTime``); the records they
        forward are processed before it returns. Stream time follows the records sent."""
        if ms < 0:
            raise ValueError("time only moves forward")
        self.wall_clock_ms += ms
        for task in list(self.tasks.tasks.values()):
            if task.ctx.punctuation is not None:
                task.ctx.punctuation.punctuate_wall_clock(self.wall_clock_ms)
        self._drain()

    advance_time = advance_wall_clock

    def stream_time(self, topic: str, partition: int = 0) -> int:
        """The stream time of the task reading ``topic``'s ``partition`` (-1: no record yet, or no
        step of the task reads stream time)."""
        task = self.tasks.task_of(topic, partition)
        if task is None:
            raise TopologyError(f"topic {topic!r} partition {partition} is not an input of this topology")
        return task.ctx.stream_time

    def close(self) -> None:
        self.tasks.close_all()
        for store in self.global_stores.values():
            store.cache.close()

    def __enter__(self) -> "TestDriver":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _partition_of(key: bytes | None, count: int) -> int:
    """Kafka's default partitioner: murmur2 of the key bytes (keyless records go to 0)."""
    if key is None:
        return 0
    from streamlet.partitioner import murmur2_partition

    return murmur2_partition(key, count)
