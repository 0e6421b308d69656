"""The stored row format, in one place: what a store value holds besides the user's value.

Three shapes, each with builders and readers here so that no other module
indexes rows by hand:

* **plain** — a table row is the value itself (a source table's store holds
  the input's value bytes, since its changelog is the input topic);
* **timestamped** — :class:`ValueAndTimestamp` (Kafka Streams' name): the
  value and the timestamp of the record that last set it. Its bytes are
  Kafka Streams' own: the timestamp as 8 big-endian bytes, then the value's
  bytes (:func:`timestamped_serde`), so a timestamped store's changelog reads
  the same from both engines;
* **aggregation** — the aggregate's state with the replay mark of the last
  record it applied (see :mod:`streamlet.topology.origin`): ``[offset, state,
  seq]`` for an aggregation that reads its input directly, ``[{upstream
  partition: [offset, upstream seq, seq]}, state]`` for one that reads a
  repartition topic. Lists, not tuples: the generated aggregation updates a
  row in place. Encoded with msgpack (:func:`aggregate_serde`).
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple

from streamlet.errors import SerializationError
from streamlet.serde.base import FunctionSerde, Serde
from streamlet.serde.builtin import msgpack as _msgpack_serde

# -- timestamped rows ------------------------------------------------------------------
_TS = struct.Struct(">q")
#: a timestamped row's time, before its value's bytes
TIMESTAMP = _TS
TIMESTAMP_BYTES = _TS.size


class ValueAndTimestamp(NamedTuple):
    """A value and the timestamp (ms) of the record that set it."""

    value: Any
    timestamp: int


def timestamped(value: Any, timestamp: int) -> ValueAndTimestamp | None:
    """The row of ``value`` set at ``timestamp``; ``None`` for no value (a deleted row has no time)."""
    return None if value is None else ValueAndTimestamp(value, timestamp)


def value_of(row: ValueAndTimestamp | None) -> Any:
    """The value of a timestamped row (``None`` for none)."""
    return None if row is None else row[0]


def timestamp_of(row: ValueAndTimestamp | None, default: int = -1) -> int:
    """The timestamp of a timestamped row, ``default`` for none."""
    return default if row is None else row[1]


def timestamped_serde(inner: Serde) -> FunctionSerde:
    """Serde of :class:`ValueAndTimestamp` rows whose values ``inner`` encodes (Kafka Streams' bytes)."""
    ser, de = inner.serialize, inner.deserialize
    pack, unpack = _TS.pack, _TS.unpack_from

    def serialize(row: Any) -> bytes | None:
        if row is None:
            return None
        raw = ser(row[0])
        if raw is None:
            raise SerializationError(f"a timestamped row needs a value, got {row!r}: store None to delete it")
        return pack(row[1]) + raw

    def deserialize(data: bytes) -> ValueAndTimestamp:
        if len(data) < TIMESTAMP_BYTES:
            raise SerializationError(f"a timestamped row is at least {TIMESTAMP_BYTES} bytes, got {data!r}")
        return ValueAndTimestamp(de(data[TIMESTAMP_BYTES:]), unpack(data)[0])

    inner_identity = getattr(inner, "identity", None)
    identity = ("timestamped", inner_identity) if inner_identity is not None else None
    serde = FunctionSerde(f"timestamped({inner.name})", serialize, deserialize, identity)
    serde.serialize = serialize  # None-safe already: no wrapper call per row a commit writes
    return serde


def raw_value(data: bytes | None) -> bytes | None:
    """The value bytes of an encoded timestamped row, without decoding it (``None`` stays ``None``)."""
    return None if data is None else data[TIMESTAMP_BYTES:]


def raw_timestamp(data: bytes) -> int:
    """The timestamp of an encoded timestamped row, without decoding its value."""
    return _TS.unpack_from(data)[0]


# -- aggregation rows ------------------------------------------------------------------
#: index of the mark (an offset, or the marks by upstream partition) and of the state in a row
MARK, STATE = 0, 1
#: index of the local sequence and of the timestamp in a row of an aggregation that reads its input
SEQ, TS = 2, 3
#: index of the timestamp in a row of an aggregation that reads a repartition topic
REPARTITIONED_TS = 2


def aggregate_row(offset: int, state: Any, seq: int = 0, timestamp: int = -1) -> list[Any]:
    """The row of an aggregation reading its input directly: ``state`` after the record at
    ``offset`` (the ``seq``-th record made from it); ``timestamp`` is the largest record timestamp
    the aggregate has seen (Kafka Streams stamps its output records with it)."""
    return [offset, state, seq, timestamp]


def repartitioned_row(marks: dict[Any, list[int]], state: Any, timestamp: int = -1) -> list[Any]:
    """The row of an aggregation reading a repartition topic: ``marks`` maps each upstream partition to
    ``[upstream offset, upstream sequence, local sequence]`` of the last record applied from it."""
    return [marks, state, timestamp]


def state_of(row: list[Any] | None) -> Any:
    """The aggregate state of a row (``None`` for no row)."""
    return None if row is None else row[STATE]


def mark_of(row: list[Any]) -> tuple[int, int]:
    """``(offset, seq)`` of the last record applied to a direct aggregation's row."""
    return row[MARK], row[SEQ]


def marks_of(row: list[Any]) -> dict[Any, list[int]]:
    """The marks by upstream partition of a repartitioned aggregation's row."""
    return row[MARK]  # type: ignore[no-any-return]


def row_timestamp(row: list[Any]) -> int:
    """The largest record timestamp a row's aggregate has seen (-1: unknown)."""
    return row[REPARTITIONED_TS if row[MARK].__class__ is dict else TS]  # type: ignore[no-any-return]


def applied(row: list[Any], offset: int, seq: int) -> bool:
    """Whether a direct aggregation's ``row`` already holds the record ``(offset, seq)``: a replay."""
    done = row[MARK]
    return offset < done or (offset == done and seq <= row[SEQ])


def upgrade(row: Any) -> Any:
    """A row as stored before rows held their timestamp (``[offset, state, seq]``, ``[marks, state]``),
    given timestamp -1 (unknown); any other row unchanged."""
    if row.__class__ is list:
        if row[MARK].__class__ is dict:
            if len(row) == REPARTITIONED_TS:
                row.append(-1)
        elif len(row) == TS:
            row.append(-1)
    return row


def aggregate_serde() -> FunctionSerde:
    """Serde of aggregation rows (msgpack: lists, dicts with integer or bytes keys, plain data); rows
    stored by earlier versions are read with an unknown timestamp (:func:`upgrade`)."""
    plain = _msgpack_serde()
    de = plain._de
    return FunctionSerde(plain.name, plain._ser, lambda data: upgrade(de(data)), plain.identity)
