"""Serdes: ``serialize(value) -> bytes``, ``deserialize(bytes) -> value``; ``None`` passes through.

    >>> import streamlet as sl
    >>> sl.serde.json().serialize({"a": 1})
    b'{"a":1}'

A serde that needs the topic, the headers and whether it handles a key or a
value (a Schema Registry serde) subclasses :class:`ContextSerde`, or wraps
confluent-kafka's serializers with :func:`from_confluent`. :func:`avro` is Avro through a Schema
Registry (docs/avro-and-schema-registry.md).
"""

from streamlet.serde.base import FunctionSerde, Serde, same_bytes
from streamlet.serde.context import (
    KEY,
    VALUE,
    ContextSerde,
    MessageField,
    SerializationContext,
    from_confluent,
    needs_context,
)
from streamlet.serde.builtin import bytes_, int32, integer, json, long, msgpack, string
from streamlet.serde.windowed import session_windowed, windowed
from streamlet.serde.avro import AvroSerde, avro
from streamlet.serde.schema_policy import OBSERVE_ONLY, Backoff, CircuitBreaker, SchemaPolicy

bytes = bytes_  # noqa: A001 - the documented name is serde.bytes()

__all__ = ["Serde", "FunctionSerde", "ContextSerde", "SerializationContext", "MessageField", "KEY", "VALUE",
           "from_confluent", "needs_context", "same_bytes",
           "string", "bytes", "bytes_", "integer", "long", "int32", "json", "msgpack",
           "windowed", "session_windowed", "avro", "AvroSerde",
           "SchemaPolicy", "CircuitBreaker", "Backoff", "OBSERVE_ONLY"]
