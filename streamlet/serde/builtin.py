"""Built-in serdes: string, bytes, Kafka integers, JSON (orjson), msgpack."""

from __future__ import annotations

import codecs
import struct
from typing import Any

import msgpack as _msgpack
import orjson

from streamlet.serde.base import FunctionSerde

_LONG = struct.Struct(">q")
_INT = struct.Struct(">i")


def string(encoding: str = "utf-8") -> FunctionSerde:
    """UTF-8 text (Kafka's StringSerde)."""
    def ser(value: Any) -> bytes:
        if not isinstance(value, str):
            raise TypeError(f"string serde expects str, got {type(value).__name__}: {value!r}")
        return value.encode(encoding)

    return FunctionSerde("string", ser, lambda b: b.decode(encoding), ("string", codecs.lookup(encoding).name))


def _bytes_ser(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"bytes serde expects bytes, got {type(value).__name__}")


def bytes_() -> FunctionSerde:
    """Raw bytes, unchanged."""
    return FunctionSerde("bytes", _bytes_ser, lambda b: b, ("bytes",))


def _fixed_int(name: str, st: struct.Struct) -> FunctionSerde:
    def de(data: bytes) -> int:
        if len(data) != st.size:
            raise ValueError(f"{name} serde expects {st.size} bytes, got {len(data)}")
        return st.unpack(data)[0]

    def ser(value: Any) -> bytes:
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} serde expects int, got {type(value).__name__}: {value!r}")
        return st.pack(value)

    return FunctionSerde(name, ser, de, (name,))


def long() -> FunctionSerde:
    """Kafka's LongSerde: signed 64-bit big-endian."""
    return _fixed_int("long", _LONG)


def int32() -> FunctionSerde:
    """Kafka's IntegerSerde: signed 32-bit big-endian."""
    return _fixed_int("int32", _INT)


def integer(size: int = 8) -> FunctionSerde:
    """Big-endian signed integer: ``size=8`` (Kafka Long, default) or ``size=4`` (Kafka Integer)."""
    if size == 8:
        return long()
    if size == 4:
        return int32()
    raise ValueError("integer serde size must be 8 (Kafka LongSerde) or 4 (Kafka IntegerSerde)")


def json() -> FunctionSerde:
    """JSON through orjson (UTF-8, compact)."""
    return FunctionSerde("json", orjson.dumps, orjson.loads, ("json",))


def msgpack() -> FunctionSerde:
    """MessagePack."""
    packer = _msgpack.Packer(use_bin_type=True)

    def de(data: bytes) -> Any:
        return _msgpack.unpackb(data, raw=False, strict_map_key=False)

    return FunctionSerde("msgpack", packer.pack, de, ("msgpack",))
