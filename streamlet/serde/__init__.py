"""Serdes: ``serialize(value) -> bytes``, ``deserialize(bytes) -> value``; ``None`` passes through.

    >>> import streamlet as sl
    >>> sl.serde.json().serialize({"a": 1})
    b'{"a":1}'
"""

from streamlet.serde.base import FunctionSerde, Serde
from streamlet.serde.builtin import bytes_, int32, integer, json, long, msgpack, string

bytes = bytes_  # noqa: A001 - the documented name is serde.bytes()

__all__ = ["Serde", "FunctionSerde", "string", "bytes", "bytes_", "integer", "long", "int32", "json", "msgpack"]
