"""Replay protection: where a record came from, and whether an aggregation already applied it.

Under at-least-once a crashed task re-processes its input from the last
committed offset. An aggregation must not count those records twice, so each
stored row carries a *mark* of the last record it applied, and a record whose
mark is not above it changes nothing.

A mark is ``(offset, upstream sequence, local sequence)``:

* ``offset`` — the input record's offset in its partition;
* ``upstream sequence`` — across a repartition topic, the n-th record the
  upstream task wrote to that topic for that input record (a ``flat_map``
  before ``group_by`` writes several);
* ``local sequence`` — the n-th record reaching the aggregation from one
  input message (a ``flat_map`` between the source and the aggregation).

Across a repartition topic the offsets that matter are the *upstream* ones: a
killed upstream task writes the same records again at new repartition
offsets. The repartition sink therefore writes the origin — upstream offset,
sequence, partition and topic — into the ``streamlet.origin`` header, and a
row read through a repartition topic keeps one mark per upstream partition.
Records of one upstream partition reach the repartition partition in order,
so a re-written record is recognised by a mark at or below the stored one.
"""

from __future__ import annotations

import struct
from typing import Any, Callable

from streamlet.record import RecordMessage, StampedMessage

ORIGIN_HEADER = "streamlet.origin"
_MARK = struct.Struct(">qi")
_PARTITION = struct.Struct(">i")


def origin_value(offset: int, seq: int, partition: int, topic: str) -> bytes:
    """The ``streamlet.origin`` header value: offset, sequence, then the partition's identity."""
    return _MARK.pack(offset, seq) + _PARTITION.pack(partition) + topic.encode()


def parse_origin(value: bytes) -> tuple[int, int, bytes]:
    """``(offset, sequence, partition identity)`` of an origin header value."""
    offset, seq = _MARK.unpack_from(value)
    return offset, seq, value[_MARK.size:]


def with_origin(headers: Any, origin: bytes) -> list[tuple[str, bytes]]:
    """Input headers with the origin first (an older origin, from an earlier hop, replaced)."""
    out = [(ORIGIN_HEADER, origin)]
    if headers:
        out.extend(h for h in headers if h[0] != ORIGIN_HEADER)
    return out


def input_message(m: Any) -> Any:
    """The input message ``m`` was made from (itself, unless a process() output)."""
    cls = m.__class__
    if (cls is RecordMessage or cls is StampedMessage) and m.parent is not None:
        return m.parent
    return m


class InputSequence:
    """Counts the records one processor sees per input message: ``next(m) -> n`` (0, 1, ...).

    Deterministic on replay as long as the user functions are: the n-th record
    made from an input record is the same record each time.
    """

    __slots__ = ("_last", "_n")

    def __init__(self) -> None:
        self._last: Any = None
        self._n = 0

    def next(self, m: Any) -> int:
        src = input_message(m)
        if src is self._last:
            self._n += 1
        else:
            self._last, self._n = src, 0
        return self._n


def origin_stamper(ctx: Any) -> Callable[[], list[tuple[str, bytes]]]:
    """For a repartition sink: ``stamp()`` gives the headers of the next record written for
    ``ctx.msg``, numbering the records written for one input record."""
    sequence = InputSequence()

    def stamp() -> list[tuple[str, bytes]]:
        m = ctx.msg
        seq = sequence.next(m)
        src = input_message(m)
        return with_origin(m.headers(), origin_value(src.offset(), seq, src.partition(), src.topic()))

    return stamp


def first_origin_stamper(partition: int, topic: str) -> Callable[[int, Any], list[tuple[str, bytes]]]:
    """For generated code on a single-output path, where each input record makes at most one record
    of the repartition topic (sequence 0): ``stamp(offset, headers)`` gives its headers."""
    suffix = _PARTITION.pack(partition) + topic.encode()
    pack = _MARK.pack

    def stamp(offset: int, headers: Any) -> list[tuple[str, bytes]]:
        return with_origin(headers, pack(offset, 0) + suffix)

    return stamp


def read_origin(m: Any) -> tuple[int, int, bytes]:
    """The origin of input message ``m``: its header if it came through a repartition topic, else
    itself."""
    headers = m.headers()
    if headers:
        name, value = headers[0]
        if name == ORIGIN_HEADER:
            return parse_origin(value)
    return m.offset(), 0, _PARTITION.pack(m.partition()) + m.topic().encode()
