"""Serdes that are told where their bytes go: topic, headers, key or value.

Most serdes do not care (string, JSON...) and are called as
``serialize(value)`` / ``deserialize(data)``, with nothing built per record.
A serde whose bytes depend on the topic — a Schema Registry serde registers
its schema under the subject ``<topic>-key`` / ``<topic>-value`` — says so
with ``needs_context = True`` (a class attribute, as :class:`ContextSerde`
has) and is then called as ``serialize(value, ctx)`` / ``deserialize(data,
ctx)`` with confluent-kafka's own
:class:`~confluent_kafka.serialization.SerializationContext`, so that
confluent-kafka's serializers plug in unchanged (:func:`from_confluent`).

Where a record is (de)serialized, the context is:

* sources: the record's topic and headers; sinks (repartition topics
  included): the output topic and the headers the record is written with —
  the same list, so a header a serializer adds is written too (``None`` when
  the record has none);
* state stores: the store's changelog topic (the input topic of a source
  table) and no headers, as Kafka Streams does;
* the TestDriver: as sources on ``send``, as sinks on ``read``.

``None`` (a tombstone) passes through: a context serde is never called with it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, Optional

from confluent_kafka.serialization import MessageField, SerializationContext

from streamlet.errors import SerializationError

KEY = MessageField.KEY
VALUE = MessageField.VALUE

Headers = Optional[list[tuple[str, bytes]]]
#: ``fn(value, headers) -> bytes | None``
Serializer = Callable[[Any, Headers], Optional[bytes]]
#: ``fn(data, headers) -> value``
Deserializer = Callable[[Optional[bytes], Headers], Any]


class ContextSerde(ABC):
    """Base of serdes called with a :class:`SerializationContext` (topic, key or value, headers).

        >>> class Tagged(ContextSerde):
        ...     name = "tagged"
        ...     def serialize(self, value, ctx):
        ...         return f"{ctx.topic}:{value}".encode()
        ...     def deserialize(self, data, ctx):
        ...         return data.decode().split(":", 1)[1]

    Never called with ``None``. Such a serde is never taken to write the
    same bytes as another (:func:`streamlet.serde.base.same_bytes`): its
    bytes may depend on the topic, so a key is serialized again for each
    topic rather than passed through.
    """

    needs_context = True
    name = "context"

    @abstractmethod
    def serialize(self, value: Any, ctx: SerializationContext) -> bytes | None:
        """The bytes of ``value`` (not ``None``) written to ``ctx.topic`` as its ``ctx.field``."""

    @abstractmethod
    def deserialize(self, data: bytes, ctx: SerializationContext) -> Any:
        """The value of ``data`` (not ``None``) read from ``ctx.topic`` as its ``ctx.field``."""

    def __repr__(self) -> str:
        return f"serde.{self.name}"


def needs_context(serde: Any) -> bool:
    """Whether ``serde`` is called with a context (it has ``needs_context = True``)."""
    return getattr(serde, "needs_context", False) is True


class ConfluentSerde(ContextSerde):
    """Two callables ``(obj, ctx)`` — confluent-kafka ``Serializer`` / ``Deserializer`` objects, e.g.
    ``AvroSerializer`` — as one serde; made by :func:`from_confluent`."""

    def __init__(self, serializer: Callable[[Any, SerializationContext], bytes | None] | None,
                 deserializer: Callable[[bytes, SerializationContext], Any] | None,
                 name: str | None = None) -> None:
        if serializer is None and deserializer is None:
            raise TypeError("from_confluent() needs a serializer, a deserializer or both")
        for part in (serializer, deserializer):
            if part is not None and not callable(part):
                raise TypeError("from_confluent() expects callables taking (obj, ctx), "
                                f"got {type(part).__name__}")
        self.serializer = serializer
        self.deserializer = deserializer
        self.name = name or "confluent({})".format(
            "/".join(type(p).__name__ for p in (serializer, deserializer) if p is not None))

    def serialize(self, value: Any, ctx: SerializationContext) -> bytes | None:
        if self.serializer is None:
            raise SerializationError(f"{self.name} has no serializer: it cannot write the {ctx.field} "
                                     f"of topic {ctx.topic!r}; pass one to from_confluent()")
        try:
            return self.serializer(value, ctx)
        except Exception as exc:
            raise SerializationError(f"{self.name} could not serialize the {ctx.field} for topic "
                                     f"{ctx.topic!r}: {type(exc).__name__}: {exc}") from exc

    def deserialize(self, data: bytes, ctx: SerializationContext) -> Any:
        if self.deserializer is None:
            raise SerializationError(f"{self.name} has no deserializer: it cannot read the {ctx.field} "
                                     f"of topic {ctx.topic!r}; pass one to from_confluent()")
        try:
            return self.deserializer(data, ctx)
        except Exception as exc:
            raise SerializationError(f"{self.name} could not deserialize the {ctx.field} of topic "
                                     f"{ctx.topic!r}: {type(exc).__name__}: {exc}") from exc


def from_confluent(serializer: Any = None, deserializer: Any = None,
                   name: str | None = None) -> ConfluentSerde:
    """A streamlet serde from confluent-kafka's ``Serializer`` / ``Deserializer`` objects (or any
    callables taking ``(obj, ctx)``), called with the record's context::

        value_serde = sl.serde.from_confluent(AvroSerializer(registry, schema),
                                              AvroDeserializer(registry, schema))

    Either half may be left out when only that direction is used (a sink needs
    only the serializer). Their errors are raised as
    :class:`~streamlet.errors.SerializationError` naming the topic.
    """
    return ConfluentSerde(serializer, deserializer, name)


def serializer_for(serde: Any, topic: str, field: MessageField) -> Serializer:
    """``fn(value, headers)``: ``serde``'s serializer for ``field`` of records written to ``topic``.

    A serde that needs no context is called as ``serialize(value)``; one that
    does gets a new :class:`SerializationContext` per record (it may change
    its headers); ``None`` passes through.
    """
    ser = serde.serialize
    if not needs_context(serde):
        return lambda value, headers: ser(value)

    def serialize(value: Any, headers: Headers) -> bytes | None:
        return None if value is None else ser(value, SerializationContext(topic, field, headers))

    return serialize


def deserializer_for(serde: Any, topic: str, field: MessageField) -> Deserializer:
    """``fn(data, headers)``: ``serde``'s deserializer for ``field`` of records read from ``topic``
    (see :func:`serializer_for`)."""
    de = serde.deserialize
    if not needs_context(serde):
        return lambda data, headers: de(data)

    def deserialize(data: bytes | None, headers: Headers) -> Any:
        return None if data is None else de(data, SerializationContext(topic, field, headers))

    return deserialize


def context_expr(serde: Any, op: str, topic: str,
                 field: MessageField) -> Callable[[Any, str, str], str] | None:
    """For generated code: ``None`` when ``serde`` needs no context (the generator writes its usual
    call), else ``build(bind, var, headers) -> expression`` that binds this topic's prebuilt
    :func:`serializer_for` / :func:`deserializer_for` (``op``: ``"serialize"`` or ``"deserialize"``)
    with ``bind(obj, hint) -> global name`` and calls it on ``var`` and the headers expression."""
    if not needs_context(serde):
        return None
    if op not in ("serialize", "deserialize"):
        raise ValueError(f"op must be 'serialize' or 'deserialize', not {op!r}")
    fn = (serializer_for if op == "serialize" else deserializer_for)(serde, topic, field)

    def build(bind: Any, var: str, headers: str) -> str:
        return f"{bind(fn, f'{field}_{op}')}({var}, {headers})"

    return build


class TopicSerde:
    """A context serde bound to one topic and field with no headers: a plain ``serialize(value)`` /
    ``deserialize(data)`` serde, for state stores (bound to their changelog topic)."""

    __slots__ = ("serde", "topic", "field", "name", "identity", "serialize", "deserialize")

    def __init__(self, serde: Any, topic: str, field: MessageField) -> None:
        self.serde, self.topic, self.field = serde, topic, field
        self.name = getattr(serde, "name", type(serde).__name__)
        #: the same serde bound to the same topic and field writes the same bytes (see ``same_bytes``)
        self.identity = ("for_topic", serde, topic, str(field))
        ser, de = serializer_for(serde, topic, field), deserializer_for(serde, topic, field)
        self.serialize: Callable[[Any], bytes | None] = lambda value: ser(value, None)
        self.deserialize: Callable[[bytes | None], Any] = lambda data: de(data, None)

    def __repr__(self) -> str:
        return f"{self.serde!r} for {self.topic!r} ({self.field})"


def for_topic(serde: Any, topic: str, field: MessageField) -> Any:
    """``serde`` itself when it needs no context, else a :class:`TopicSerde` of it for ``topic`` and
    ``field`` (a serde already bound is bound again, to this topic)."""
    if isinstance(serde, TopicSerde):
        serde = serde.serde
    return TopicSerde(serde, topic, field) if needs_context(serde) else serde
