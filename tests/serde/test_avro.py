"""serde.avro: the Confluent wire format, every Avro type and logical type, schema evolution, subject
name strategies, specific records, the registry caches and the errors — on confluent-kafka's
``mock://`` registry (the HTTP registry: tests/broker/test_registry.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import re
import struct
import uuid
from decimal import Decimal
from typing import Any, Optional

import pytest
from confluent_kafka.schema_registry import Schema, record_subject_name_strategy

import streamlet as sl
from streamlet.errors import (
    ConfigError,
    SchemaNotRegisteredError,
    SchemaRegistryUnavailableError,
    SerializationError,
    UnknownSchemaIdError,
)
from streamlet.serde.registry import forget_mock, registry_client

VALUE = sl.serde.SerializationContext("orders", sl.serde.VALUE)
KEY = sl.serde.SerializationContext("orders", sl.serde.KEY)
UTC = dt.timezone.utc


@pytest.fixture
def url(request: pytest.FixtureRequest) -> Any:
    """A fresh shared ``mock://`` registry per test."""
    name = "mock://" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())
    yield name
    forget_mock(name)


class Counting:
    """A registry client that counts the calls made through it."""

    def __init__(self, client: Any) -> None:
        self.client, self.calls = client, []
        self.config = {"url": "counting"}

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self.client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            if name != "clear_latest_caches":  # the client's own cache, no request
                self.calls.append(name)
            return fn(*args, **kwargs)

        return call


def roundtrip(schema: Any, value: Any, url: str, ctx: Any = VALUE) -> Any:
    serde = sl.serde.avro(schema, registry=url, auto_register=True)
    data = serde.serialize(value, ctx)
    return data, serde.deserialize(data, ctx)


# -- the wire format and every type ------------------------------------------------------------
def test_wire_format_is_magic_byte_schema_id_then_avro_binary(url: str) -> None:
    serde = sl.serde.avro({"type": "record", "name": "R", "fields": [{"name": "n", "type": "long"}]},
                          registry=url, auto_register=True)
    data = serde.serialize({"n": 3}, VALUE)
    client, _ = registry_client(url)
    schema_id = client.get_latest_version("orders-value").schema_id
    assert data[:1] == b"\x00" and struct.unpack(">I", data[1:5])[0] == schema_id
    assert data[5:] == b"\x06"  # zig-zag varint of 3: Avro's own encoding, nothing else


PRIMITIVES = [
    ("null", None), ("boolean", True), ("boolean", False), ("int", -(2 ** 31)), ("int", 2 ** 31 - 1),
    ("long", -(2 ** 63)), ("long", 2 ** 63 - 1), ("float", 1.5), ("double", -2.25e300),
    ("bytes", b"\x00\xff raw"), ("string", "héllo ✓"), ("string", ""),
]


@pytest.mark.parametrize("schema,value", PRIMITIVES, ids=[f"{s}-{i}" for i, (s, _) in enumerate(PRIMITIVES)])
def test_every_primitive_type_round_trips_as_a_key(schema: str, value: Any, url: str) -> None:
    if value is None:
        # a null value is a tombstone and never reaches the serde; the null type only lives in unions
        schema, value = ["null", "int"], None
        serde = sl.serde.avro(schema, registry=url, auto_register=True)
        assert serde.deserialize(serde.serialize(value, KEY), KEY) is None
        return
    data, back = roundtrip(schema, value, url, KEY)
    assert back == value and type(back) is type(value)


