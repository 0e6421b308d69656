"""Repartition topics are purged up to the committed offsets (Kafka Streams' repartition purge).

A repartition topic is the application's own: once its records are processed
and committed nobody needs them, so like Kafka Streams (``repartition.purge.
interval.ms``, 30 s) streamlet deletes them (DeleteRecords) after a commit, at
most once per interval, and creates the topics with ``retention.ms=-1`` — they
never lose a record that was not processed. Brokers without DeleteRecords
(the embedded one, Tansu) keep them: the purge turns itself off there.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

log = logging.getLogger("streamlet.runtime")

Key = tuple[str, int]


class RepartitionPurge:
    """After-commit hook: deletes records of ``topics`` below the offsets just committed."""

    def __init__(self, admin: Any, topics: set[str], interval_ms: int) -> None:
        self.admin, self.topics, self.interval = admin, topics, interval_ms / 1000.0
        self.enabled = bool(topics)
        self.next = time.monotonic() + self.interval
        #: what was asked to be purged since the last purge, and where each partition is purged to
        self._due: dict[Key, int] = {}
        self.purged: dict[Key, int] = {}

    def after_commit(self, committed: dict[Key, int]) -> None:
        if not self.enabled:
            return
        topics = self.topics
        for key, offset in committed.items():
            if key[0] in topics:
                self._due[key] = offset
        now = time.monotonic()
        if now < self.next or not self._due:
            return
        self.next = now + self.interval
        wanted = [TopicPartition(t, p, o) for (t, p), o in self._due.items() if o > self.purged.get((t, p), 0)]
        self._due = {}
        if not wanted:
            return
        try:
            futures = self.admin.delete_records(wanted, request_timeout=30)
        except (KafkaException, ValueError) as exc:
            log.warning("could not purge repartition topics: %s", exc)
            return
        for tp, future in futures.items():
            future.add_done_callback(lambda f, tp=tp: self._done(tp, f))

    def _done(self, tp: TopicPartition, future: Any) -> None:
        """On the admin client's thread."""
        try:
            future.result()
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if isinstance(err, KafkaError) and err.code() in (KafkaError._UNSUPPORTED_FEATURE,
                                                              KafkaError.UNSUPPORTED_VERSION):
                if self.enabled:
                    log.info("the broker cannot delete records: repartition topics are not purged")
                self.enabled = False
                return
            log.warning("could not purge %s [%d] up to offset %d: %s", tp.topic, tp.partition, tp.offset, exc)
            return
        key = (tp.topic, tp.partition)
        self.purged[key] = max(self.purged.get(key, 0), tp.offset)
