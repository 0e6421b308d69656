"""streamlet.serde.avro_codec: the hot path of serde.avro gives exactly the bytes and values of fastavro's
public schemaless_writer / schemaless_reader — every type, logical types, unions at the top, recursive
and referenced named types, reader-schema resolution — and its fallback (the public functions) too."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from streamlet.serde import avro_codec
from tests.serde.test_avro import ALL_TYPES, everything

UTC = dt.timezone.utc
LIST = {"type": "record", "name": "Node", "fields": [
    {"name": "v", "type": "int"}, {"name": "next", "type": ["null", "Node"], "default": None}]}
LOGICAL = {"type": "record", "name": "L", "fields": [
    {"name": "when", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "day", "type": {"type": "int", "logicalType": "date"}},
    {"name": "money", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}}]}
CASES = [
    (ALL_TYPES, everything()),
    (ALL_TYPES, everything(either=[1, 2 ** 50], maybe="set")),
    (LIST, {"v": 1, "next": {"v": 2, "next": {"v": 3, "next": None}}}),
    (LOGICAL, {"when": dt.datetime(2026, 12, 5, 1, 2, 3, 4000, UTC), "day": dt.date(2026, 12, 5),
               "money": Decimal("1234.56")}),
    (["null", "string", LIST], {"v": 9, "next": None}),
    (["null", "string", LIST], "text"),
    ({"type": "array", "items": LIST}, [{"v": 1, "next": {"v": 2, "next": None}}]),
    ("long", -(2 ** 63)),
]


def public_bytes(parsed: Any, value: Any) -> bytes:
    out = io.BytesIO()
    schemaless_writer(out, parsed, value)
    return out.getvalue()


def test_the_fast_path_is_used_with_this_fastavro() -> None:
    assert avro_codec.FAST  # the installed fastavro has its Cython build: the check at import passed


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "fallback"])
@pytest.mark.parametrize("schema,value", CASES, ids=[str(i) for i in range(len(CASES))])
def test_the_same_bytes_and_values_as_fastavros_public_functions(schema: Any, value: Any, fast: bool) -> None:
    write = avro_codec.write_into if fast else avro_codec._generic_write
    read = avro_codec.read_from if fast else avro_codec._generic_read
    parsed = parse_schema(schema)
    buf = bytearray(b"\x00head")
    write(buf, parsed, value)
    assert bytes(buf) == b"\x00head" + public_bytes(parsed, value)
    fo = io.BytesIO(bytes(buf))
    fo.seek(5)
    back = read(fo, *avro_codec.read_plan(parsed, None))
    assert back == schemaless_reader(io.BytesIO(bytes(buf)[5:]), parsed, None) == value
    assert fo.tell() == len(buf)


def test_a_reader_schema_resolves_the_writer_as_fastavro_does() -> None:
    writer = parse_schema(LIST)
    reader = parse_schema({**LIST, "fields": LIST["fields"] + [{"name": "tag", "type": "string", "default": "t"}]})
    data = public_bytes(writer, {"v": 1, "next": {"v": 2, "next": None}})
    back = avro_codec.read_from(io.BytesIO(data), *avro_codec.read_plan(writer, reader))
    assert back == schemaless_reader(io.BytesIO(data), writer, reader) == {
        "v": 1, "next": {"v": 2, "next": None, "tag": "t"}, "tag": "t"}


def test_a_value_that_does_not_fit_raises() -> None:
    parsed = parse_schema(LIST)
    with pytest.raises(Exception):
        avro_codec.write_into(bytearray(), parsed, {"v": "not an int"})


def test_a_top_level_union_of_types_defined_elsewhere_carries_their_names() -> None:
    named: dict[str, Any] = {}
    parse_schema(LIST, named)
    union = avro_codec.with_names(parse_schema(["null", "Node"], named), named)
    buf = bytearray()
    avro_codec.write_into(buf, union, {"v": 4, "next": None})
    assert bytes(buf) == b"\x02\x08\x00"  # branch 1, v = 4, next: branch 0 (null)
    assert avro_codec.read_from(io.BytesIO(bytes(buf)), *avro_codec.read_plan(union, None)) == {"v": 4, "next": None}
    name = avro_codec.with_names(parse_schema("Node", named), named)
    assert avro_codec.read_from(io.BytesIO(b"\x08\x00"), *avro_codec.read_plan(name, union)) == {"v": 4, "next": None}
    # the public functions cannot be given the names: the fallback says so
    with pytest.raises(NotImplementedError, match="compiled build"):
        avro_codec._generic_write(bytearray(), union, {"v": 4, "next": None})
