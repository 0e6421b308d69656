"""Typed errors. Each carries the context a user needs and says what to do."""

from __future__ import annotations


class StreamletError(Exception):
    """Base of every error streamlet raises on purpose."""


def client_error_text(exc: BaseException) -> str:
    """The readable part of a librdkafka error (``KafkaError{code=...,str="..."}`` → its ``str``)."""
    err = exc.args[0] if exc.args else None
    text = getattr(err, "str", None)
    return text() if callable(text) else str(exc)


class ConfigError(StreamletError):
    """Wrong configuration, found at start-up; the message says how to fix it."""


class TopologyError(StreamletError):
    """The topology cannot be built or run as written."""


class EmbeddedBrokerError(StreamletError):
    """The embedded (librdkafka mock) broker could not be loaded or used."""


class KafkaBrokerError(StreamletError):
    """A real Apache Kafka broker (``streamlet.testing.kafka``) could not be built, started or used."""


class SerializationError(StreamletError):
    """A key or value could not be serialized or deserialized."""


class SchemaRegistryError(SerializationError):
    """A Schema Registry serde (``serde.avro``) could not get what it needs from the registry.

    ``subject`` / ``schema_id`` name what was asked for (``None`` when not known), ``url`` the
    registry. A record fault under ``on_error`` unless :attr:`record_fault` is False.
    """

    #: whether the record is at fault (``on_error`` applies) or the registry (the worker stops)
    record_fault = True
    #: the On-Error Resolve class of the failure: ``"schema.conflict"``, ``"sr.unreachable"`` or
    #: ``"data.invalid"`` (docs/avro-and-schema-registry.md)
    error_class = "schema.conflict"

    def __init__(self, message: str, *, subject: str | None = None, schema_id: int | None = None,
                 url: str | None = None) -> None:
        self.subject, self.schema_id, self.url = subject, schema_id, url
        super().__init__(message)


class SchemaNotRegisteredError(SchemaRegistryError):
    """A producer's schema is not registered under its subject and ``auto_register`` is off."""


class UnknownSchemaIdError(SchemaRegistryError):
    """A record's Confluent header names a schema id the registry does not have: a bad record."""


class SchemaRegistryUnavailableError(SchemaRegistryError):
    """The registry could not be reached (refused, timed out, 5xx). Not the record's fault: under
    every ``on_error`` policy the worker stops without committing past the record, as under
    ``fail`` — skipping records while the registry is down would lose them."""

    record_fault = False
    error_class = "sr.unreachable"


class SchemaConflictError(SchemaRegistryError):
    """[schema.conflict] The registry's schema for the subject differs from the producer's in a way
    the On-Error Resolve policy does not follow (a type or logical-type change, a missing required
    field, a specific record or a key), or the re-send with the registry's schema failed too.
    ``diff`` lists the differences, ``version`` is the registry's latest version of the subject."""

    def __init__(self, message: str, *, diff: list[str] | None = None, version: int | None = None,
                 resolved_subject: str | None = None, **kwargs: object) -> None:
        self.diff, self.version, self.resolved_subject = list(diff or ()), version, resolved_subject
        super().__init__(message, **kwargs)  # type: ignore[arg-type]


class SchemaCircuitOpenError(SchemaConflictError):
    """[schema.conflict] Sends to a topic x subject are rejected fast: the circuit breaker opened
    after repeated schema conflicts in a short time; it closes after its cool-down."""


class InvalidRecordDataError(SerializationError):
    """[data.invalid] A value does not fit its own schema (a missing required field, a wrong type or
    logical type): no registry lookup can fix it, so the record is blocked at once."""

    error_class = "data.invalid"


class ProduceError(StreamletError):
    """A record the producer or the broker refused (too large, invalid): a record error under
    ``on_error``, like Kafka Streams' production exception handler.

    ``topic`` is the topic it was for, ``size`` its key + value + headers in
    bytes, ``code`` librdkafka's error name (e.g. ``MSG_SIZE_TOO_LARGE``).
    """

    def __init__(self, message: str, topic: str, size: int, code: str) -> None:
        self.topic, self.size, self.code = topic, size, code
        super().__init__(message)


class FieldError(StreamletError):
    """An aggregator reads a field of a record value that is not a dict: a bad record under
    ``on_error`` (a ``None`` value, a tombstone, is not one)."""


class RecordError(StreamletError):
    """Processing one input record failed.

    ``stage`` is ``"deserialize"``, ``"timestamp"`` (:class:`TimestampError`), ``"process"`` or
    ``"produce"`` (an output it made could not be produced: :class:`ProduceError`); ``policy`` the error
    policy that was applied (``fail`` / ``skip`` / ``dead_letter``).
    """

    def __init__(self, topic: str, partition: int, offset: int, stage: str,
                 cause: BaseException, policy: str = "fail") -> None:
        self.topic, self.partition, self.offset = topic, partition, offset
        self.stage, self.cause, self.policy = stage, cause, policy
        what = {"deserialize": "could not deserialize", "produce": "could not produce the output of",
                "timestamp": "no valid timestamp in"}.get(
            stage, "failed processing")
        super().__init__(
            f"{what} record at topic {topic!r} partition {partition} offset {offset}: "
            f"{type(cause).__name__}: {cause} (on_error={policy!r}; use on_error='skip' "
            "or 'dead_letter' to keep going past bad records)"
        )


class TimestampError(StreamletError):
    """A source's timestamp extractor found no valid timestamp in a record (the field is missing, not a
    number, or negative): a bad record under ``on_error``, like Kafka Streams'
    ``LogAndSkipOnInvalidTimestamp`` with ``on_error='skip'``."""


class PunctuationError(StreamletError):
    """A punctuator (a callback scheduled with ``ProcessorContext.schedule``) raised: the worker stops
    without committing past the last commit, as Kafka Streams does."""


class TaskStateError(StreamletError):
    """A task was asked to move between two states that do not follow each other (CREATED →
    RESTORING → RUNNING → SUSPENDED → CLOSED): a bug in streamlet, never in the user's code."""


class DataLossError(StreamletError):
    """Records a broker deleted before streamlet used them (retention, the embedded broker's size
    cap, a truncated changelog), or records on a partition where their key cannot be found; the
    message names topic, partition, offsets and the setting that decides what happens."""


class DeliveryError(StreamletError):
    """The broker did not acknowledge an output record; offsets are not committed."""


class StateError(StreamletError):
    """A state store could not be opened, written or restored.

    A store fault, never a record fault: it does not go through ``on_error``.
    """


class ChangelogTruncatedError(StateError, DataLossError):
    """A store's changelog starts after the offset its restore needs: records were deleted."""


class StoreCorruptedError(StateError):
    """RocksDB found corrupt data in a store (a bad block checksum, a torn file).

    The runtime handles it like Kafka Streams' task-corrupted path: the task
    is closed, the store wiped and restored from its changelog, and the
    records since the last commit are processed again.
    """

    def __init__(self, store: str, path: str, what: str, detail: str) -> None:
        self.store, self.path, self.what, self.detail = store, path, what, detail
        super().__init__(f"state store {store!r} at {path} is corrupted ({what}: {detail}); it is wiped and "
                         "restored from its changelog")


class FencedInstanceIdError(ConfigError):
    """Two workers of one application run with the same static member id (``instance_id``, Kafka's
    ``group.instance.id``): the broker fenced the older one (``FENCED_INSTANCE_ID``), which stops.
    ``instance_id`` is the id they share."""

    def __init__(self, message: str, instance_id: str | None) -> None:
        self.instance_id = instance_id
        super().__init__(message)
