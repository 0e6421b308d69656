"""Input partitions whose committed offset fell below the log start: records deleted unprocessed.

A consumer whose committed offset is no longer in the log (retention, or the
embedded broker's size cap, deleted the records first) is reset by
``auto.offset.reset`` without a word, and the records in between are never
processed. At assignment — before the first fetch — the group's committed
offsets (one OffsetFetch) are compared with the partitions' first offsets
(one ListOffsets): each gap is logged with topic, partition and offsets and
counted in the ``input_truncated_records`` metric (``on_input_truncated=
'warn'``, the default), or stops the worker (``'fail'``) before anything is
processed or committed.
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import OffsetSpec

from streamlet.errors import DataLossError, StateError
from streamlet.metrics import Metrics

log = logging.getLogger("streamlet.runtime")

Key = tuple[str, int]


class InputLogStart:
    """Reads the committed offsets of newly assigned partitions and checks them against the log start."""

    def __init__(self, consumer: Any, admin: Any, policy: str, metrics: Metrics, timeout_s: float = 30.0) -> None:
        self.consumer, self.admin, self.policy, self.metrics = consumer, admin, policy, metrics
        self.timeout_s = timeout_s
        #: the metadata committed with each offset read by the last :meth:`committed` (stream time)
        self.metadata: dict[Key, str | None] = {}

    def committed(self, keys: list[Key]) -> dict[Key, int | None]:
        """The group's committed offset of each partition (None: nothing committed); gaps reported."""
        if not keys:
            return {}
        try:
            got = self.consumer.committed([TopicPartition(t, p) for t, p in keys], timeout=self.timeout_s)
        except KafkaException as exc:
            raise StateError(f"cannot read the committed offsets of {_fmt(keys)}: {exc}") from exc
        committed = {(tp.topic, tp.partition): tp.offset if tp.offset >= 0 else None for tp in got}
        self.metadata = {(tp.topic, tp.partition): tp.metadata for tp in got}
        self.check({k: c for k, c in committed.items() if c is not None})
        return committed

    def check(self, committed: dict[Key, int]) -> None:
        if not committed:
            return
        try:
            futures = self.admin.list_offsets({TopicPartition(t, p): OffsetSpec.earliest() for t, p in committed},
                                              request_timeout=self.timeout_s)
            starts = {(tp.topic, tp.partition): f.result().offset for tp, f in futures.items()}
        except KafkaException as exc:
            # the check is a safety net, not a reason to stop processing
            log.warning("could not read the first offsets of %s to check for deleted records: %s",
                        _fmt(list(committed)), exc)
            return
        for key, offset in sorted(committed.items()):
            start = starts.get(key, -1)
            if start > offset:
                self.report(key, offset, start)

    def report(self, key: Key, committed: int, start: int) -> None:
        topic, partition = key
        message = (f"input topic {topic!r} partition {partition}: records {committed} to {start - 1} were deleted "
                   f"before this application processed them (its committed offset is {committed}, the log now "
                   f"starts at {start}; retention on the topic, or the embedded broker's ~5 MiB per-partition "
                   "cap)")
        if self.policy == "fail":
            raise DataLossError(f"{message}. The worker stops without processing them; to skip them and go on, "
                                "set on_input_truncated='warn' (STREAMLET_ON_INPUT_TRUNCATED=warn)")
        self.metrics.inc("input_truncated_records", start - committed, topic=topic, partition=partition)
        log.warning("%s: they are skipped (on_input_truncated='warn'; 'fail' stops the worker instead)", message)


def _fmt(keys: list[Key]) -> str:
    return ", ".join(f"{t}[{p}]" for t, p in keys)
