"""Serdes of windowed keys, in Kafka Streams' byte layouts, so either engine reads the other's topics.

* time windows (``TimeWindowedSerializer``): the key's bytes then the window start, 8 bytes
  big-endian; the end is not written — the reader knows the window size;
* session windows (``SessionWindowedSerializer``): the key's bytes, the end, then the start.

    >>> ser = windowed(string(), 60_000)
    >>> ser.deserialize(ser.serialize(Windowed("u1", 0, 60_000)))
    Windowed(key='u1', start=0, end=60000)
"""

from __future__ import annotations

import struct
from typing import Any

from streamlet.record import Windowed
from streamlet.serde.base import FunctionSerde

_TIME = struct.Struct(">q")
_SESSION = struct.Struct(">qq")


def windowed(inner: Any, size_ms: int) -> FunctionSerde:
    """The key serde of a time-windowed table whose windows are ``size_ms`` long."""
    kser, kde, size = inner.serialize, inner.deserialize, int(size_ms)
    pack, unpack = _TIME.pack, _TIME.unpack_from

    def ser(w: Windowed) -> bytes:
        return kser(w.key) + pack(w.start)

    def de(data: bytes) -> Windowed:
        if len(data) < 8:
            raise ValueError(f"a time-windowed key has at least 8 bytes (key + window start), got {len(data)}")
        start = unpack(data, len(data) - 8)[0]
        return Windowed(kde(data[:-8]), start, start + size)

    return _windowed(FunctionSerde(f"windowed({getattr(inner, 'name', 'key')}, {size})", ser, de))


def session_windowed(inner: Any) -> FunctionSerde:
    """The key serde of a session-windowed table (the end is written, sessions vary in length)."""
    kser, kde = inner.serialize, inner.deserialize
    pack, unpack = _SESSION.pack, _SESSION.unpack_from

    def ser(w: Windowed) -> bytes:
        return kser(w.key) + pack(w.end, w.start)

    def de(data: bytes) -> Windowed:
        if len(data) < 16:
            raise ValueError(f"a session-windowed key has at least 16 bytes (key + end + start), got {len(data)}")
        end, start = unpack(data, len(data) - 16)
        return Windowed(kde(data[:-16]), start, end)

    return _windowed(FunctionSerde(f"session_windowed({getattr(inner, 'name', 'key')})", ser, de))


class _WindowedSerde(FunctionSerde):
    """A windowed key serde: says so (``windowed``), so that a step giving records a new key drops it."""

    __slots__ = ()
    windowed = True


def _windowed(serde: FunctionSerde) -> FunctionSerde:
    serde.__class__ = _WindowedSerde
    return serde
