"""What happens to a record that cannot be processed or produced: fail, skip or dead-letter
(docs/architecture.md, "Errors")."""

from __future__ import annotations

import logging
import traceback
from typing import Any, Iterable

from streamlet.errors import DeliveryError, ProduceError, RecordError, TimestampError
from streamlet.runtime.clients import produce_function
from streamlet.runtime.dead_letter import dead_letter_produce, error_header, fit
from streamlet.runtime.produce_errors import DEFAULT_MAX_BYTES, changelog_failure, rejection_text
from streamlet.topology.context import Produce

log = logging.getLogger("streamlet.errors")

#: Headers of a dead-letter record (values are UTF-8 bytes); ``streamlet.output.topic`` (and
#: ``streamlet.output.partition`` for a record the broker rejected) when an output could not be
#: produced, and the truncation headers of :mod:`streamlet.runtime.dead_letter` when it was cut.
DLQ_HEADERS = ("streamlet.error", "streamlet.error.type", "streamlet.stage",
               "streamlet.topic", "streamlet.partition", "streamlet.offset")


class ErrorPolicy:
    """Applies ``on_error`` to one failed record; counts what it skipped or dead-lettered.

    ``fail`` raises :class:`RecordError` (the runner stops without committing
    past the record); ``skip`` logs and counts; ``dead_letter`` sends the raw
    key and value with the error and its origin in headers to the
    dead-letter topic (cut to fit ``max_bytes``), then goes on.
    :meth:`rejected` does the same for output records the broker rejected.
    ``changelogs``: topics whose records may never be skipped.
    """

    def __init__(self, policy: str, dead_letter_topic: str, produce: Produce | None = None,
                 max_bytes: int = DEFAULT_MAX_BYTES, changelogs: Iterable[str] = ()) -> None:
        self.policy = policy
        self.dead_letter_topic = dead_letter_topic
        self.produce = produce
        self.max_bytes = max_bytes
        self.changelogs = frozenset(changelogs)
        self.skipped = 0
        self.dead_lettered = 0

    def connect(self, producer: Any, committer: Any, max_bytes: int, topology: Any) -> Produce:
        """In a worker: dead-letter records go to ``producer`` (cut to ``max_bytes``), the records the
        broker rejects come from ``committer``; returns the produce function of changelog records (their
        errors always stop the worker: :func:`changelog_failure`)."""
        self.produce = dead_letter_produce(producer, max_bytes, committer.fail)
        self.max_bytes = max_bytes
        self.changelogs = frozenset(s.changelog for s in topology.stores.values() if not s.source_table)
        committer.on_rejected = self.rejected
        return produce_function(producer, max_bytes, changelog_failure(max_bytes, committer.fail))

    def handle(self, msg: Any, exc: BaseException, stage: str) -> None:
        if isinstance(exc, DeliveryError):
            raise exc  # the producer's fault, not the record's: stop, commit nothing more
        if isinstance(exc, ProduceError):
            stage = "produce"
        elif isinstance(exc, TimestampError):
            stage = "timestamp"
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        if getattr(exc, "record_fault", True) is False:  # e.g. the schema registry is down
            raise RecordError(topic, partition, offset, stage, exc, "fail") from exc
        error = RecordError(topic, partition, offset, stage, exc, self.policy)
        if self.policy == "fail":
            raise error from exc
        if self.policy == "skip":
            self.skipped += 1
            log.warning("skipped record (on_error='skip'): %s", error)
            return
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        added = [
            ("streamlet.error", error_header(detail)),
            ("streamlet.error.type", type(exc).__name__.encode()),
            ("streamlet.stage", stage.encode()),
            ("streamlet.topic", str(topic).encode()),
            ("streamlet.partition", str(partition).encode()),
            ("streamlet.offset", str(offset).encode()),
        ]
        if isinstance(exc, ProduceError):
            added.append(("streamlet.output.topic", exc.topic.encode()))
        ts = msg.timestamp()[1]
        self._send(msg.key(), msg.value(), list(msg.headers() or []), added, ts if ts > 0 else 0)
        self.dead_lettered += 1
        log.warning("sent record to dead-letter topic %r: %s", self.dead_letter_topic, error)

    def late(self, msg: Any, reason: str) -> None:
        """A record too late for every window it falls in (``late_records="dead_letter"``): its raw key
        and value go to the dead-letter topic with the reason and its origin in headers."""
        added = [
            ("streamlet.error", error_header(reason)),
            ("streamlet.error.type", b"LateRecord"),
            ("streamlet.stage", b"window"),
            ("streamlet.topic", str(msg.topic()).encode()),
            ("streamlet.partition", str(msg.partition()).encode()),
            ("streamlet.offset", str(msg.offset()).encode()),
        ]
        ts = msg.timestamp()[1]
        self._send(msg.key(), msg.value(), list(msg.headers() or []), added, ts if ts > 0 else 0)
        self.dead_lettered += 1

    def rejected(self, records: list[tuple[Any, Any]]) -> None:
        """``(KafkaError, message)`` of output records the broker rejected for their content (the
        committer's delivery reports): Kafka Streams' production exception handler.

        A changelog record, or any under ``fail``, raises :class:`DeliveryError`
        (nothing past it is committed); ``skip`` logs and counts them;
        ``dead_letter`` writes each to the dead-letter topic (its headers are
        not in librdkafka's delivery report: only streamlet's are there)."""
        changelog = [(e, m) for e, m in records if m.topic() in self.changelogs]
        if changelog:
            raise DeliveryError(rejection_text(*changelog[0], len(changelog), changelog=True))
        err, msg = records[0]
        if self.policy == "fail":
            raise DeliveryError(rejection_text(err, msg, len(records)))
        first = f"first: topic {msg.topic()!r} partition {msg.partition()}: {err.name()}: {err.str()}"
        if self.policy == "skip":
            self.skipped += len(records)
            log.warning("skipped %d output record(s) the broker rejected (on_error='skip'; %s)",
                        len(records), first)
            return
        for err, msg in records:
            added = [
                ("streamlet.error", error_header(f"{err.name()}: {err.str()}")),
                ("streamlet.error.type", err.name().encode()),
                ("streamlet.stage", b"produce"),
                ("streamlet.output.topic", str(msg.topic()).encode()),
                ("streamlet.output.partition", str(msg.partition()).encode()),
            ]
            self._send(msg.key(), msg.value(), [], added, 0)
        self.dead_lettered += len(records)
        log.warning("sent %d output record(s) the broker rejected to dead-letter topic %r (%s)", len(records),
                    self.dead_letter_topic, first)

    def _send(self, key: Any, value: Any, own: list[Any], added: list[Any], timestamp: int) -> None:
        assert self.produce is not None
        key, value, headers = fit(key, value, own, added, self.max_bytes)
        self.produce(self.dead_letter_topic, value, key, -1, timestamp, headers)
