"""Says loudly when the embedded broker has dropped records.

librdkafka's mock cluster keeps about 5 MiB (or 100,000 message sets) per
partition and deletes the oldest beyond that without telling any client: a
consumer that had not read them yet, or a changelog restore, silently misses
them. This watch asks for every partition's first offset about once a second
(one Metadata and one ListOffsets request) and logs an error naming topic,
partition and the offsets gone whenever a first offset moves.
"""

from __future__ import annotations

import logging
import threading
import time

from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

log = logging.getLogger("streamlet.broker")

#: what the mock keeps per partition (rdkafka_mock.c): said in the message
CAP = "about 5 MiB or 100,000 batches per partition"
#: a partition that keeps dropping is reported again at most this often
REPEAT_S = 10.0


class DroppedRecordsWatch:
    """A thread that watches the first offsets of every topic on ``bootstrap`` (not ``__`` ones)."""

    def __init__(self, bootstrap: str, interval_s: float = 1.0) -> None:
        self.bootstrap = bootstrap
        self.interval_s = interval_s
        #: (topic, partition) → first offset seen, and when it was last reported
        self.first: dict[tuple[str, int], int] = {}
        self._reported: dict[tuple[str, int], tuple[float, int]] = {}
        #: records dropped so far, per topic
        self.dropped: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="streamlet-broker-watch", daemon=True)

    def start(self) -> "DroppedRecordsWatch":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        while not self._stop.wait(self.interval_s):
            try:
                self.poll(admin)
            except Exception as exc:  # never let the watch take the broker down
                log.debug("dropped-records watch: %s", exc)

    def poll(self, admin: AdminClient) -> None:
        """One look at every partition's first offset; reports the ones that moved."""
        topics = admin.list_topics(timeout=5).topics
        wanted = {TopicPartition(name, p): OffsetSpec.earliest()
                  for name, meta in topics.items() if not name.startswith("__") and meta.error is None
                  for p in meta.partitions}
        if not wanted:
            return
        for tp, future in admin.list_offsets(wanted, request_timeout=5).items():
            try:
                first = future.result().offset
            except KafkaException:
                continue
            self.seen((tp.topic, tp.partition), first)

    def seen(self, key: tuple[str, int], first: int) -> None:
        before = self.first.get(key, 0)
        if first <= before:
            return
        self.first[key] = first
        self.dropped[key[0]] = self.dropped.get(key[0], 0) + first - before
        now = time.monotonic()
        last, since = self._reported.get(key, (0.0, before))
        if last and now - last < REPEAT_S:
            return  # told recently; the next report covers these too
        self._reported[key] = (now, first)
        log.error("the embedded broker DROPPED records of topic %r partition %d: offsets %d to %d are gone (it "
                  "keeps only %s and deletes the oldest without telling clients). A consumer or a changelog "
                  "restore that had not read them loses them. Keep data sets within the cap, or use real Kafka "
                  "for this volume (docker compose up; STREAMLET_BROKERS=host:9092)",
                  key[0], key[1], since, first - 1, CAP)
