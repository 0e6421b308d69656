"""fastavro's schemaless encoding with the per-call set-up done once (the hot path of ``serde.avro``).

``schemaless_writer`` / ``schemaless_reader`` collect the schema's named types
and build their options on every call, and the writer goes through a
``BytesIO``; here the named types are collected once per schema
(:func:`read_plan`), the options are constants, and a record is encoded
straight into a ``bytearray`` (:func:`write_into`) — the same bytes and values
as the public functions (fastavro's own ``write_data`` / ``_read_data``,
which those call). Whether this fastavro works that way is checked once at
import against the public functions on a sample; if not (another fastavro
version, its pure-Python build), both go through the public functions.

    >>> from fastavro import parse_schema
    >>> schema = parse_schema({"type": "record", "name": "R", "fields": [{"name": "n", "type": "long"}]})
    >>> buf = bytearray(b"\\x00")
    >>> write_into(buf, schema, {"n": 3})
    >>> bytes(buf), read_from(io.BytesIO(bytes(buf)[1:]), *read_plan(schema, None))
    (b'\\x00\\x06', {'n': 3})
"""

from __future__ import annotations

import io
from typing import Any, Callable

from fastavro import parse_schema, schemaless_reader, schemaless_writer

_WRITE_OPTIONS = {"strict": False, "strict_allow_default": False, "disable_tuple_notation": False}
_READ_OPTIONS = {"return_record_name": False, "return_record_name_override": False,
                 "handle_unicode_errors": "strict", "return_named_type": False, "return_named_type_override": False}


class _NamedList(list):  # type: ignore[type-arg]
    """A parsed top-level union with the named types it uses from elsewhere (schema references)."""

    named_schemas: dict[str, Any]


class _NamedStr(str):
    """A parsed top-level type name with the named types it uses from elsewhere."""

    named_schemas: dict[str, Any]


def with_names(parsed: Any, named: dict[str, Any]) -> Any:
    """``parsed`` (from ``parse_schema(schema, named)``) carrying the named types ``named``: a record,
    enum or fixed carries them already (fastavro's ``__named_schemas``); a top-level union or type name
    — a union of referenced types, the usual way to put several event types in one topic — is wrapped."""
    if isinstance(parsed, dict):
        return parsed
    out = _NamedList(parsed) if isinstance(parsed, list) else _NamedStr(parsed)
    out.named_schemas = named
    return out


def _unsupported(parsed: Any) -> None:
    if getattr(parsed, "named_schemas", None) is not None:
        raise NotImplementedError(
            "a top-level union or type name using referenced types needs fastavro's compiled build "
            "(its write_data / _read_data); this fastavro does not have it")


def _generic_write(buf: bytearray, parsed: Any, value: Any) -> None:
    _unsupported(parsed)
    out = io.BytesIO()
    schemaless_writer(out, parsed, value)
    buf += out.getbuffer()


def _generic_read(fo: Any, writer: Any, reader: Any, named: Any) -> Any:
    return schemaless_reader(fo, writer, reader)


def _fast() -> tuple[Callable[[bytearray, Any, Any], None], Callable[[Any, Any, Any, Any], Any]] | None:
    """fastavro's ``write_data`` / ``_read_data`` as ``write(buf, parsed, value)`` and
    ``read(fo, writer, reader, named)``, when they give what the public functions give."""
    try:
        from fastavro._read import _read_data
        from fastavro._write import write_data

        def write(buf: bytearray, parsed: Any, value: Any) -> None:
            # the named types parse_schema gives a parsed schema; without them (a union, a primitive:
            # parsed again on every call by schemaless_writer too) the public function
            named = parsed.get("__named_schemas") if type(parsed) is dict else getattr(
                parsed, "named_schemas", None)
            if named is None:
                _generic_write(buf, parsed, value)
            else:
                write_data(buf, value, parsed, named, "", _WRITE_OPTIONS)

        def read(fo: Any, writer: Any, reader: Any, named: Any) -> Any:
            return _read_data(fo, writer, named, reader, _READ_OPTIONS)

        inner = {"type": "record", "name": "Inner", "namespace": "probe", "fields": [
            {"name": "s", "type": "string"}, {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}}]}
        schema = parse_schema({"type": "record", "name": "Probe", "namespace": "probe", "fields": [
            {"name": "n", "type": "long"}, {"name": "i", "type": inner}, {"name": "u", "type": ["null", "probe.Inner"]},
            {"name": "m", "type": {"type": "map", "values": "double"}}, {"name": "t", "type": "probe.E"}]})
        value = {"n": -5, "i": {"s": "é", "e": "B"}, "u": {"s": "x", "e": "A"}, "m": {"k": 1.5}, "t": "A"}
        reference = io.BytesIO()
        schemaless_writer(reference, schema, value)
        buf = bytearray()
        write(buf, schema, value)
        if bytes(buf) != reference.getvalue():
            return None
        if read(io.BytesIO(bytes(buf)), *read_plan(schema, None)) != value:
            return None
        return write, read
    except Exception:  # another fastavro: the public functions
        return None


def read_plan(writer: Any, reader: Any) -> tuple[Any, Any, dict[str, dict[str, Any]]]:
    """``(writer, reader, named types)`` for :func:`read_from`, the writer and reader schemas parsed
    (``reader`` ``None``: read as written)."""
    named: dict[str, dict[str, Any]] = {"writer": {}, "reader": {}}
    for side, schema in (("writer", writer), ("reader", reader)):
        carried = getattr(schema, "named_schemas", None)  # see with_names
        if carried is not None:
            if not FAST:
                _unsupported(schema)
            named[side].update(carried)
    writer = parse_schema(writer, named["writer"])
    if reader is not None:
        reader = parse_schema(reader, named["reader"])
    return writer, reader, named


#: ``write_into(buf, parsed, value)``: append the Avro binary encoding of ``value`` to the bytearray ``buf``
write_into: Callable[[bytearray, Any, Any], None] = _generic_write
#: ``read_from(fo, writer, reader, named)``: one value from the file object ``fo`` (see :func:`read_plan`)
read_from: Callable[[Any, Any, Any, Any], Any] = _generic_read
#: whether fastavro's inner functions are used (checked at import)
FAST = False

_found = _fast()
if _found is not None:
    write_into, read_from = _found
    FAST = True
