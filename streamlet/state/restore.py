"""Restore a store from its changelog topic, in large batches, with progress."""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from confluent_kafka import TopicPartition

from streamlet.state.store import KeyValueStore

log = logging.getLogger("streamlet.state")


def _delete_all(store: KeyValueStore) -> None:
    keys = [k for k, _ in store.items()]
    for i in range(0, len(keys), 10_000):
        store.write({k: None for k in keys[i:i + 10_000]})


def restore_store(store: KeyValueStore, consumer: Any, topic: str, partition: int, *,
                  progress: Callable[[int, int], None] | None = None, batch_size: int = 10_000,
                  idle_timeout_s: float = 10.0) -> int:
    """Apply ``topic[partition]`` from the store's checkpoint to the end; return records read.

    ``consumer`` is a plain confluent-kafka Consumer used with ``assign``. The
    end is the high watermark of the fetch responses — ListOffsets alone is
    wrong on some brokers (Tansu) — so an empty read ends only once a fetch
    response confirms the position is at the end.
    """
    tp = TopicPartition(topic, partition)
    low, high = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
    start = store.offsets().get(topic)
    if start is not None and start > max(high, 0) and start > low:
        # the checkpoint is beyond the end: the changelog was deleted and re-created
        log.warning("checkpoint %d of %s [%d] is beyond its end %d: the changelog was re-created; "
                    "wiping store %s and restoring from the start", start, topic, partition, high, store.name)
        _delete_all(store)
        start = None
    if start is None or start < low:
        start = max(low, 0)
    consumer.assign([TopicPartition(topic, partition, start)])
    position, count = start, 0
    total = max(high - start, 0)
    last_report = time.monotonic()
    last_data = time.monotonic()
    try:
        while True:
            msgs = consumer.consume(batch_size, 0.2)
            changes: dict[bytes, bytes | None] = {}
            for m in msgs:
                if m.error() is not None:
                    continue
                key = m.key()
                if key is not None:
                    changes[key] = m.value()
                position = m.offset() + 1
                count += 1
            if msgs:
                store.write(changes, {topic: position})
                last_data = time.monotonic()
            _, fetched_high = consumer.get_watermark_offsets(tp, cached=True)
            if fetched_high >= 0 and position >= fetched_high:
                break
            now = time.monotonic()
            if not msgs and now - last_data > idle_timeout_s and position >= high:
                break  # no fetch response reported a high watermark; trust ListOffsets
            if now - last_report > 2.0:
                last_report = now
                total = max(total, (fetched_high if fetched_high >= 0 else high) - start)
                if progress:
                    progress(count, total)
                log.info("restoring %s [%d]: %d of ~%d records", topic, partition, count, total)
    finally:
        consumer.unassign()
    store.write({}, {topic: position})
    if progress:
        progress(count, max(total, count))
    return count
