"""The global tables of this process: loaded whole before any task runs, then kept current
(Kafka Streams' ``GlobalStateManager`` and ``GlobalStreamThread``).

One consumer with a manual assignment of every partition of every global
table's topic (no consumer group, no committed offsets: the stores'
checkpoints say where to go on). :meth:`GlobalState.bootstrap` reads each
partition from its checkpoint (or from the start) to the end offset listed
at start-up, before the worker subscribes; then :meth:`GlobalState.poll`
applies what has arrived since, once per turn of the record loop.

Why the record loop and not a thread of its own, as Kafka Streams has: a
worker here has one record loop (Kafka Streams shares the global store
among several stream threads, so it needs its own thread and a
thread-safe store). Updating from the loop keeps the joins' lookups on the
thread that owns the store's cache, with no lock on the per-record path
and no read that can see half a batch; the cost is that a large burst of
global updates is applied between two batches of stream records (``poll``
takes at most :data:`POLL_BATCH` records per turn). Interactive queries
(``app.store``) read from other threads as they do task stores (the
cache's ``peek`` / ``items``).

A checkpoint that does not fit the topic (beyond its end or before its
start: the topic was re-created or records were deleted) wipes the store and
loads it again from the start, blocking the loop as the first load did.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from streamlet.config import Config
from streamlet.errors import StateError
from streamlet.runtime.global_store import GlobalStore
from streamlet.metrics import Metrics
from streamlet.runtime.restore_progress import RestoreProgress
from streamlet.state import StateDirectory
from streamlet.state.builder import StoreBuilder
from streamlet.state.restore import list_offsets, restore_consumer_config
from streamlet.topology.graph import Topology

log = logging.getLogger("streamlet.state")

#: records applied per turn of the record loop at most
POLL_BATCH = 10_000

_OUT_OF_RANGE = {KafkaError.OFFSET_OUT_OF_RANGE, KafkaError._AUTO_OFFSET_RESET}
_MISSING_TOPIC = {KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError._UNKNOWN_PARTITION,
                  KafkaError.TOPIC_AUTHORIZATION_FAILED}


Key = tuple[str, int]  #: (topic, partition)


class _InvalidCheckpoint(Exception):
    """A store's checkpoint does not fit its topic: wipe it and load it again."""

    def __init__(self, store: GlobalStore, why: str) -> None:
        super().__init__(why)
        self.store = store


