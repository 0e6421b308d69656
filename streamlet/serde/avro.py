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
from fastavro import parse_schema

from streamlet.errors import ConfigError, SchemaRegistryError, SchemaRegistryUnavailableError, SerializationError
from streamlet.serde.avro_codec import read_from, read_plan, write_into
from streamlet.serde.context import ContextSerde, MessageField, SerializationContext
from streamlet.serde.references import Reference, ReferenceResolver, full_name, schema_references
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
from streamlet.serde.schema_policy import SchemaPolicy
from streamlet.serde.schema_resolve import SchemaResolver, follow_latest_at_produce
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
                 normalize_schemas: bool = False, schema_policy: SchemaPolicy | None = None,
                 references: list[Reference] | None = None) -> None:
        if registry is None and not os.environ.get(ENV_URL):
            # no registry yet: `streamlet describe` / `topics` load the script without one; the
            # first record needing the registry stops the worker saying how to set it
            self._client, self.url = None, f"${ENV_URL}"
        else:
            self._client, self.url = registry_client(registry)
        self.schema_json = None if schema is None else _schema_json(schema)
        #: the writer schema's text as registered / looked up (compact JSON of the schema given)
        self.schema_str = None if schema is None else orjson.dumps(self.schema_json).decode()
        #: the types the schema uses from other subjects (parsed on first use, with the registry)
        self.references = schema_references(references)
        self._resolver = ReferenceResolver()
        if self.references and schema is None:
            raise ConfigError("references= name the registered types a schema uses: pass that schema too")
        self._parsed = None if schema is None or self.references else _parse(self.schema_json)
        self.record_name = full_name(self.schema_json) if self.references else (
            None if self._parsed is None else _full_name(self._parsed))
        self.subject_name, needs_name = subject_strategy(subject_name_strategy)
        if needs_name and schema is not None and self.record_name is None:
            raise ConfigError(f"subject name strategy {subject_name_strategy!r} needs a named schema "
                              f"(record, enum or fixed), not {self.schema_json!r}")
        if needs_name and schema is None:
            raise ConfigError(f"subject name strategy {subject_name_strategy!r} needs the schema: pass it")
        self.auto_register, self.normalize = bool(auto_register), bool(normalize_schemas)
        if record_type is not None:
            if self.references:
                raise NotImplementedError("record_type with schema references is not supported yet: pass "
                                          "to_dict / from_dict to convert the records")
            if self.parsed is None:
                raise ConfigError("record_type needs the record's schema: serde.avro(schema, record_type=...)")
            codec_to, codec_from = record_codec(record_type, self.parsed)
            to_dict, from_dict = to_dict or codec_to, from_dict or codec_from
            self.name = f"avro({record_type.__name__})"
        self.record_type = record_type
        self.to_dict, self.from_dict = to_dict, from_dict
        #: (topic, field) -> (wire header, parsed writer schema): the producer's cache
        self._writers: dict[tuple[str, str], tuple[bytes, Any]] = {}
        #: schema id -> (parsed writer schema, parsed reader schema or None, their named types): the
        #: consumer's cache (see streamlet.serde.avro_codec.read_plan)
        self._readers: dict[int, tuple[Any, Any, Any]] = {}
        if schema_policy is not None and not isinstance(schema_policy, SchemaPolicy):
            raise ConfigError(f"schema_policy must be a serde.SchemaPolicy, not {type(schema_policy).__name__}")
        #: the On-Error Resolve policy (DESIGN §7) and its state
        self.policy = schema_policy or SchemaPolicy()
        self.resolver = SchemaResolver(self, self.policy)
        if self.policy.resolve_schema_at_produce:
            self.serialize = self._serialize_at_produce  # type: ignore[method-assign]

    @property
    def parsed(self) -> Any:
        """This serde's schema, parsed (``None``: none given); a schema with references is parsed on
        first use, with the referenced types fetched from the registry."""
        if self._parsed is None and self.references:
            self._parsed = self._resolver.parse(self.schema_json, self.references, self.client, self.url)
        return self._parsed

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
        return self._register(self.subject(topic, field))

    def _register(self, subject: str) -> int:
        from confluent_kafka.schema_registry import Schema

        client = self.client
        schema = Schema(self.schema_str, "AVRO", self.references)
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

    def _lookup_writer(self, subject: str) -> tuple[bytes, Any]:
        """The writer entry for ``subject``: its latest (no schema given), this serde's schema
        registered (``auto_register``) or looked up."""
        client = self.client
        if self.schema_str is None:  # no schema given: the subject's latest, as registered
            try:
                latest = client.get_latest_version(subject)
            except Exception as exc:
                if is_not_found(exc):
                    raise not_registered(subject, self.url, exc) from exc
                raise registry_error(exc, f"getting the latest schema of subject {subject!r}", self.url,
                                     subject=subject) from exc
            schema_id = int(latest.schema_id)
            parsed = self.parse_registered(latest.schema.schema_str, latest.schema.references)
        elif self.auto_register:
            schema_id, parsed = self._register(subject), self.parsed
        else:
            from confluent_kafka.schema_registry import Schema

            try:
                found = client.lookup_schema(subject, Schema(self.schema_str, "AVRO", self.references),
                                             normalize_schemas=self.normalize)
            except Exception as exc:
                if is_not_found(exc):
                    raise not_registered(subject, self.url, exc) from exc
                raise registry_error(exc, f"looking the schema up under subject {subject!r}", self.url,
                                     subject=subject) from exc
            schema_id, parsed = int(found.schema_id), self.parsed
        self.resolver.written[schema_id] = parsed
        return self.header(schema_id), parsed

    def _writer_for(self, ctx: SerializationContext) -> tuple[bytes, Any]:
        """Look the schema id up (or register it), once per topic and field; a failure goes through
        the On-Error Resolve policy (:mod:`streamlet.serde.schema_resolve`)."""
        field = MessageField(ctx.field).value
        subject = self.subject(ctx.topic, field)
        self.resolver.check_open(ctx.topic, subject)
        try:
            entry = self._lookup_writer(subject)
        except SchemaRegistryError as exc:
            entry = self.resolver.lookup_failed(ctx.topic, field, subject, exc,
                                                lambda: self._lookup_writer(subject))
        self._writers[(ctx.topic, field)] = entry
        return entry

    def serialize(self, value: Any, ctx: SerializationContext) -> bytes:
        try:
            header, parsed = self._writers[(ctx.topic, ctx.field)]
        except KeyError:
            return self._serialize_first(value, ctx)
        out = bytearray(header)
        try:
            write_into(out, parsed, value if self.to_dict is None else self.to_dict(value))
        except Exception as exc:
            raise self.resolver.write_failed(ctx.topic, MessageField(ctx.field).value, header, exc) from exc
        return bytes(out)

    def _serialize_first(self, value: Any, ctx: SerializationContext) -> bytes:
        """The first record of a topic and field: look the writer up (and cache it), then write — a
        re-send when the policy resolved a conflict on the way."""
        self._writer_for(ctx)
        try:
            return AvroSerde.serialize(self, value, ctx)
        finally:
            self.resolver.resend = None

    def _serialize_at_produce(self, value: Any, ctx: SerializationContext) -> bytes:
        """``resolve_schema_at_produce``: follow the subject's latest (as the registry client caches
        it) before every send."""
        if self.policy.applies_to(ctx.topic):
            follow_latest_at_produce(self, ctx)
        return AvroSerde.serialize(self, value, ctx)

    # -- the On-Error Resolve policy's access to the writer cache ------------------------------------
    @staticmethod
    def header(schema_id: int) -> bytes:
        """The 5-byte Confluent wire-format header of ``schema_id``."""
        return _HEADER.pack(MAGIC, schema_id)

    def parse_registered(self, schema_str: str, references: Any = None) -> Any:
        """A registered schema's text parsed, with the types of its ``references`` (each fetched once)."""
        refs = schema_references(references)
        if not refs:
            return _parse(_schema_json(schema_str))
        return self._resolver.parse(_schema_json(schema_str), refs, self.client, self.url)

    def cached_writer(self, topic: str, field: str) -> tuple[bytes, Any] | None:
        return self._writers.get((topic, field))

    def set_writer(self, topic: str, field: str, entry: tuple[bytes, Any]) -> None:
        self._writers[(topic, field)] = entry

    def forget_writer(self, topic: str) -> None:
        for key in [k for k in self._writers if k[0] == topic]:
            del self._writers[key]

    def writer_schema(self, schema_id: int) -> Any:
        """The parsed schema of ``schema_id`` (fetched once)."""
        return (self._readers.get(schema_id) or self._reader_for(schema_id))[0]

    def decode_with(self, data: bytes, writer: Any) -> Any:
        """A generic value from Confluent wire-format ``data`` written with ``writer``."""
        buf = io.BytesIO(data)
        buf.seek(5)
        return read_from(buf, *read_plan(writer, None))

    def encode_with(self, value: Any, entry: tuple[bytes, Any]) -> bytes:
        out = bytearray(entry[0])
        write_into(out, entry[1], value)
        return bytes(out)

    # -- consuming ------------------------------------------------------------------------------
    def _reader_for(self, schema_id: int) -> tuple[Any, Any, Any]:
        """Fetch the writer schema of ``schema_id`` once; the reader schema resolves it."""
        client = self.client
        try:
            found = client.get_schema(schema_id)
        except Exception as exc:
            if is_not_found(exc):
                raise unknown_id(schema_id, self.url, exc) from exc
            raise registry_error(exc, f"getting schema id {schema_id}", self.url, schema_id=schema_id) from exc
        if (found.schema_type or "AVRO") != "AVRO":
            raise SchemaRegistryError(f"schema id {schema_id} is a {found.schema_type} schema, not Avro",
                                      schema_id=schema_id, url=self.url)
        writer = self.parse_registered(found.schema_str, getattr(found, "references", None))
        own = self.parsed
        reader = None if own is None or own == writer else own
        self._readers[schema_id] = entry = read_plan(writer, reader)
        return entry

    def deserialize(self, data: bytes, ctx: SerializationContext) -> Any:
        if len(data) < 5 or data[0] != MAGIC:
            raise SerializationError(
                f"{self.name}: the {MessageField(ctx.field).value} of topic {ctx.topic!r} is not in the "
                f"Confluent wire format (it starts {bytes(data[:5])!r}; expected a magic byte 0 and a "
                "4-byte schema id)")
        schema_id = int.from_bytes(data[1:5], "big")
        try:
            writer, reader, named = self._readers[schema_id]
        except KeyError:
            writer, reader, named = self._reader_for(schema_id)
        buf = io.BytesIO(data)
        buf.seek(5)
        try:
            value = read_from(buf, writer, reader, named)
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
         normalize_schemas: bool = False, schema_policy: SchemaPolicy | None = None,
         references: list[Reference] | None = None) -> AvroSerde:
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

    ``schema_policy``: what a producer does when a send fails for its schema —
    the On-Error Resolve policy (:class:`~streamlet.serde.SchemaPolicy`; by
    default: classify, follow a harmless change of a generic value once,
    block the rest, a circuit breaker per topic x subject).

    ``references``: the registered types ``schema`` uses by name, as
    confluent-kafka ``SchemaReference``\\ s or ``(name, subject, version)``
    tuples; they are sent with the schema when it is looked up or registered,
    and fetched from the registry once to parse it. Records written with a
    schema that has references are read whatever this argument says.
    """
    return AvroSerde(schema, registry=registry, record_type=record_type, to_dict=to_dict, from_dict=from_dict,
                     subject_name_strategy=subject_name_strategy, auto_register=auto_register,
                     normalize_schemas=normalize_schemas, schema_policy=schema_policy, references=references)
