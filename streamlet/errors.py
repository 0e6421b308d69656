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


class RecordError(StreamletError):
    """Processing one input record failed.

    ``stage`` is ``"deserialize"`` or ``"process"``; ``policy`` the error
    policy that was applied (``fail`` / ``skip`` / ``dead_letter``).
    """

    def __init__(self, topic: str, partition: int, offset: int, stage: str,
                 cause: BaseException, policy: str = "fail") -> None:
        self.topic, self.partition, self.offset = topic, partition, offset
        self.stage, self.cause, self.policy = stage, cause, policy
        what = "could not deserialize" if stage == "deserialize" else "failed processing"
        super().__init__(
            f"{what} record at topic {topic!r} partition {partition} offset {offset}: "
            f"{type(cause).__name__}: {cause} (on_error={policy!r}; use on_error='skip' "
            "or 'dead_letter' to keep going past bad records)"
        )


class DeliveryError(StreamletError):
    """The broker did not acknowledge an output record; offsets are not committed."""


class StateError(StreamletError):
    """A state store could not be opened, written or restored."""
