"""Avro with a Schema Registry, in the Confluent wire format: a magic byte 0, the schema id (4 bytes,
big-endian), then the Avro binary encoding (fastavro's schemaless writer and reader).

    >>> import streamlet as sl
    >>> ORDER = {"type": "record", "name": "Order", "namespace": "shop",
    ...          "fields": [{"name": "id", "type": "string"}, {"name": "amount", "type": "double"}]}
    >>> serde = sl.serde.avro(ORDER, registry="mock://doc", auto_register=True)
    >>> ctx = sl.serde.SerializationContext("orders", sl.serde.VALUE)
    >>> data = serde.serialize({"id": "o-1", "amount": 9.5}, ctx)
    >>> data[:1], serde.deserialize(data, ctx)
    (b'\\x00', {'id': 'o-1', 'amount': 9.5})

Producing: the subject (see :mod:`streamlet.serde.registry`) and the schema id
are looked up once per topic and key/value, then cached: the normal path never
asks the registry again. Consuming: the writer schema is fetched by id once
and cached; the reader schema (the serde's ``schema``) resolves it (Avro schema
evolution). Errors are :class:`~streamlet.errors.SerializationError`\\ s, so a
bad record goes through ``on_error`` with its topic, partition and offset; an
unreachable registry stops the worker under every policy.
"""

from __future__ import annotations

import io
import os
import struct
from typing import Any, Callable

import orjson
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from streamlet.errors import ConfigError, SchemaRegistryError, SchemaRegistryUnavailableError, SerializationError
from streamlet.serde.context import ContextSerde, MessageField, SerializationContext
from streamlet.serde.registry import (
    ENV_URL,
    SubjectNameStrategy,
    is_not_found,
    not_registered,
    registry_client,
    registry_error,
    subject_strategy,
    unknown_id,
)
from streamlet.serde.specific import record_codec

MAGIC = 0
_HEADER = struct.Struct(">bI")
_NAMED = ("record", "enum", "fixed")


def _schema_json(schema: Any) -> Any:
    """The JSON form of a schema given as a JSON string, a type name or a dict / list."""
    if isinstance(schema, (bytes, str)):
        text = schema.decode() if isinstance(schema, bytes) else schema
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            return text  # a bare type name: string, long...
    if isinstance(schema, (dict, list)):
        return schema
    raise ConfigError(f"an Avro schema is a JSON string, a dict or a list, not {type(schema).__name__}")


def _parse(schema: Any) -> Any:
    try:
        return parse_schema(schema)
    except Exception as exc:
        raise ConfigError(f"invalid Avro schema: {type(exc).__name__}: {exc}") from exc


def _full_name(parsed: Any) -> str | None:
    return parsed.get("name") if isinstance(parsed, dict) and parsed.get("type") in _NAMED else None


