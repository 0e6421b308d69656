"""The at-least-once client steps of a commit: the producer flush and the input offset commit.

An input offset is committed only after every output of the records before
it has been acknowledged by the broker. :class:`Committer` tracks the
processed offsets, collects delivery errors and commits offsets; the commit
as a whole — stores included — is ordered by
:class:`~streamlet.runtime.checkpoint.AtLeastOnceCheckpoint`, which the
runtime calls. :meth:`Committer.commit` is that sequence with no stores.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Iterable

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from streamlet.errors import DeliveryError, StreamletError
from streamlet.runtime.produce_errors import RECORD_ERRORS

log = logging.getLogger("streamlet.commit")

#: a commit refused because the group is rebalancing: the offsets stay pending
_REBALANCING = (KafkaError.REBALANCE_IN_PROGRESS, KafkaError.ILLEGAL_GENERATION, KafkaError.UNKNOWN_MEMBER_ID,
                KafkaError._STATE)


class Committer:
    """Tracks processed offsets per input partition and commits them safely."""

    def __init__(self, consumer: Any, producer: Any, interval_ms: int,
                 stop_requested: Callable[[], bool]) -> None:
        self.consumer = consumer
        self.producer = producer
        self.interval = interval_ms / 1000.0
        self.stop_requested = stop_requested
        #: (topic, partition) → next offset to read, processed but not committed yet
        self.pending: dict[tuple[str, int], int] = {}
        self.delivery_errors: list[KafkaError] = []
        self._first_lost = ""  # where the first of them was going
        #: records the broker rejected for their content (RECORD_ERRORS), for ``on_rejected``
        self.rejected: list[tuple[KafkaError, Any]] = []
        #: takes those records after the flush (the error policy); None: they are delivery errors
        self.on_rejected: Callable[[list[tuple[KafkaError, Any]]], None] | None = None
        #: set when an output is lost for good: every later commit raises it
        self.failure: StreamletError | None = None
        self.next_commit = time.monotonic() + self.interval
        self.commits = 0
        #: set by :meth:`abandon`: this process commits nothing more
        self.abandoned = False
        #: the metadata committed with a partition's offset (``None``: none), e.g. stream time
        self.offset_metadata: Callable[[str, int], str | None] | None = None
        #: called with what an asynchronous commit committed, once the broker accepted it
        self.on_committed: Callable[[dict[tuple[str, int], int]], None] | None = None

    # librdkafka calls this from poll()/flush() for failed deliveries only
    def on_delivery(self, err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            if self.on_rejected is not None and err.code() in RECORD_ERRORS:
                self.rejected.append((err, msg))
                return
            self.delivery_errors.append(err)
            if len(self.delivery_errors) == 1:  # the first of a burst; the DeliveryError counts them all
                self._first_lost = f"to topic {msg.topic()!r} partition {msg.partition()}: "
                log.error("output to %s [%s] not delivered: %s", msg.topic(), msg.partition(), err)

    def track_positions(self, positions: Iterable[TopicPartition]) -> None:
        pending = self.pending
        for tp in positions:
            if tp.offset >= 0:
                pending[(tp.topic, tp.partition)] = tp.offset

    def track(self, topic: str, partition: int, next_offset: int) -> None:
        self.pending[(topic, partition)] = next_offset

    def fail(self, error: StreamletError) -> None:
        """An output is lost for good: this commit and every later one raise ``error``."""
        if self.failure is None:
            self.failure = error

    def flush_outputs(self) -> None:
        """Wait until every produced record is acknowledged (the broker may be down a while).

        Records the broker rejected for their content go to ``on_rejected`` (which
        may write dead-letter records: then the flush goes on); if it raises, or any
        other delivery failed, the error sticks: an output that was lost must never
        be covered by a later commit (for instance the one the revoke callback makes
        when the consumer closes)."""
        while True:
            waited = 0.0
            while self.producer.flush(1.0) > 0:
                waited += 1.0
                if waited % 10 == 0:
                    log.warning("waiting for the brokers to acknowledge outputs (%.0f s)", waited)
            if not self.rejected or self.failure is not None or self.on_rejected is None:
                break
            rejected, self.rejected = self.rejected, []
            try:
                self.on_rejected(rejected)
            except DeliveryError as exc:
                self.fail(exc)
        if self.failure is None and self.delivery_errors:
            errors = self.delivery_errors
            first = errors[0]
            detail = f"{first.name()}: {first.str()}" if isinstance(first, KafkaError) else str(first)
            detail = self._first_lost + detail
            self.fail(DeliveryError(
                f"{len(errors)} output record(s) were not delivered (first: {detail}); "
                "input offsets were not committed, so a restart reprocesses them"
            ))
        if self.failure is not None:
            raise self.failure

    def commit(self, only: Iterable[tuple[str, int]] | None = None) -> bool:
        """Flush outputs, then commit the pending offsets (all, or those in ``only``).

        False when the broker refused the offsets (a rebalance, retries used up): they stay
        pending, and records after the last commit may be processed again (at-least-once)."""
        if not self.begin():
            return False
        self.flush_outputs()
        return self.commit_offsets(only) is not None

    def begin(self) -> bool:
        """The start of every commit: the interval starts again; False when this process commits
        nothing more (:meth:`abandon`); a lost output (:meth:`fail`) raises."""
        self.next_commit = time.monotonic() + self.interval
        if self.abandoned:
            return False
        if self.failure is not None:
            raise self.failure
        return True

    def commit_offsets(self, only: Iterable[tuple[str, int]] | None = None
                       ) -> dict[tuple[str, int], int] | None:
        """Commit the pending offsets (all, or those in ``only``), after :meth:`flush_outputs`, and wait
        for the broker's answer.

        Returns what was committed (``{(topic, partition): next offset}``, maybe empty), or
        ``None`` when the broker refused (a rebalance, retries used up): the offsets stay pending."""
        items, offsets = self._offsets(only)
        if not items:
            return items
        for attempt in range(30):
            try:
                self.consumer.commit(offsets=offsets, asynchronous=False)
                break
            except KafkaException as exc:
                err = exc.args[0] if exc.args else None
                code = err.code() if isinstance(err, KafkaError) else None
                if code in (KafkaError._NO_OFFSET,):
                    break  # nothing to commit after all
                if code in _REBALANCING:
                    log.warning("commit skipped during rebalance: %s", exc)
                    return None
                log.warning("commit failed (attempt %d): %s; retrying", attempt + 1, exc)
                time.sleep(0.5)
        else:
            log.error("could not commit offsets; they stay pending for the next commit")
            return None
        self._committed(items)
        return items

    def commit_offsets_async(self) -> None:
        """Send every pending offset to the broker without waiting (the commit on the interval), after
        :meth:`flush_outputs`; :meth:`on_commit` takes the answer.

        The record loop goes on meanwhile. That matters during a rebalance: librdkafka sends the
        OffsetCommit on its connection to the group coordinator, where it waits behind this member's
        JoinGroup until every member of the group has rejoined (the broker answers one request of a
        connection at a time) and is then refused — a synchronous commit would stop every partition
        of this worker for that long, though it keeps them (docs/failover.md). The offsets stay pending
        until the broker accepted them: a refused commit is sent again by the next one."""
        items, offsets = self._offsets(None)
        if not items:
            return
        try:
            self.consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as exc:  # not even sent (no assignment, a fatal error): stay pending
            log.warning("commit not sent: %s; the offsets stay pending", exc)

    def on_commit(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """librdkafka's answer to an asynchronous commit (its ``on_commit`` callback, served by the
        record loop's ``consume``): accepted offsets leave ``pending``; refused ones stay for the next
        commit (at-least-once: records after the last commit may be processed again)."""
        if err is not None:
            code = err.code() if isinstance(err, KafkaError) else None
            if code == KafkaError._NO_OFFSET:
                return
            if code in _REBALANCING:
                log.info("commit refused during a rebalance (%s): the offsets stay pending", err)
            else:
                log.warning("commit failed: %s; the offsets stay pending for the next commit", err)
            return
        items = {(tp.topic, tp.partition): tp.offset for tp in partitions if tp.error is None and tp.offset >= 0}
        if items:
            self._committed(items)
            if self.on_committed is not None:
                self.on_committed(items)

    def _offsets(self, only: Iterable[tuple[str, int]] | None
                 ) -> tuple[dict[tuple[str, int], int], list[TopicPartition]]:
        """The pending offsets to commit (all, or those in ``only``), as a dict and as TopicPartitions."""
        if only is None:
            items = dict(self.pending)
        else:
            keys = set(only)
            items = {k: v for k, v in self.pending.items() if k in keys}
        metadata = self.offset_metadata
        if metadata is None:
            offsets = [TopicPartition(t, p, o) for (t, p), o in items.items()]
        else:
            offsets = [_with_metadata(t, p, o, metadata(t, p)) for (t, p), o in items.items()]
        return items, offsets

    def _committed(self, items: dict[tuple[str, int], int]) -> None:
        """``items`` are committed: they leave ``pending`` unless a later offset replaced them."""
        for key in items:
            if self.pending.get(key) == items[key]:
                del self.pending[key]
        self.commits += 1

    def abandon(self) -> None:
        """The worker stops after a failure: commit nothing more, whoever asks.

        What was processed since the last commit is processed again after a
        restart (at-least-once); committing it now could cover outputs that
        were never acknowledged.
        """
        self.abandoned = True
        self.pending.clear()

    def forget(self, topic_partitions: Iterable[tuple[str, int]]) -> None:
        for key in topic_partitions:
            self.pending.pop(key, None)


def _with_metadata(topic: str, partition: int, offset: int, metadata: str | None) -> TopicPartition:
    """An offset to commit with its metadata; none when there is none (a task that has not read a
    record yet has no stream time: ``TopicPartition`` refuses ``metadata=None``)."""
    if metadata is None:
        return TopicPartition(topic, partition, offset)
    return TopicPartition(topic, partition, offset, metadata=metadata)
