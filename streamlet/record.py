"""The record handed to ``KStream.process`` callbacks."""

from __future__ import annotations

from typing import Any, NamedTuple


class Record(NamedTuple):
    """One record with its metadata, as Kafka Streams' ``Record`` plus its origin.

    ``process`` callbacks receive one and may return it changed with
    ``record._replace(value=...)`` (timestamp and headers travel downstream).
    """

    key: Any
    value: Any
    timestamp: int
    topic: str | None
    partition: int
    offset: int
    headers: list[tuple[str, bytes]] | None = None


class RecordMessage:
    """Duck-types ``confluent_kafka.Message`` so compiled chains read metadata one way.

    The runtime hands chains real ``Message`` objects; the TestDriver, process()
    forwarding and punctuation hand them one of these. ``parent`` is the input
    message a process() output was made from (replay protection counts the
    records made from one input).
    """

    __slots__ = ("_topic", "_partition", "_offset", "_timestamp", "_headers", "_key", "_value", "parent")

    def __init__(self, topic: str | None, partition: int, offset: int, timestamp: int,
                 headers: list[tuple[str, bytes]] | None = None,
                 key: bytes | None = None, value: bytes | None = None, parent: Any = None) -> None:
        self._topic, self._partition, self._offset = topic, partition, offset
        self._timestamp, self._headers = timestamp, headers
        self._key, self._value = key, value
        self.parent = parent

    def topic(self) -> str | None:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return (1, self._timestamp)  # TIMESTAMP_CREATE_TIME

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def error(self) -> None:
        return None


class Windowed(NamedTuple):
    """The key of a windowed aggregation's row: the record key and its window, ``start`` inclusive,
    ``end`` exclusive, in milliseconds (Kafka Streams' ``Windowed<K>``).

        counts.to_stream().map(lambda w, n: (w.key, {"start": w.start, "end": w.end, "count": n}))
    """

    key: Any
    start: int
    end: int


class StampedMessage:
    """A message seen with another timestamp — an extracted one, an aggregate's — and otherwise the
    message ``parent`` itself: the rest is read from it when asked (nothing copied per record)."""

    __slots__ = ("parent", "_timestamp")

    def __init__(self, parent: Any, timestamp: int) -> None:
        self.parent = parent
        self._timestamp = timestamp

    def timestamp(self) -> tuple[int, int]:
        return (1, self._timestamp)  # TIMESTAMP_CREATE_TIME

    def topic(self) -> str | None:
        return self.parent.topic()  # type: ignore[no-any-return]

    def partition(self) -> int:
        return self.parent.partition()  # type: ignore[no-any-return]

    def offset(self) -> int:
        return self.parent.offset()  # type: ignore[no-any-return]

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self.parent.headers()  # type: ignore[no-any-return]

    def key(self) -> bytes | None:
        return self.parent.key()  # type: ignore[no-any-return]

    def value(self) -> bytes | None:
        return self.parent.value()  # type: ignore[no-any-return]

    def error(self) -> None:
        return None
