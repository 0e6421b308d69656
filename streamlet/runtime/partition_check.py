"""Co-partitioned inputs checked as records arrive: is each key on the partition murmur2 gives it?

A join (or any task reading several topics together) finds a key only if
every topic put it on the same partition number. streamlet's own producers
(sinks, repartition topics) use murmur2, Kafka's Java default; a topic
written by a plain confluent-kafka producer uses CRC32 (librdkafka's
``consistent_random``) unless it sets ``partitioner=murmur2_random``, and a
join against it silently misses most keys. So records of the external topics
a task reads together are sampled (a few dozen per batch, checked before the
batch is processed): the first mismatch per topic is logged loudly with the
key, the partitions and the fix, every sampled mismatch is counted in the
``partition_mismatches`` metric, and ``on_partition_mismatch='fail'`` stops
the worker before the batch is processed.
"""

from __future__ import annotations

import logging
from typing import Any

from streamlet.errors import DataLossError
from streamlet.partitioner import murmur2_partition
from streamlet.metrics import Metrics
from streamlet.topology.graph import Topology

log = logging.getLogger("streamlet.runtime")

#: records checked per consumed batch (spread over it)
SAMPLE = 64


def copartitioned_external_topics(topology: Topology) -> set[str]:
    """Input topics read together with others by one task and not written by streamlet itself."""
    return {topic for topics in topology.topics_of_subtopology().values() if len(topics) > 1
            for topic in topics if topic not in topology.internal_topics}


class PartitionCheck:
    """Samples the records of ``topics`` (topic → partition count) for keys on the wrong partition."""

    def __init__(self, topics: dict[str, int], policy: str, metrics: Metrics, sample: int = SAMPLE) -> None:
        self.topics, self.policy, self.metrics, self.sample = topics, policy, metrics, sample
        self.reported: set[str] = set()

    def check(self, msgs: list[Any]) -> None:
        topics = self.topics
        step = len(msgs) // self.sample or 1
        for i in range(0, len(msgs), step):
            m = msgs[i]
            count = topics.get(m.topic())
            if count is None or m.error() is not None:
                continue
            key = m.key()
            if key is None:
                continue
            expected = murmur2_partition(key, count)
            if expected != m.partition():
                self.mismatch(m, key, expected)

    def mismatch(self, m: Any, key: bytes, expected: int) -> None:
        topic = m.topic()
        self.metrics.inc("partition_mismatches", topic=topic)
        if topic in self.reported and self.policy != "fail":
            return
        self.reported.add(topic)
        message = (f"topic {topic!r} is joined (read together) with other topics, but key {key!r} is on partition "
                   f"{m.partition()} (offset {m.offset()}) where Kafka's default partitioner (murmur2, which "
                   f"streamlet and the Java clients use) puts it on partition {expected}: a join misses such keys. "
                   "The producer of this topic partitions differently — confluent-kafka's default is CRC32: "
                   "create it with Producer({..., 'partitioner': 'murmur2_random'}) and write the topic again")
        if self.policy == "fail":
            raise DataLossError(f"{message}. The worker stops (on_partition_mismatch='fail'); 'warn' logs and "
                                "goes on")
        log.error("%s. Further mismatches on this topic are counted in the partition_mismatches metric, not "
                  "logged (on_partition_mismatch='warn'; 'fail' stops the worker, 'ignore' turns this check "
                  "off when every input of the join uses the same other partitioner)", message)