LOGICAL = [
    ({"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}, Decimal("-12345.67")),
    ({"type": "fixed", "name": "Money", "size": 8, "logicalType": "decimal", "precision": 10, "scale": 3},
     Decimal("9876.543")),
    ({"type": "int", "logicalType": "date"}, dt.date(2024, 2, 29)),
    ({"type": "int", "logicalType": "time-millis"}, dt.time(23, 59, 58, 999000)),
    ({"type": "long", "logicalType": "time-micros"}, dt.time(0, 0, 1, 123456)),
    ({"type": "long", "logicalType": "timestamp-millis"}, dt.datetime(2026, 12, 4, 22, 15, 7, 123000, UTC)),
    ({"type": "long", "logicalType": "timestamp-micros"}, dt.datetime(1969, 7, 20, 20, 17, 40, 654321, UTC)),
    ({"type": "string", "logicalType": "uuid"}, uuid.UUID("12345678-1234-5678-1234-567812345678")),
]


@pytest.mark.parametrize("schema,value", LOGICAL, ids=[s["logicalType"] + "-" + s["type"] for s, _ in LOGICAL])
def test_every_logical_type_round_trips(schema: Any, value: Any, url: str) -> None:
    record = {"type": "record", "name": "L", "fields": [{"name": "v", "type": schema}]}
    _, back = roundtrip(record, {"v": value}, url)
    assert back == {"v": value} and type(back["v"]) is type(value)


ALL_TYPES = {
    "type": "record", "name": "Everything", "namespace": "test.avro",
    "fields": [
        {"name": "flag", "type": "boolean"},
        {"name": "small", "type": "int"},
        {"name": "big", "type": "long"},
        {"name": "ratio", "type": "float"},
        {"name": "precise", "type": "double"},
        {"name": "raw", "type": "bytes"},
        {"name": "text", "type": "string"},
        {"name": "digest", "type": {"type": "fixed", "name": "MD5", "size": 4}},
        {"name": "suit", "type": {"type": "enum", "name": "Suit", "symbols": ["SPADES", "HEARTS", "CLUBS"]}},
        {"name": "numbers", "type": {"type": "array", "items": "int"}},
        {"name": "labels", "type": {"type": "map", "values": "string"}},
        {"name": "maybe", "type": ["null", "string"], "default": None},
        {"name": "either", "type": ["int", "string", {"type": "array", "items": "long"}]},
        {"name": "address", "type": {"type": "record", "name": "Address", "fields": [
            {"name": "street", "type": "string"},
            {"name": "geo", "type": {"type": "record", "name": "Geo", "fields": [
                {"name": "lat", "type": "double"}, {"name": "lon", "type": "double"}]}}]}},
        {"name": "history", "type": {"type": "array", "items": "Address"}},
        {"name": "by_name", "type": {"type": "map", "values": ["null", "Address"]}},
        {"name": "again", "type": "MD5"},
    ],
}


def everything(**overrides: Any) -> dict[str, Any]:
    address = {"street": "Main St 1", "geo": {"lat": 52.5, "lon": 13.4}}
    value = {"flag": True, "small": -7, "big": 2 ** 40, "ratio": 0.5, "precise": 3.141592653589793,
             "raw": b"\x01\x02", "text": "ünïcode", "digest": b"abcd", "suit": "HEARTS",
             "numbers": [1, -2, 3], "labels": {"a": "x", "b": ""}, "maybe": None, "either": "two",
             "address": address, "history": [address, {**address, "street": "Side St 2"}],
             "by_name": {"home": address, "none": None}, "again": b"wxyz"}
    value.update(overrides)
    return value


def test_a_record_of_every_type_round_trips_including_every_union_branch(url: str) -> None:
    for either in (5, "two", [1, 2 ** 50]):
        for maybe in (None, "set"):
            value = everything(either=either, maybe=maybe)
            assert roundtrip(ALL_TYPES, value, url)[1] == value


# -- schema evolution ---------------------------------------------------------------------------
V1 = {"type": "record", "name": "User", "namespace": "shop",
      "fields": [{"name": "id", "type": "string"}, {"name": "age", "type": "int"}]}
V2_ADDED = {**V1, "fields": V1["fields"] + [{"name": "email", "type": ["null", "string"], "default": None},
                                           {"name": "tier", "type": "string", "default": "basic"}]}
V0_REMOVED = {**V1, "fields": [{"name": "id", "type": "string"}]}
V_PROMOTED = {**V1, "fields": [{"name": "id", "type": "string"}, {"name": "age", "type": "double"}]}
V_REQUIRED = {**V1, "fields": V1["fields"] + [{"name": "must", "type": "string"}]}


def test_a_reader_schema_with_added_fields_reads_their_defaults(url: str) -> None:
    writer = sl.serde.avro(V1, registry=url, auto_register=True)
    data = writer.serialize({"id": "u1", "age": 30}, VALUE)
    reader = sl.serde.avro(V2_ADDED, registry=url)
    assert reader.deserialize(data, VALUE) == {"id": "u1", "age": 30, "email": None, "tier": "basic"}
    # and new data read by an old reader drops what it does not know
    new = sl.serde.avro(V2_ADDED, registry=url, auto_register=True).serialize(
        {"id": "u2", "age": 5, "email": "e@x", "tier": "gold"}, sl.serde.SerializationContext("other", "value"))
    assert writer.deserialize(new, VALUE) == {"id": "u2", "age": 5}


def test_a_reader_schema_without_a_field_and_with_a_promoted_type(url: str) -> None:
    data = sl.serde.avro(V1, registry=url, auto_register=True).serialize({"id": "u1", "age": 30}, VALUE)
    assert sl.serde.avro(V0_REMOVED, registry=url).deserialize(data, VALUE) == {"id": "u1"}
    promoted = sl.serde.avro(V_PROMOTED, registry=url).deserialize(data, VALUE)
    assert promoted == {"id": "u1", "age": 30.0} and isinstance(promoted["age"], float)
    # no schema: the record as it was written
    assert sl.serde.avro(registry=url).deserialize(data, VALUE) == {"id": "u1", "age": 30}


def test_a_reader_that_cannot_resolve_the_writer_is_a_serialization_error(url: str) -> None:
    data = sl.serde.avro(V1, registry=url, auto_register=True).serialize({"id": "u1", "age": 30}, VALUE)
    with pytest.raises(SerializationError, match=r"topic 'orders' with schema id \d+.*must"):
        sl.serde.avro(V_REQUIRED, registry=url).deserialize(data, VALUE)


# -- subjects -----------------------------------------------------------------------------------
@pytest.mark.parametrize("strategy,value_subject,key_subject", [
    ("topic", "orders-value", "orders-key"),
    ("record", "shop.User", "shop.User"),
    ("topic_record", "orders-shop.User", "orders-shop.User"),
    ("topic-record", "orders-shop.User", "orders-shop.User"),
    (lambda ctx, name: f"custom.{ctx.topic}.{ctx.field.value}.{name}", "custom.orders.value.shop.User",
     "custom.orders.key.shop.User"),
    (record_subject_name_strategy, "shop.User", "shop.User"),  # confluent-kafka's own strategies fit
], ids=["topic", "record", "topic_record", "topic-record", "callable", "confluent-callable"])
def test_every_subject_name_strategy(strategy: Any, value_subject: str, key_subject: str, url: str) -> None:
    serde = sl.serde.avro(V1, registry=url, subject_name_strategy=strategy, auto_register=True)
    assert serde.subject("orders") == value_subject and serde.subject("orders", "key") == key_subject
    for ctx in (VALUE, KEY):
        data = serde.serialize({"id": "a", "age": 1}, ctx)
        assert serde.deserialize(data, ctx) == {"id": "a", "age": 1}
    client, _ = registry_client(url)
    assert sorted(client.get_subjects()) == sorted({value_subject, key_subject})
    sid = struct.unpack(">I", data[1:5])[0]
    assert client.get_latest_version(key_subject).schema_id == sid


def test_strategy_errors_come_at_construction(url: str) -> None:
    with pytest.raises(ConfigError, match="unknown subject name strategy 'topics'"):
        sl.serde.avro(V1, registry=url, subject_name_strategy="topics")
    with pytest.raises(ConfigError, match="needs a named schema"):
        sl.serde.avro("string", registry=url, subject_name_strategy="record")
    with pytest.raises(ConfigError, match="needs the schema"):
        sl.serde.avro(registry=url, subject_name_strategy="topic_record")


# -- registration and the caches ----------------------------------------------------------------
def test_without_auto_register_the_schema_must_be_registered(url: str) -> None:
    serde = sl.serde.avro(V1, registry=url)
    with pytest.raises(SchemaNotRegisteredError, match="subject 'orders-value'.*auto_register=True") as info:
        serde.serialize({"id": "a", "age": 1}, VALUE)
    assert info.value.subject == "orders-value" and info.value.url == url
    assert isinstance(info.value, SerializationError)  # a record error under on_error
    sid = serde.register("orders")
    data = serde.serialize({"id": "a", "age": 1}, VALUE)
    assert struct.unpack(">I", data[1:5])[0] == sid
    client, _ = registry_client(url)
    assert client.get_latest_version("orders-value").schema_id == sid  # nothing registered twice


def test_a_registered_schema_found_by_another_serde_and_the_latest_when_no_schema_is_given(url: str) -> None:
    client, _ = registry_client(url)
    first = sl.serde.avro(V1, registry=url)
    first.register("orders")
    newer = client.register_schema("orders-value", Schema(sl.serde.avro(V2_ADDED, registry=url).schema_str,
                                                          "AVRO"))
    latest = sl.serde.avro(registry=url)  # produces with the subject's latest
    data = latest.serialize({"id": "a", "age": 2, "email": None, "tier": "x"}, VALUE)
    assert struct.unpack(">I", data[1:5])[0] == newer
    assert first.deserialize(data, VALUE) == {"id": "a", "age": 2}
    with pytest.raises(SchemaNotRegisteredError, match="subject 'nothing-value'"):
        latest.serialize({"id": "a"}, sl.serde.SerializationContext("nothing", "value"))


def test_ids_and_writer_schemas_are_looked_up_once_then_cached(url: str) -> None:
    client, _ = registry_client(url)
    sl.serde.avro(V1, registry=url).register("orders")
    counting = Counting(client)
    serde = sl.serde.avro(V1, registry=counting)
    datas = [serde.serialize({"id": str(i), "age": i}, VALUE) for i in range(1000)]
    assert counting.calls == ["lookup_schema"]
    reader = sl.serde.avro(V2_ADDED, registry=counting)
    assert [reader.deserialize(d, VALUE)["age"] for d in datas] == list(range(1000))
    assert counting.calls == ["lookup_schema", "get_schema"]
    # another topic is another subject: one more lookup; it is not registered there, a
    # schema.conflict: the On-Error Resolve policy asks for the subject's latest once, then blocks
    other = sl.serde.SerializationContext("other", "value")
    with pytest.raises(SchemaNotRegisteredError):
        serde.serialize({"id": "a", "age": 1}, other)
    assert counting.calls == ["lookup_schema", "get_schema", "lookup_schema", "get_latest_version"]


def test_mock_urls_share_one_registry_per_process_and_registry_settings(url: str) -> None:
    a, _ = registry_client(url)
    b, _ = registry_client({"url": url})
    assert a is b and registry_client(url + "-other")[0] is not a
    forget_mock(url + "-other")
    with pytest.raises(ConfigError, match="STREAMLET_SCHEMA_REGISTRY_URL"):
        registry_client(None)
    with pytest.raises(ConfigError, match="must start with"):
        registry_client("ftp://x")
    with pytest.raises(ConfigError, match="invalid Avro schema"):
        sl.serde.avro({"type": "record", "name": "X", "fields": [{"name": "a", "type": "nope"}]}, registry=url)


def test_the_registry_url_comes_from_the_environment(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMLET_SCHEMA_REGISTRY_URL", url)
    serde = sl.serde.avro(V1, auto_register=True)
    assert serde.url == url and serde.client is registry_client(url)[0]


def test_without_any_registry_the_serde_is_made_and_its_first_use_says_how_to_set_one(
        url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STREAMLET_SCHEMA_REGISTRY_URL", raising=False)
    serde = sl.serde.avro(V1, auto_register=True)  # a script loads (describe, topics) without one
    for use in (lambda: serde.serialize({"id": "a", "age": 1}, VALUE),
                lambda: serde.deserialize(b"\x00\x00\x00\x00\x01\x02a\x02", VALUE)):
        with pytest.raises(SchemaRegistryUnavailableError, match="no schema registry.*STREAMLET_SCHEMA_REGISTRY_URL"):
            use()
    monkeypatch.setenv("STREAMLET_SCHEMA_REGISTRY_URL", url)  # set later: found on first use
    assert serde.deserialize(serde.serialize({"id": "a", "age": 1}, VALUE), VALUE) == {"id": "a", "age": 1}
    assert serde.url == url


# -- specific records ---------------------------------------------------------------------------
class Status(enum.Enum):
    NEW = "new"
    PAID = "paid"


@dataclasses.dataclass
class Line:
    sku: str
    qty: int


@dataclasses.dataclass
class Address:
    street: str
    city: str


@dataclasses.dataclass
class Order:
    id: str
    amount: Decimal
    status: Status
    lines: list[Line]
    ship_to: Optional[Address]
    placed: dt.datetime
    note: str = ""


ORDER = {"type": "record", "name": "Order", "namespace": "shop", "fields": [
    {"name": "id", "type": "string"},
    {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
    {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID"]}},
    {"name": "lines", "type": {"type": "array", "items": {"type": "record", "name": "Line", "fields": [
        {"name": "sku", "type": "string"}, {"name": "qty", "type": "int"}]}}},
    {"name": "ship_to", "type": ["null", {"type": "record", "name": "Address", "fields": [
        {"name": "street", "type": "string"}, {"name": "city", "type": "string"}]}], "default": None},
    {"name": "placed", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "note", "type": "string", "default": ""},
]}


def test_specific_records_are_dataclass_instances_in_and_out(url: str) -> None:
    serde = sl.serde.avro(ORDER, registry=url, record_type=Order, auto_register=True)
    placed = dt.datetime(2026, 1, 2, 3, 4, 5, 6000, UTC)
    for ship_to in (Address("Main St", "Berlin"), None):
        order = Order("o-1", Decimal("19.99"), Status.PAID, [Line("a", 2), Line("b", 1)], ship_to, placed)
        data = serde.serialize(order, VALUE)
        back = serde.deserialize(data, VALUE)
        assert back == order and isinstance(back.lines[0], Line) and back.status is Status.PAID
        # the same bytes are a generic record to a generic serde
        generic = sl.serde.avro(registry=url).deserialize(data, VALUE)
        assert generic["status"] == "PAID" and generic["lines"] == [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 1}]
    assert serde.name == "avro(Order)"
    with pytest.raises(SerializationError, match="expected a Order, got dict"):
        serde.serialize({"id": "x"}, VALUE)


def test_a_dataclass_that_does_not_match_its_schema_fails_at_construction(url: str) -> None:
    @dataclasses.dataclass
    class Missing:
        id: str

    @dataclasses.dataclass
    class Extra:
        id: str
        age: int
        nickname: str

    with pytest.raises(ConfigError, match=r"schema fields \['age'\] are not fields of Missing"):
        sl.serde.avro(V1, registry=url, record_type=Missing)
    with pytest.raises(ConfigError, match=r"Extra fields \['nickname'\] are not in the schema"):
        sl.serde.avro(V1, registry=url, record_type=Extra)
    with pytest.raises(ConfigError, match="must be a dataclass"):
        sl.serde.avro(V1, registry=url, record_type=dict)
    with pytest.raises(ConfigError, match="needs the record's schema"):
        sl.serde.avro(registry=url, record_type=Missing)


def test_to_dict_and_from_dict_bind_any_class(url: str) -> None:
    serde = sl.serde.avro(V1, registry=url, auto_register=True, to_dict=lambda t: {"id": t[0], "age": t[1]},
                          from_dict=lambda d: (d["id"], d["age"]))
    assert serde.deserialize(serde.serialize(("u", 3), VALUE), VALUE) == ("u", 3)


# -- bad bytes and unknown ids ------------------------------------------------------------------
def test_unknown_ids_and_garbage_bytes_are_serialization_errors_naming_topic_and_id(url: str) -> None:
    serde = sl.serde.avro(V1, registry=url, auto_register=True)
    good = serde.serialize({"id": "a", "age": 1}, VALUE)
    with pytest.raises(UnknownSchemaIdError, match="schema id 4242 is not in the schema registry") as info:
        serde.deserialize(b"\x00" + struct.pack(">I", 4242) + good[5:], VALUE)
    assert info.value.schema_id == 4242 and isinstance(info.value, SerializationError)
    for bad, pattern in [(b"{\"json\": 1}", "not in the Confluent wire format"),
                         (b"\x00\x00\x01", "not in the Confluent wire format"),
                         (good[:-1], "could not deserialize the value of topic 'orders' with schema id"),
                         (good + b"\x00", "bytes left after the record"),
                         (good[:5] + b"\x08ab", "EOFError")]:
        with pytest.raises(SerializationError, match=pattern):
            serde.deserialize(bad, VALUE)
    with pytest.raises(SerializationError, match="could not serialize the value for topic 'orders'"):
        serde.serialize({"id": "a", "age": "not an int"}, VALUE)


def test_an_unreachable_registry_is_not_a_record_fault() -> None:
    dead = {"url": "http://127.0.0.1:9", "max.retries": 0, "timeout": 2}
    serde = sl.serde.avro(V1, registry=dead)
    with pytest.raises(SchemaRegistryUnavailableError, match="could not be reached") as info:
        serde.deserialize(b"\x00\x00\x00\x00\x01\x02a\x02", VALUE)
    assert info.value.record_fault is False and info.value.schema_id == 1
    with pytest.raises(SchemaRegistryUnavailableError, match="subject 'orders-value'"):
        serde.serialize({"id": "a", "age": 1}, VALUE)
