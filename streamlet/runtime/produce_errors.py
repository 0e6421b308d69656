"""Produce errors: which are one record's fault, and messages that say what to change
(docs/architecture.md, "Errors").

*Synchronous*: ``produce()`` raises ``KafkaException`` for a record it will not
queue — above all ``MSG_SIZE_TOO_LARGE``: key + value + headers over the
producer's ``message.max.bytes``. :func:`produce_failure` turns it into a
:class:`~streamlet.errors.ProduceError` raised in the chain that made the
record, so the error policy handles it with the input record's topic,
partition and offset, like any processing error.

*Asynchronous*: the broker rejects a batch for its content
(:data:`RECORD_ERRORS`); the delivery report of each of its records reaches
the committer, which hands them to ``ErrorPolicy.rejected`` (Kafka Streams'
production exception handler). Any other delivery error (a timeout, no
authorization, an unknown topic) stops the worker and commits nothing past it.

A changelog record is never skipped: the store would silently differ from its
changelog. Its produce errors always stop the worker (:func:`changelog_failure`).
"""

from __future__ import annotations

from typing import Any, Callable, NoReturn

from confluent_kafka import KafkaError, KafkaException

from streamlet.errors import DeliveryError, ProduceError, StreamletError

#: librdkafka's default ``message.max.bytes``
DEFAULT_MAX_BYTES = 1_000_000

#: delivery-report errors that are the records' fault: the broker refused their content and
#: would refuse it again. librdkafka reports the error for every record of the rejected batch.
RECORD_ERRORS = frozenset({
    KafkaError.MSG_SIZE_TOO_LARGE,     # 10 MESSAGE_TOO_LARGE: the batch is over the topic's max.message.bytes
    KafkaError.INVALID_RECORD,         # 87 the broker's validation failed (e.g. no key on a compacted topic)
    KafkaError.INVALID_TIMESTAMP,      # 32 outside the topic's message.timestamp.(before|after).max.ms
    KafkaError.RECORD_LIST_TOO_LARGE,  # 18 the batch is larger than the topic's segment.bytes
})

#: errors ``produce()`` raises for one record: too large for ``message.max.bytes``, or a
#: partition the topic does not have (a partitioner's answer)
LOCAL_RECORD_ERRORS = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError._UNKNOWN_PARTITION})

_ADVICE = {
    KafkaError.MSG_SIZE_TOO_LARGE: "the broker found their batch over the topic's max.message.bytes (it "
                                   "rejects whole batches): raise max.message.bytes of the topic on the "
                                   "broker (kafka-configs --alter --add-config max.message.bytes=...) or "
                                   "make the records smaller",
    KafkaError.INVALID_RECORD: "the broker's validation of the record failed (for instance a record without "
                               "a key on a compacted topic)",
    KafkaError.INVALID_TIMESTAMP: "the record's timestamp is outside the topic's "
                                  "message.timestamp.before.max.ms / message.timestamp.after.max.ms",
    KafkaError.RECORD_LIST_TOO_LARGE: "the batch is larger than the topic's segment.bytes: raise it, or "
                                      "lower batch.size in App(config=...)",
}

Failure = Callable[[KafkaException, str, Any, Any, Any], NoReturn]


def record_size(value: Any, key: Any, headers: Any) -> int:
    """Bytes of key + value + header names and values."""
    size = len(value or b"") + len(key or b"")
    if isinstance(headers, dict):
        headers = headers.items()
    for name, data in headers or ():
        size += len(name) + len(data or b"")
    return size


def size_advice(topic: str, limit: int, changelog: bool = False) -> str:
    """What to change for records too large for ``message.max.bytes``."""
    if changelog:
        return (f"raise message.max.bytes in App(config={{'message.max.bytes': ...}}) (now {limit:,}) and "
                f"max.message.bytes of changelog topic {topic!r} on the broker, or keep the aggregate "
                "smaller (e.g. collect_list with a bound)")
    return (f"raise message.max.bytes in App(config={{'message.max.bytes': ...}}) (now {limit:,}) and "
            f"max.message.bytes of topic {topic!r} on the broker, or make the record smaller")


def too_large(topic: str, size: int, limit: int) -> ProduceError:
    return ProduceError(f"a {size:,}-byte record for topic {topic!r} is too large for the producer's "
                        f"message.max.bytes: {size_advice(topic, limit)}",
                        topic, size, "MSG_SIZE_TOO_LARGE")


def _error(exc: BaseException) -> tuple[int | None, str, str]:
    err = exc.args[0] if exc.args else None
    if isinstance(err, KafkaError):
        return err.code(), err.name(), err.str()
    return None, type(exc).__name__, str(exc)


def produce_failure(limit: int) -> Failure:
    """``failed(exc, topic, value, key, headers)`` for a ``KafkaException`` of ``produce()``: raises
    :class:`ProduceError` (a record error) or, for a fault of the producer, :class:`DeliveryError`."""

    def failed(exc: KafkaException, topic: str, value: Any, key: Any, headers: Any) -> NoReturn:
        code, name, text = _error(exc)
        size = record_size(value, key, headers)
        if code == KafkaError.MSG_SIZE_TOO_LARGE:
            raise too_large(topic, size, limit) from exc
        if code in LOCAL_RECORD_ERRORS:
            raise ProduceError(f"the producer refused a {size:,}-byte record for topic {topic!r}: {name}: "
                               f"{text}", topic, size, name) from exc
        raise DeliveryError(f"the producer refused a record for topic {topic!r}: {name}: {text}; input "
                            "offsets after the last commit were not committed") from exc

    return failed


def changelog_failure(limit: int, on_fatal: Callable[[StreamletError], None]) -> Failure:
    """``failed(...)`` for changelog records: always a :class:`DeliveryError` (passed to ``on_fatal``
    first, so that no later commit covers the lost record)."""

    def failed(exc: KafkaException, topic: str, value: Any, key: Any, headers: Any) -> NoReturn:
        code, name, text = _error(exc)
        size = record_size(value, key, headers)
        advice = size_advice(topic, limit, changelog=True) if code == KafkaError.MSG_SIZE_TOO_LARGE else text
        error = DeliveryError(f"a {size:,}-byte changelog record for {topic!r} cannot be produced ({name}); "
                              "a changelog record is never skipped (the store would differ from its "
                              f"changelog): {advice}. Nothing after the last commit was committed")
        on_fatal(error)
        raise error from exc

    return failed


def rejection_text(err: KafkaError, msg: Any, count: int, changelog: bool = False) -> str:
    """The error for records the broker rejected; ``msg`` is the first of ``count``."""
    topic, partition = msg.topic(), msg.partition()
    size = record_size(msg.value(), msg.key(), None)
    what = "changelog record" if changelog else "output record"
    head = (f"{count} {what}(s) were not delivered: the broker rejected them "
            f"(first: {size:,} bytes for topic {topic!r} partition {partition}: {err.name()}: {err.str()})")
    advice = _ADVICE.get(err.code(), err.str())
    if changelog:
        return (f"{head}; a changelog record is never skipped (the store would differ from its changelog): "
                f"{advice} (changelog topic {topic!r}). Input offsets were not committed")
    return (f"{head}; {advice}, or set on_error='skip' or 'dead_letter' to go on without them. Input "
            "offsets were not committed, so a restart processes those records again")
