"""What happens to a record that cannot be processed: fail, skip or dead-letter (DESIGN §5)."""

from __future__ import annotations

import logging
import traceback
from typing import Any

from streamlet.errors import RecordError
from streamlet.topology.context import Produce

log = logging.getLogger("streamlet.errors")

#: Headers of a dead-letter record (values are UTF-8 bytes).
DLQ_HEADERS = ("streamlet.error", "streamlet.error.type", "streamlet.stage",
               "streamlet.topic", "streamlet.partition", "streamlet.offset")


class ErrorPolicy:
    """Applies ``on_error`` to one failed record; counts what it skipped or dead-lettered.

    ``fail`` raises :class:`RecordError` (the runner stops without committing
    past the record); ``skip`` logs and counts; ``dead_letter`` sends the raw
    key and value with the error and its origin in headers to the
    dead-letter topic, then goes on.
    """

    def __init__(self, policy: str, dead_letter_topic: str, produce: Produce | None = None) -> None:
        self.policy = policy
        self.dead_letter_topic = dead_letter_topic
        self.produce = produce
        self.skipped = 0
        self.dead_lettered = 0

    def handle(self, msg: Any, exc: BaseException, stage: str) -> None:
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        error = RecordError(topic, partition, offset, stage, exc, self.policy)
        if self.policy == "fail":
            raise error from exc
        if self.policy == "skip":
            self.skipped += 1
            log.warning("skipped record (on_error='skip'): %s", error)
            return
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        headers = list(msg.headers() or [])
        headers += [
            ("streamlet.error", detail.encode("utf-8", "replace")),
            ("streamlet.error.type", type(exc).__name__.encode()),
            ("streamlet.stage", stage.encode()),
            ("streamlet.topic", str(topic).encode()),
            ("streamlet.partition", str(partition).encode()),
            ("streamlet.offset", str(offset).encode()),
        ]
        assert self.produce is not None
        ts = msg.timestamp()[1]
        self.produce(self.dead_letter_topic, msg.value(), msg.key(), -1, ts if ts > 0 else 0, headers)
        self.dead_lettered += 1
        log.warning("sent record to dead-letter topic %r: %s", self.dead_letter_topic, error)
