"""Timestamp extractors: where a source's records get their timestamp (Kafka Streams'
``TimestampExtractor``).

By default a record's timestamp is the one Kafka stores with it. A source
may take it from a field of the value (``app.stream("t", timestamp="ts")``)
or from a function ``(key, value, record_timestamp) -> ms``
(``timestamp_extractor=``). The extracted timestamp is the record's
timestamp from then on: outputs carry it, aggregators and ``process()`` see
it, stream time follows it. A missing, non-numeric or negative timestamp
raises :class:`~streamlet.errors.TimestampError`, a bad record under
``on_error`` (``skip`` is Kafka Streams' ``LogAndSkipOnInvalidTimestamp``).
A tombstone (``None`` value) has no field to read: it keeps its record
timestamp with a field extractor.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from streamlet.errors import TimestampError
from streamlet.record import StampedMessage
from streamlet.topology.kinds import KINDS


class TimestampExtractor:
    """``extract(key, value, record_timestamp) -> ms`` of one source; ``reads_key``: the key is used."""

    def __init__(self, field: str | None = None, fn: Callable[[Any, Any, int], Any] | None = None) -> None:
        self.field, self.fn = field, fn
        self.reads_key = fn is not None

    @staticmethod
    def of(timestamp: Any, timestamp_extractor: Any) -> "TimestampExtractor | None":
        """The extractor of ``app.stream(timestamp=..., timestamp_extractor=...)`` (None: the default)."""
        if timestamp is not None and timestamp_extractor is not None:
            raise TypeError("give timestamp= (a field of the value) or timestamp_extractor= (a function), "
                            "not both")
        if timestamp is not None:
            if not isinstance(timestamp, str) or not timestamp:
                raise TypeError(f"timestamp= names a field of the value, got {timestamp!r}; for a function "
                                "use timestamp_extractor=")
            return TimestampExtractor(field=timestamp)
        if timestamp_extractor is not None:
            if isinstance(timestamp_extractor, str):
                return TimestampExtractor(field=timestamp_extractor)
            if not callable(timestamp_extractor):
                raise TypeError("timestamp_extractor= takes a function (key, value, record_timestamp) -> ms "
                                "or a field name")
            return TimestampExtractor(fn=timestamp_extractor)
        return None

    def __call__(self, key: Any, value: Any, record_timestamp: int) -> int:
        if self.fn is not None:
            try:
                ts = self.fn(key, value, record_timestamp)
            except Exception as exc:
                raise TimestampError(f"timestamp_extractor {_name(self.fn)} raised {type(exc).__name__}: "
                                     f"{exc}") from exc
            return _valid(ts, f"timestamp_extractor {_name(self.fn)} returned")
        if value is None:
            return record_timestamp
        if not isinstance(value, dict):
            raise TimestampError(f"the value is a {type(value).__name__}, not a dict with timestamp field "
                                 f"{self.field!r}")
        if self.field not in value:
            raise TimestampError(f"timestamp field {self.field!r} is missing from the value")
        return _valid(value[self.field], f"timestamp field {self.field!r} is")

    def __repr__(self) -> str:
        return f"field {self.field!r}" if self.fn is None else _name(self.fn)


def _valid(ts: Any, what: str) -> int:
    if isinstance(ts, int) and not isinstance(ts, bool):
        if ts >= 0:
            return ts
    elif isinstance(ts, float) and math.isfinite(ts):
        if ts >= 0:
            return int(ts)
    else:
        raise TimestampError(f"{what} {ts!r} ({type(ts).__name__}), not a number of milliseconds since the "
                             "epoch; fix the producer or the extractor (on_error decides what happens to the "
                             "record)")
    raise TimestampError(f"{what} {ts!r}: a timestamp cannot be negative; fix the producer or the extractor "
                         "(on_error decides what happens to the record)")


def _name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__


def with_timestamp(m: Any, ts: int) -> StampedMessage:
    """Input message ``m`` as the chain sees it with timestamp ``ts`` (``parent`` is ``m``)."""
    return StampedMessage(m, ts)


def reads_stream_time(node: Any) -> bool:
    """Whether ``node`` reads its task's stream time (:attr:`NodeKind.reads_stream_time`, or a
    ``process`` step given a Processor class, which can schedule stream-time punctuators)."""
    return KINDS[node.kind].reads_stream_time or (node.kind == "process" and isinstance(node.fn, type))


def tracks_stream_time(comp: Any, source: str) -> bool:
    """Whether the chains of ``comp``'s task (the sub-topology of node ``source``) keep
    ``ctx.stream_time``: only those with a node that reads it pay for it."""
    topology = comp.topology
    group = next((g for g in topology.subtopologies() if source in g), [])
    return any(reads_stream_time(topology.nodes[n]) for n in group)
