"""Restore a store from its changelog topic, in large batches, with progress.

Where the changelog ends is the subtle part. ``get_watermark_offsets(tp,
cached=False)`` (ListOffsets) is exact on Kafka but low on Tansu (it reports
the start of the last batch + 1), so it is only a lower bound here. The
authority is the high watermark of a fetch response *of this assignment*
(``cached=True`` after consuming): the cached figure can be left over from an
earlier assignment of the same partition, so it is trusted only once this
assignment has shown a response (a message, a changed figure, an EOF event).

A restore that starts from a checkpoint first re-reads the record just
before it (``checkpoint - 1``): the fetch comes back at once, with data and a
fresh high watermark, instead of waiting ``fetch.wait.max.ms`` at the end of
the log — an up-to-date store costs one round trip. That record is not
counted; writing it again is harmless (it is the last record applied before
the checkpoint, so the store already holds its value).

A checkpoint beyond the end (the changelog was deleted and re-created)
cannot be trusted: the store is wiped and restored from the start, with a
warning. A changelog that starts after the offset the restore needs (its
checkpoint, or 0 for a new store) lost records to retention or to the
embedded broker's size cap: ``on_truncated`` decides — ``"fail"`` raises
:class:`~streamlet.errors.ChangelogTruncatedError` naming store, partition and
offsets; ``"warn"`` logs it and restores what is left on top of what the
store holds. A source table's "changelog" is its input topic, whose records
before its first offset are simply gone for a new store (retention).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from streamlet.errors import ChangelogTruncatedError, StateError
from streamlet.state.row import TIMESTAMP
from streamlet.state.store import KeyValueStore

log = logging.getLogger("streamlet.state")

Progress = Callable[[int, int], None]

_OUT_OF_RANGE = {KafkaError.OFFSET_OUT_OF_RANGE, KafkaError._AUTO_OFFSET_RESET}
_MISSING_TOPIC = {KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError._UNKNOWN_PARTITION,
                  KafkaError.TOPIC_AUTHORIZATION_FAILED}

#: a partition without a known leader yet (just created, or moving): asked again (the error object
#: from get_watermark_offsets does not always carry librdkafka's retriable flag)
_LEADER_MOVING = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE}


def restore_consumer_config(bootstrap_servers: str, **overrides: Any) -> dict[str, Any]:
    """Settings for a restore consumer (``assign`` only, no group membership, no commits).

    ``restore_store`` works with any consumer; these make it fast:

    * ``fetch.wait.max.ms`` short: at the end of a partition librdkafka leaves
      a long-polling fetch in flight, and the next request on that broker
      connection (the next partition's ListOffsets or fetch) queues behind
      it — with the default 500 ms, every partition restored costs 0.5 s;
    * ``fetch.queue.backoff.ms`` short (the default caps the embedded broker
      near 130k records/s) and a deep prefetch queue;
    * EOF events as an extra end signal, and a checkpoint outside the log
      reported (``auto.offset.reset=error``) instead of silently reset.
    """
    return {
        "bootstrap.servers": bootstrap_servers,
        "group.id": "streamlet-restore",  # required by librdkafka, never joined (assign only)
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "error",
        "fetch.wait.max.ms": 10,
        "fetch.queue.backoff.ms": 1,
        "queued.min.messages": 200_000,
        "fetch.max.bytes": 64 << 20,
        "max.partition.fetch.bytes": 16 << 20,
        **overrides,
    }


def list_offsets(consumer: Any, topic: str, partition: int, timeout_s: float = 30.0) -> tuple[int, int]:
    """``(low, high)`` watermarks of a changelog partition from the broker (ListOffsets); another
    thread may ask ahead of the restore (librdkafka's calls are thread-safe). A retriable error
    (a changelog created a moment ago whose leader the broker does not know yet: NOT_LEADER_FOR_PARTITION
    on a real Kafka broker) is retried until ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                  timeout=max(deadline - time.monotonic(), 0.1), cached=False)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if (isinstance(err, KafkaError) and (err.retriable() or err.code() in _LEADER_MOVING)
                    and err.code() not in _MISSING_TOPIC and time.monotonic() < deadline):
                time.sleep(0.05)
                continue
            raise StateError(f"cannot read the offsets of changelog {topic!r} partition {partition} to "
                             f"restore its store: {exc}") from exc


class _OutOfRange(Exception):
    """The checkpoint is outside the changelog: wipe the store and restore from the start."""


class RestoreCancelled(Exception):
    """``cancel`` was set: the restore stopped between two batches (its checkpoint is where it got to)."""


class _Restore:
    """One restore of one store from one changelog partition."""

    def __init__(self, store: KeyValueStore, consumer: Any, topic: str, partition: int,
                 progress: Progress | None, batch_size: int, idle_timeout_s: float, probe_timeout_s: float,
                 log_interval_s: float, stop_at: int | None = None, cancel: Any = None,
                 on_truncated: str = "fail", stamp_rows: bool = False) -> None:
        self.store, self.consumer, self.topic, self.partition = store, consumer, topic, partition
        self.stop_at, self.cancel, self.on_truncated = stop_at, cancel, on_truncated
        self.stamp_rows = stamp_rows
        #: records the changelog had lost when this restore needed them (``warn``: restored without)
        self.lost = 0
        self.tp = TopicPartition(topic, partition)
        self.progress, self.batch_size = progress, batch_size
        self.idle_timeout_s, self.probe_timeout_s = idle_timeout_s, probe_timeout_s
        self.log_interval_s = log_interval_s

    def watermarks(self, listed: tuple[int, int] | None = None) -> tuple[int, int]:
        if listed is None:
            listed = list_offsets(self.consumer, self.topic, self.partition, self.idle_timeout_s)
        low, high = max(listed[0], 0), max(listed[1], 0)
        return low, high if self.stop_at is None else min(high, max(self.stop_at, low))

    def run(self, listed: tuple[int, int] | None = None) -> int:
        low, listed_high = self.watermarks(listed)
        checkpoint = self.store.offsets().get(self.topic)
        source_table = self.stop_at is not None
        if low > (checkpoint or 0) and (checkpoint is not None or not source_table):
            self.truncated(checkpoint or 0, low, checkpoint is not None)
            checkpoint = low  # warn: what the store holds, then what the changelog has left
        start = low if checkpoint is None else checkpoint
        if self.stop_at is not None and start >= self.stop_at:
            return 0  # already there (a source table checkpointed at or past the committed offset)
        try:
            return self.read(start, low, listed_high)
        except _OutOfRange as exc:
            log.warning("store %s: its checkpoint %d of %s [%d] is beyond the changelog's end (%s): the "
                        "changelog was deleted and re-created; wiping the store and restoring from the start",
                        self.store.name, start, self.topic, self.partition, exc)
        self.store.clear()
        low, listed_high = self.watermarks()
        try:
            return self.read(low, low, listed_high)
        except _OutOfRange as exc:
            raise StateError(f"changelog {self.topic!r} partition {self.partition} changed while store "
                             f"{self.store.name!r} was restored from it ({exc}); restart to retry") from exc

    def truncated(self, needed: int, low: int, has_checkpoint: bool) -> None:
        """The changelog starts at ``low`` but the restore needs it from ``needed``: fail or warn."""
        store, topic, partition = self.store.name, self.topic, self.partition
        what = f"its checkpoint {needed}" if has_checkpoint else "offset 0 (a new store)"
        message = (f"changelog {topic!r} partition {partition} starts at offset {low}, but store {store!r} needs "
                   f"it from {what}: records {needed} to {low - 1} were deleted (retention on the topic, or the "
                   "embedded broker's ~5 MiB per-partition cap) and the keys they changed would be wrong")
        if self.on_truncated == "fail":
            raise ChangelogTruncatedError(
                f"{message}. The worker stops; to accept the loss and restore what is left, set "
                "on_changelog_truncated='warn' (STREAMLET_ON_CHANGELOG_TRUNCATED=warn; for a table, "
                "on_input_truncated). Changelog topics need cleanup.policy=compact and no retention.")
        self.lost += low - needed
        log.warning("%s; restoring what is left (on_changelog_truncated='warn')", message)

    def read(self, start: int, low: int, listed_high: int) -> int:
        """Apply records from ``start`` to the end; the records read (not counting the re-read one)."""
        store, consumer, tp, topic = self.store, self.consumer, self.tp, self.topic
        if start <= low and listed_high <= low:
            # nothing at or after the first offset, on any broker (Tansu's low
            # figure is still above the start of a batch that exists)
            return self.finish(start, 0, 0, time.monotonic())
        reread = start > low
        fetch_from = start - 1 if reread else start
        before = consumer.get_watermark_offsets(tp, cached=True)[1]
        partition = self.partition
        consumer.assign([TopicPartition(topic, partition, fetch_from)])
        started = last_seen = last_report = last_log = time.monotonic()
        # suspicion of a checkpoint beyond the end: ListOffsets says so on Kafka;
        # on Tansu it is low, so the re-read record's arrival clears it
        suspect = reread and start > listed_high
        position, count, end = start, 0, None
        first = True  # no data record of this assignment seen yet
        fresh = False  # a fetch response of this assignment seen
        batch_size, write = self.batch_size, store.write
        stop_at, cancel, stamp_rows = self.stop_at, self.cancel, self.stamp_rows
        pack_ts = TIMESTAMP.pack
        try:
            while True:
                if cancel is not None and cancel.is_set():
                    raise RestoreCancelled(f"restore of store {store.name!r} from {topic!r} [{partition}] "
                                           f"cancelled at offset {position}")
                # ask for exactly what is left when known: consume() then returns as soon
                # as it has arrived instead of waiting out its timeout for a full batch
                remaining = (end if end is not None else listed_high) - position
                if first and reread:
                    remaining += 1
                want = batch_size if remaining >= batch_size else max(remaining, 1)
                msgs = consumer.consume(want, 0.1)
                now = time.monotonic()
                eof = -1
                if msgs and stop_at is not None:
                    msgs = [m for m in msgs if m.error() is not None or m.offset() < stop_at]
                if msgs:
                    if stamp_rows:  # timestamped rows: the record's time, then its value's bytes
                        changes = {m.key(): None if (v := m.value()) is None else pack_ts(m.timestamp()[1]) + v
                                   for m in msgs}
                    else:
                        changes = {m.key(): m.value() for m in msgs}
                    n = len(msgs)
                    if None in changes:  # error / EOF events (a changelog record always has a key)
                        del changes[None]
                        n, eof = self.events(msgs)
                    if first and n:
                        first = False
                        off = next(m.offset() for m in msgs if m.error() is None and m.key() is not None)
                        if off < fetch_from:
                            raise _OutOfRange(f"the consumer was reset to offset {off}")
                        if off == start - 1:
                            n -= 1  # the re-read record
                    if n or changes:
                        fresh = True
                        at = consumer.position([tp])[0].offset
                        position = max(position, at, msgs[-1].offset() + 1 if msgs[-1].error() is None else 0)
                        if stop_at is not None:
                            position = min(position, stop_at)
                        write(changes, {topic: position})
                        count += n
                        last_seen = now
                if eof >= 0:  # the fetcher reached the high watermark at this offset
                    if eof < start:
                        raise _OutOfRange(f"the changelog ends at {eof}")
                    position = max(position, eof)
                    if stop_at is not None:
                        position = min(position, stop_at)
                    break
                high = consumer.get_watermark_offsets(tp, cached=True)[1]
                if high != before and high >= 0:
                    fresh = True
                if stop_at is not None and high > stop_at:
                    high = stop_at
                if fresh and high >= 0:
                    if first and high < start:
                        raise _OutOfRange(f"the changelog ends at {high}")
                    if high != end:
                        end, last_seen = high, now
                    if position < high and not msgs:
                        # records that deliver nothing (transaction markers) still move the position
                        at = consumer.position([tp])[0].offset
                        if at > position:
                            position, last_seen = min(at, high), now
                    if position >= high:
                        break
                if now - last_seen > (self.probe_timeout_s if suspect and first else self.idle_timeout_s):
                    if suspect and first:
                        raise _OutOfRange(f"no record at offset {start - 1}; ListOffsets says the end is "
                                          f"{listed_high}")
                    if position >= listed_high:
                        log.warning("restoring store %s from %s [%d]: no fetch response for %.0f s; "
                                    "ending at offset %d (ListOffsets)", store.name, topic, partition,
                                    self.idle_timeout_s, position)
                        break
                    raise StateError(f"restoring store {store.name!r} from {topic!r} partition {partition} "
                                     f"made no progress for {self.idle_timeout_s:.0f} s at offset {position} "
                                     f"of at least {listed_high}; is the broker reachable?")
                if now - last_report >= 0.5 and self.progress is not None:
                    last_report = now
                    self.progress(count, max((end or listed_high) - start, count))
                if now - last_log >= self.log_interval_s:
                    last_log = now
                    rate = count / max(now - started, 1e-9)
                    log.info("restoring store %s from %s [%d]: %d of ~%d records (%.0f/s)", store.name, topic,
                             partition, count, max((end or listed_high) - start, count), rate)
        finally:
            consumer.unassign()
        return self.finish(position, count, (end or position) - start, started)

    def events(self, msgs: list[Any]) -> tuple[int, int]:
        """Look at error / EOF events in a batch: (data records, EOF offset or -1)."""
        n, eof = 0, -1
        for m in msgs:
            err = m.error()
            if err is None:
                if m.key() is not None:
                    n += 1
                continue
            code = err.code()
            if code == KafkaError._PARTITION_EOF:
                if m.partition() == self.partition and m.topic() == self.topic:
                    eof = m.offset()
            elif code in _OUT_OF_RANGE:
                raise _OutOfRange(err.str())
            elif code in _MISSING_TOPIC or err.fatal():
                raise StateError(f"cannot restore store {self.store.name!r} from changelog {self.topic!r} "
                                 f"partition {self.partition}: {err.str()}")
            else:
                log.warning("restoring store %s from %s [%d]: %s (retrying)", self.store.name, self.topic,
                            self.partition, err.str())
        return n, eof

    def finish(self, position: int, count: int, total: int, started: float) -> int:
        self.store.write({}, {self.topic: position})
        if self.progress is not None:
            self.progress(count, max(total, count))
        elapsed = time.monotonic() - started
        if count:
            log.info("restored store %s from %s [%d]: %d records in %.2f s (%.0f/s), now at offset %d",
                     self.store.name, self.topic, self.partition, count, elapsed, count / max(elapsed, 1e-9),
                     position)
        return count


def restore_store(store: KeyValueStore, consumer: Any, topic: str, partition: int, *,
                  progress: Progress | None = None, batch_size: int = 10_000, idle_timeout_s: float = 30.0,
                  probe_timeout_s: float = 5.0, log_interval_s: float = 5.0, stop_at: int | None = None,
                  cancel: Any = None, listed: tuple[int, int] | None = None, on_truncated: str = "fail",
                  lost: list[int] | None = None, stamp_rows: bool = False) -> int:
    """Apply ``topic[partition]`` from the store's checkpoint to the end; return the records read.

    ``stop_at`` ends the restore before that offset instead: a source table
    restores from its input topic up to the committed offset, and the task
    processes (and forwards) what follows.

    ``consumer`` is a plain confluent-kafka Consumer used with ``assign``
    (:func:`restore_consumer_config` gives good settings); it is unassigned
    again on return. Each consumed batch is one ``store.write`` of its
    records (a ``None`` value deletes) with the checkpoint ``{topic: next
    offset}``, so an interrupted restore resumes where it stopped.
    ``progress(done, total)`` is called about twice a second and at the end
    (``total`` is an estimate until then); a log line every
    ``log_interval_s``. ``cancel`` (a :class:`threading.Event`) set from
    another thread ends the restore between batches with
    :class:`RestoreCancelled`. ``listed``: the watermarks from :func:`list_offsets`,
    asked ahead (else asked here). Raises :class:`~streamlet.errors.StateError` when the
    changelog cannot be read (missing topic, no progress for
    ``idle_timeout_s``). ``on_truncated``: ``"fail"`` raises
    :class:`~streamlet.errors.ChangelogTruncatedError` when records the restore needs were
    deleted, ``"warn"`` restores what is left and appends how many were lost to ``lost``.
    ``stamp_rows``: the store holds timestamped rows (:mod:`streamlet.state.row`) but the topic
    holds plain values (a source table's input): each row is written as the record's timestamp
    followed by its value's bytes.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    restore = _Restore(store, consumer, topic, partition, progress, batch_size, idle_timeout_s, probe_timeout_s,
                       log_interval_s, stop_at, cancel, on_truncated, stamp_rows)
    count = restore.run(listed)
    if lost is not None and restore.lost:
        lost.append(restore.lost)
    return count