class GlobalState:
    """Opens, loads and updates the stores of the topology's global tables.

    ``caches`` (store name → cache) is what tasks look rows up in and what
    ``app.store`` reads. ``loaded`` counts the records applied by the last
    :meth:`bootstrap` (a restart with an up-to-date checkpoint reads only the tail); the
    metric ``global_store_loaded_records{store=...}`` counts them per store.
    """

    def __init__(self, topology: Topology, config: Config, bootstrap_servers: str, directory: StateDirectory,
                 policy: Any, partitions: dict[str, int], caches: dict[str, Any] | None = None,
                 progress: RestoreProgress | None = None, idle_timeout_s: float = 30.0,
                 metrics: Metrics | None = None, probe_timeout_s: float = 5.0) -> None:
        self.config = config
        self.metrics = metrics or Metrics()
        self.partitions = partitions
        self.idle_timeout_s = idle_timeout_s
        self.probe_timeout_s = probe_timeout_s
        self.progress = progress or RestoreProgress()
        self.caches: dict[str, Any] = caches if caches is not None else {}
        self.stores: dict[str, GlobalStore] = {}
        self.loaded = 0
        for spec in topology.global_stores.values():
            if partitions.get(spec.changelog) is None:
                raise StateError(f"global table topic {spec.changelog!r} does not exist")
            cache = StoreBuilder(spec.name, spec.value_serde).with_caching().build(
                directory.open_global_store(spec.name))
            self.stores[spec.changelog] = GlobalStore(spec, cache, policy)
            self.caches[spec.name] = cache
        settings = {k: v for k, v in config.client_config.items()
                    if k.startswith(("security.", "sasl.", "ssl.", "client.", "socket.", "isolation."))}
        from streamlet.runtime.client_logs import with_client_logger

        self.consumer = Consumer(with_client_logger(restore_consumer_config(
            bootstrap_servers, **settings,
            **{"group.id": f"{config.application_id}-global", "fetch.wait.max.ms": 100})))

    # -- loading ---------------------------------------------------------------------------
    def bootstrap(self, stopping: Callable[[], bool] = lambda: False) -> int:
        """Read every partition to the end offset listed now; returns the records read."""
        started = time.monotonic()
        before = {topic: store.applied for topic, store in self.stores.items()}
        for _ in range(3):
            try:
                self.loaded = self._load(stopping)
                break
            except _InvalidCheckpoint as exc:
                log.warning("global store %s: its checkpoint does not fit topic %r (%s): wiping it and loading "
                            "it again from the start", exc.store.name, exc.store.topic, exc)
                exc.store.clear()
                before[exc.store.topic] = exc.store.applied  # what was read before the wipe is gone
        else:
            raise StateError("global stores: the checkpoint stayed invalid after reloading from the start; "
                             "is the topic being deleted and re-created?")
        for topic, store in self.stores.items():
            read = store.applied - before[topic]
            self.metrics.inc("global_store_loaded_records", read, store=store.name)
            log.info("global store %s ready: %d partitions of %r, %d records read in %.2f s", store.name,
                     self.partitions[topic], topic, read, time.monotonic() - started)
        return self.loaded

    def _assignment(self) -> tuple[dict[Key, int], dict[Key, int], dict[Key, int], set[Key]]:
        """Where each partition starts (its checkpoint, else the beginning), where its fetch starts
        (the record before the checkpoint, if any), the end to reach, and the partitions whose
        checkpoint is past the end ListOffsets gives (exact on Kafka, low on Tansu: :meth:`_load`
        probes them)."""
        starts, fetch_from, targets, suspects = {}, {}, {}, set()
        for topic, store in self.stores.items():
            count = self.partitions[topic]
            checkpoint = store.checkpoint()
            if not checkpoint and next(iter(store.bottom.items()), None) is not None:
                raise _InvalidCheckpoint(store, "it holds rows but no checkpoint")
            if checkpoint and max(checkpoint) >= count:
                raise _InvalidCheckpoint(store, f"it has partition {max(checkpoint)}, the topic {count}")
            for p in range(count):
                start = checkpoint.get(p)
                low, high = list_offsets(self.consumer, topic, p, self.idle_timeout_s)
                if start is not None and start < low:
                    raise _InvalidCheckpoint(store, f"partition {p} starts at {low}, the checkpoint is {start}")
                starts[(topic, p)] = OFFSET_BEGINNING if start is None else start
                fetch_from[(topic, p)] = start - 1 if start is not None and start > max(low, 0) else \
                    starts[(topic, p)]
                targets[(topic, p)] = max(high, 0)
                if start is not None and start > max(high, low, 0):
                    suspects.add((topic, p))
        return starts, fetch_from, targets, suspects

    def _load(self, stopping: Callable[[], bool]) -> int:
        """Read every partition to its target. A partition with a checkpoint is read from the record
        just before it (not applied again): the fetch answers at once, and a checkpoint past the end
        (on a broker that reports no out-of-range error) shows as that record never arriving."""
        starts, fetch_from, targets, suspects = self._assignment()
        self.consumer.assign([TopicPartition(t, p, offset) for (t, p), offset in fetch_from.items()])
        probe_deadline = time.monotonic() + self.probe_timeout_s
        pending = set(targets)
        bars = {key: self.progress.callback(f"{self.stores[key[0]].name} (global)", key[1]) for key in pending}
        done = {key: 0 for key in pending}
        count, last_seen, last_report = 0, time.monotonic(), 0.0
        while pending or suspects:
            if stopping():
                return count
            msgs = self.consumer.consume(POLL_BATCH, 0.1)
            now = time.monotonic()
            if msgs:
                last_seen = now
                for key, eof in self._errors(msgs, starts).items():
                    if eof >= targets[key]:
                        pending.discard(key)
                    if eof >= starts[key]:
                        suspects.discard(key)  # the log reaches the checkpoint
                data = [m for m in msgs if m.error() is None]
                for key, batch in _by_partition(data).items():
                    suspects.discard(key)
                    if batch[0].offset() < starts[key]:
                        batch = [m for m in batch if m.offset() >= starts[key]]  # the re-read record
                    count += self.stores[key[0]].apply(batch)
                    done[key] += len(batch)
            if suspects and now > probe_deadline:
                key = min(suspects)
                raise _InvalidCheckpoint(self.stores[key[0]], f"partition {key[1]}: no record at offset "
                                         f"{starts[key] - 1}; ListOffsets says the end is {targets[key]}")
            if not msgs:
                pending -= self._caught_up(pending - suspects, targets)
                if pending and now - last_seen > self.idle_timeout_s:
                    raise StateError(f"loading global stores made no progress for {self.idle_timeout_s:.0f} s; "
                                     f"partitions not loaded yet: {sorted(pending)}; is the broker reachable?")
            if now - last_report >= 0.5 or not pending:
                last_report = now
                for key, bar in bars.items():
                    if bar is not None:
                        start = starts[key] if starts[key] >= 0 else 0
                        bar(done[key], max(targets[key] - start, done[key]))
        return count

    def _caught_up(self, pending: set[tuple[str, int]], targets: dict[tuple[str, int], int]) -> set[tuple[str, int]]:
        """Partitions at their target and at the high watermark of the last fetch response (for a
        broker that sends no EOF event)."""
        keys = sorted(pending)
        positions = self.consumer.position([TopicPartition(t, p) for t, p in keys])
        out = set()
        for key, tp in zip(keys, positions):
            high = self.consumer.get_watermark_offsets(TopicPartition(*key), cached=True)[1]
            if tp.offset >= 0 and tp.offset >= targets[key] and high >= 0 and tp.offset >= high:
                out.add(key)
        return out

    def _errors(self, msgs: list[Any], starts: dict[tuple[str, int], int]) -> dict[tuple[str, int], int]:
        """Error events of a batch: the EOF offset per partition; an invalid checkpoint raises."""
        eofs: dict[tuple[str, int], int] = {}
        for m in msgs:
            err = m.error()
            if err is None:
                continue
            key, code = (m.topic(), m.partition()), err.code()
            if code == KafkaError._PARTITION_EOF:
                if m.offset() < starts.get(key, -1):  # the log ends before the checkpoint
                    raise _InvalidCheckpoint(self.stores[key[0]], f"partition {key[1]} ends at {m.offset()}, "
                                             f"the checkpoint is {starts[key]}")
                eofs[key] = m.offset()
            elif code in _OUT_OF_RANGE:
                raise _InvalidCheckpoint(self.stores[key[0]], f"partition {key[1]}: {err.str()}")
            elif code in _MISSING_TOPIC or err.fatal():
                raise StateError(f"cannot read global table topic {key[0]!r} partition {key[1]}: {err.str()}")
            else:
                log.warning("global table topic %s [%d]: %s (retrying)", key[0], key[1], err.str())
        return eofs

    # -- while running ---------------------------------------------------------------------------
    def poll(self) -> int:
        """Apply what arrived since the last call (no wait); returns the records applied."""
        msgs = self.consumer.consume(POLL_BATCH, 0)
        if not msgs:
            return 0
        try:
            self._errors(msgs, {})
        except _InvalidCheckpoint as exc:
            log.warning("global store %s: %s; wiping it and loading it again from the start", exc.store.name, exc)
            exc.store.clear()
            return self.bootstrap()
        count = 0
        for key, batch in _by_partition([m for m in msgs if m.error() is None]).items():
            count += self.stores[key[0]].apply(batch)
        return count

    def close(self) -> None:
        """Close the consumer and the stores (every applied record is written already)."""
        try:
            self.consumer.close()
        finally:
            for cache in self.caches.values():
                cache.close()
            self.caches.clear()


def _by_partition(msgs: list[Any]) -> dict[tuple[str, int], list[Any]]:
    out: dict[tuple[str, int], list[Any]] = {}
    for m in msgs:
        out.setdefault((m.topic(), m.partition()), []).append(m)
    return out