class AvroSerde(ContextSerde):
    """Avro in the Confluent wire format through a Schema Registry; made by :func:`avro`."""

    name = "avro"

    def __init__(self, schema: Any = None, *, registry: Any = None, record_type: type | None = None,
                 to_dict: Callable[[Any], Any] | None = None, from_dict: Callable[[Any], Any] | None = None,
                 subject_name_strategy: str | SubjectNameStrategy = "topic", auto_register: bool = False,
                 normalize_schemas: bool = False) -> None:
        if registry is None and not os.environ.get(ENV_URL):
            # no registry yet: `streamlet describe` / `topics` load the script without one; the
            # first record needing the registry stops the worker saying how to set it
            self._client, self.url = None, f"${ENV_URL}"
        else:
            self._client, self.url = registry_client(registry)
        self.schema_json = None if schema is None else _schema_json(schema)
        #: the writer schema's text as registered / looked up (compact JSON of the schema given)
        self.schema_str = None if schema is None else orjson.dumps(self.schema_json).decode()
        self.parsed = None if schema is None else _parse(self.schema_json)
        self.record_name = None if self.parsed is None else _full_name(self.parsed)
        self.subject_name, needs_name = subject_strategy(subject_name_strategy)
        if needs_name and schema is not None and self.record_name is None:
            raise ConfigError(f"subject name strategy {subject_name_strategy!r} needs a named schema "
                              f"(record, enum or fixed), not {self.schema_json!r}")
        if needs_name and schema is None:
            raise ConfigError(f"subject name strategy {subject_name_strategy!r} needs the schema: pass it")
        self.auto_register, self.normalize = bool(auto_register), bool(normalize_schemas)
        if record_type is not None:
            if self.parsed is None:
                raise ConfigError("record_type needs the record's schema: serde.avro(schema, record_type=...)")
            codec_to, codec_from = record_codec(record_type, self.parsed)
            to_dict, from_dict = to_dict or codec_to, from_dict or codec_from
            self.name = f"avro({record_type.__name__})"
        self.record_type = record_type
        self.to_dict, self.from_dict = to_dict, from_dict
        #: (topic, field) -> (wire header, parsed writer schema): the producer's cache
        self._writers: dict[tuple[str, str], tuple[bytes, Any]] = {}
        #: schema id -> (parsed writer schema, parsed reader schema or None): the consumer's cache
        self._readers: dict[int, tuple[Any, Any]] = {}

    @property
    def client(self) -> Any:
        """The registry client (resolved from ``$STREAMLET_SCHEMA_REGISTRY_URL`` on first use when the
        serde was made without a registry)."""
        if self._client is None:
            if not os.environ.get(ENV_URL):
                raise SchemaRegistryUnavailableError(
                    f"serde.avro() has no schema registry: pass registry='http://host:port' to it, or set "
                    f"{ENV_URL} (streamlet run --schema-registry URL)")
            self._client, self.url = registry_client(None)
        return self._client

    # -- producing ------------------------------------------------------------------------------
    def subject(self, topic: str, field: MessageField | str = MessageField.VALUE) -> str:
        """The subject this serde uses for ``field`` (key or value) of ``topic``."""
        ctx = SerializationContext(topic, MessageField(field))
        subject = self.subject_name(ctx, self.record_name)
        if not subject:
            raise ConfigError(f"the subject name strategy gave no subject for {ctx.field.value} of "
                              f"topic {topic!r}")
        return str(subject)

    def register(self, topic: str, field: MessageField | str = MessageField.VALUE) -> int:
        """Register this serde's schema under its subject for ``field`` of ``topic``; the schema id."""
        if self.schema_str is None:
            raise ConfigError("this serde has no schema to register: pass one to serde.avro()")
        from confluent_kafka.schema_registry import Schema

        subject = self.subject(topic, field)
        client = self.client
        schema = Schema(self.schema_str, "AVRO")
        try:
            return int(client.register_schema(subject, schema, normalize_schemas=self.normalize))
        except Exception as exc:
            if getattr(exc, "http_status_code", None) == 409:
                # Apicurio refuses the second of two concurrent first registrations of a subject
                # ("artifact already exists"): the schema is registered then, so look it up
                try:
                    found = client.lookup_schema(subject, schema, normalize_schemas=self.normalize)
                    return int(found.schema_id)
                except Exception:
                    pass  # not registered: the 409 is a real refusal (incompatible)
            raise registry_error(exc, f"registering the schema under subject {subject!r}", self.url,
                                 subject=subject) from exc

    def _writer_for(self, ctx: SerializationContext) -> tuple[bytes, Any]:
        """Look the schema id up (or register it), once per topic and field."""
        field = MessageField(ctx.field)
        subject = self.subject(ctx.topic, field)
        client = self.client
        if self.schema_str is None:  # no schema given: the subject's latest, as registered
            try:
                latest = client.get_latest_version(subject)
            except Exception as exc:
                if is_not_found(exc):
                    raise not_registered(subject, self.url, exc) from exc
                raise registry_error(exc, f"getting the latest schema of subject {subject!r}", self.url,
                                     subject=subject) from exc
            schema_id, parsed = int(latest.schema_id), _parse(_schema_json(latest.schema.schema_str))
        elif self.auto_register:
            schema_id, parsed = self.register(ctx.topic, field), self.parsed
        else:
            from confluent_kafka.schema_registry import Schema

            try:
                found = client.lookup_schema(subject, Schema(self.schema_str, "AVRO"),
                                                  normalize_schemas=self.normalize)
            except Exception as exc:
                if is_not_found(exc):
                    raise not_registered(subject, self.url, exc) from exc
                raise registry_error(exc, f"looking the schema up under subject {subject!r}", self.url,
                                     subject=subject) from exc
            schema_id, parsed = int(found.schema_id), self.parsed
        entry = (_HEADER.pack(MAGIC, schema_id), parsed)
        self._writers[(ctx.topic, field.value)] = entry
        return entry

    def serialize(self, value: Any, ctx: SerializationContext) -> bytes:
        try:
            header, parsed = self._writers[(ctx.topic, ctx.field)]
        except KeyError:
            header, parsed = self._writer_for(ctx)
        out = io.BytesIO()
        out.write(header)
        try:
            schemaless_writer(out, parsed, value if self.to_dict is None else self.to_dict(value))
        except Exception as exc:
            raise SerializationError(
                f"{self.name} could not serialize the {MessageField(ctx.field).value} for topic "
                f"{ctx.topic!r} with schema id {_HEADER.unpack(header)[1]}: {type(exc).__name__}: {exc}"
            ) from exc
        return out.getvalue()

    # -- consuming ------------------------------------------------------------------------------
    def _reader_for(self, schema_id: int) -> tuple[Any, Any]:
        """Fetch the writer schema of ``schema_id`` once; the reader schema resolves it."""
        client = self.client
        try:
            found = client.get_schema(schema_id)
        except Exception as exc:
            if is_not_found(exc):
                raise unknown_id(schema_id, self.url, exc) from exc
            raise registry_error(exc, f"getting schema id {schema_id}", self.url, schema_id=schema_id) from exc
        if getattr(found, "references", None):
            raise NotImplementedError(f"schema id {schema_id} has schema references: serde.avro() does not "
                                      "support references yet")
        if (found.schema_type or "AVRO") != "AVRO":
            raise SchemaRegistryError(f"schema id {schema_id} is a {found.schema_type} schema, not Avro",
                                      schema_id=schema_id, url=self.url)
        writer = _parse(_schema_json(found.schema_str))
        reader = None if self.parsed is None or self.parsed == writer else self.parsed
        self._readers[schema_id] = entry = (writer, reader)
        return entry

    def deserialize(self, data: bytes, ctx: SerializationContext) -> Any:
        if len(data) < 5 or data[0] != MAGIC:
            raise SerializationError(
                f"{self.name}: the {MessageField(ctx.field).value} of topic {ctx.topic!r} is not in the "
                f"Confluent wire format (it starts {bytes(data[:5])!r}; expected a magic byte 0 and a "
                "4-byte schema id)")
        schema_id = int.from_bytes(data[1:5], "big")
        try:
            writer, reader = self._readers[schema_id]
        except KeyError:
            writer, reader = self._reader_for(schema_id)
        buf = io.BytesIO(data)
        buf.seek(5)
        try:
            value = schemaless_reader(buf, writer, reader)
            if buf.tell() != len(data):
                raise ValueError(f"{len(data) - buf.tell()} bytes left after the record")
        except Exception as exc:
            raise SerializationError(
                f"{self.name} could not deserialize the {MessageField(ctx.field).value} of topic "
                f"{ctx.topic!r} with schema id {schema_id}: {type(exc).__name__}: {exc}") from exc
        return value if self.from_dict is None else self.from_dict(value)

    def __repr__(self) -> str:
        what = self.record_name or ("latest" if self.schema_json is None else self.schema_json)
        return f"serde.avro({what!r}, registry={self.url!r})"


def avro(schema: Any = None, *, registry: Any = None, record_type: type | None = None,
         subject_name_strategy: str | SubjectNameStrategy = "topic", auto_register: bool = False,
         to_dict: Callable[[Any], Any] | None = None, from_dict: Callable[[Any], Any] | None = None,
         normalize_schemas: bool = False) -> AvroSerde:
    """Avro through a Schema Registry, in the Confluent wire format, for keys or values.

    ``schema``: the Avro schema (JSON text, a dict, or a type name such as
    ``"string"``) written when producing and used as the reader schema when
    consuming; ``None`` produces with the subject's latest registered schema
    and reads records as they were written. ``registry``: ``"mock://NAME"``
    (in-process, shared by the serdes of this process with that URL),
    ``"http://host:port"``, a dict of ``SchemaRegistryClient`` settings or a
    client; default ``$STREAMLET_SCHEMA_REGISTRY_URL``.

    Values are generic records (dicts) unless ``record_type`` binds the record
    schema to a dataclass (specific records: instances in, instances out;
    checked against the schema now), or ``to_dict`` / ``from_dict`` convert.

    ``subject_name_strategy``: ``"topic"`` (``<topic>-key`` / ``<topic>-value``,
    default), ``"record"`` (the full record name), ``"topic_record"``
    (``<topic>-<full name>``) or ``fn(ctx, record_name) -> subject``
    (confluent-kafka's strategies fit), called once per topic and key/value.
    ``auto_register=False``: the schema must already be registered under the
    subject (:class:`~streamlet.errors.SchemaNotRegisteredError` otherwise);
    ``True`` registers it on first use.
    """
    return AvroSerde(schema, registry=registry, record_type=record_type, to_dict=to_dict, from_dict=from_dict,
                     subject_name_strategy=subject_name_strategy, auto_register=auto_register,
                     normalize_schemas=normalize_schemas)
