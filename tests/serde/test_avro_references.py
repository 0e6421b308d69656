"""serde.avro with schema references: reading records whose writer schema uses types registered under
other subjects (fetched once, recursively), producing with ``references=``, and the errors — on
confluent-kafka's ``mock://`` registry and on the embedded HTTP registry (``RegistryServer``), with
confluent-kafka's own AvroSerializer / AvroDeserializer as the independent other side."""

from __future__ import annotations

import json
import re
from typing import Any, Iterator

import pytest
from confluent_kafka.schema_registry import Schema, SchemaReference
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer

import streamlet as sl
from streamlet.broker.registry import RegistryServer
from streamlet.errors import ConfigError, SchemaRegistryError, SerializationError
from streamlet.serde.registry import forget_mock, registry_client

VALUE = sl.serde.SerializationContext("orders", sl.serde.VALUE)

ADDRESS = {"type": "record", "name": "Address", "namespace": "shop",
           "fields": [{"name": "city", "type": "string"}, {"name": "zip", "type": "string"}]}
TIER = {"type": "enum", "name": "Tier", "namespace": "shop", "symbols": ["GOLD", "SILVER"]}
CUSTOMER = {"type": "record", "name": "Customer", "namespace": "shop",
            "fields": [{"name": "name", "type": "string"}, {"name": "address", "type": "shop.Address"},
                       {"name": "tier", "type": "shop.Tier"}]}
ORDER = {"type": "record", "name": "Order", "namespace": "shop",
         "fields": [{"name": "id", "type": "string"}, {"name": "customer", "type": "shop.Customer"},
                    {"name": "ship_to", "type": ["null", "shop.Address"], "default": None}]}
#: Order references Customer (which references Address and Tier) and Address: a diamond
ORDER_REFS = [SchemaReference("shop.Customer", "customer-value", 1),
              SchemaReference("shop.Address", "address-value", 1)]
VALUE_OF_ORDER = {"id": "o-1", "customer": {"name": "Ann", "address": {"city": "Oslo", "zip": "0150"},
                                            "tier": "GOLD"},
                  "ship_to": {"city": "Bergen", "zip": "5003"}}


class Counting:
    """A registry client that counts the calls made through it."""

    def __init__(self, client: Any) -> None:
        self.client, self.calls = client, []
        self.config = {"url": "counting"}

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self.client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return fn(*args, **kwargs)

        return call


@pytest.fixture(params=["mock", "http"])
def url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh registry: a shared ``mock://`` one, or the embedded HTTP registry."""
    if request.param == "http":
        with RegistryServer() as server:
            yield server.url
        return
    name = "mock://" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())
    yield name
    forget_mock(name)


def text(schema: Any) -> str:
    return json.dumps(schema)


def register_types(client: Any) -> int:
    """Address, Tier, then Customer (referencing both); the id of Customer."""
    client.register_schema("address-value", Schema(text(ADDRESS), "AVRO"))
    client.register_schema("tier-value", Schema(text(TIER), "AVRO"))
    return int(client.register_schema("customer-value", Schema(text(CUSTOMER), "AVRO", [
        SchemaReference("shop.Address", "address-value", 1), SchemaReference("shop.Tier", "tier-value", 1)])))


def test_records_written_by_confluent_with_references_are_read_and_each_reference_fetched_once(url: str) -> None:
    client, _ = registry_client(url)
    register_types(client)
    writer = AvroSerializer(client, Schema(text(ORDER), "AVRO", ORDER_REFS))
    data = writer(VALUE_OF_ORDER, VALUE)
    counting = Counting(client)
    reader = sl.serde.avro(registry=counting)  # no reader schema: as written
    assert [reader.deserialize(data, VALUE) for _ in range(3)] == [VALUE_OF_ORDER] * 3
    # the schema by id once; customer, address and tier once each though address is reached twice
    assert counting.calls.count("get_schema") == 1
    assert sorted(counting.calls) == ["get_schema", "get_version", "get_version", "get_version"]


def test_produce_with_references_given_as_tuples_or_schema_references_read_by_confluent(url: str) -> None:
    client, _ = registry_client(url)
    register_types(client)
    as_tuples = [("shop.Customer", "customer-value", 1), ("shop.Address", "address-value", 1)]
    serde = sl.serde.avro(ORDER, registry=url, references=as_tuples, auto_register=True)
    data = serde.serialize(VALUE_OF_ORDER, VALUE)
    registered = client.get_latest_version("orders-value")
    assert [(r.name, r.subject, r.version) for r in registered.schema.references] == as_tuples
    assert int.from_bytes(data[1:5], "big") == registered.schema_id
    assert AvroDeserializer(client)(data, VALUE) == VALUE_OF_ORDER
    # looked up (auto_register off) by the same schema and references: the same id
    lookup = sl.serde.avro(ORDER, registry=url, references=ORDER_REFS)
    assert lookup.serialize(VALUE_OF_ORDER, VALUE) == data
    assert lookup.deserialize(data, VALUE) == VALUE_OF_ORDER


def test_a_reader_schema_with_references_resolves_an_older_writer(url: str) -> None:
    client, _ = registry_client(url)
    register_types(client)
    old = {**ORDER, "fields": ORDER["fields"][:2]}  # without ship_to
    data = AvroSerializer(client, Schema(text(old), "AVRO", ORDER_REFS[:1]))(
        {"id": "o-2", "customer": VALUE_OF_ORDER["customer"]}, VALUE)
    reader = sl.serde.avro(ORDER, registry=url, references=ORDER_REFS)
    assert reader.deserialize(data, VALUE) == {"id": "o-2", "customer": VALUE_OF_ORDER["customer"],
                                               "ship_to": None}


def test_producing_the_latest_registered_schema_with_references(url: str) -> None:
    client, _ = registry_client(url)
    register_types(client)
    client.register_schema("orders-value", Schema(text(ORDER), "AVRO", ORDER_REFS))
    latest = sl.serde.avro(registry=url)  # no schema: the subject's latest, references and all
    data = latest.serialize(VALUE_OF_ORDER, VALUE)
    assert AvroDeserializer(client)(data, VALUE) == VALUE_OF_ORDER


CREATED = {"type": "record", "name": "Created", "namespace": "shop",
           "fields": [{"name": "id", "type": "string"}, {"name": "amount", "type": "double"}]}
CANCELLED = {"type": "record", "name": "Cancelled", "namespace": "shop",
             "fields": [{"name": "id", "type": "string"}, {"name": "reason", "type": "string"}]}


def test_a_union_of_referenced_types_puts_several_event_types_in_one_topic(url: str) -> None:
    client, _ = registry_client(url)
    client.register_schema("shop.Created", Schema(text(CREATED), "AVRO"))
    client.register_schema("shop.Cancelled", Schema(text(CANCELLED), "AVRO"))
    refs = [("shop.Created", "shop.Created", 1), ("shop.Cancelled", "shop.Cancelled", 1)]
    events = sl.serde.avro(["shop.Created", "shop.Cancelled"], registry=url, references=refs, auto_register=True)
    created, cancelled = {"id": "o-1", "amount": 9.5}, {"id": "o-1", "reason": "changed my mind"}
    datas = [events.serialize(created, VALUE), events.serialize(cancelled, VALUE)]
    assert datas[0][5:6] == b"\x00" and datas[1][5:6] == b"\x02"  # the union branch: Avro's index
    assert [events.deserialize(d, VALUE) for d in datas] == [created, cancelled]
    as_written = sl.serde.avro(registry=url)
    assert [as_written.deserialize(d, VALUE) for d in datas] == [created, cancelled]
    # a single referenced type as the whole schema
    only = sl.serde.avro("shop.Cancelled", registry=url, references=refs[1:], auto_register=True)
    other = sl.serde.SerializationContext("cancellations", sl.serde.VALUE)
    assert as_written.deserialize(only.serialize(cancelled, other), other) == cancelled


def test_a_missing_referenced_subject_is_a_registry_error_naming_it(url: str) -> None:
    client, _ = registry_client(url)
    client.register_schema("address-value", Schema(text(ADDRESS), "AVRO"))
    serde = sl.serde.avro(CUSTOMER, registry=url, auto_register=True,
                          references=[("shop.Address", "address-value", 1), ("shop.Tier", "tier-value", 1)])
    with pytest.raises(SchemaRegistryError, match="tier-value"):
        serde.serialize({"name": "Ann", "address": {"city": "Oslo", "zip": "1"}, "tier": "GOLD"}, VALUE)
    # a reference to a version that does not exist
    wrong = sl.serde.avro(CUSTOMER, registry=url, auto_register=True,
                          references=[("shop.Address", "address-value", 7), ("shop.Tier", "tier-value", 1)])
    with pytest.raises(SchemaRegistryError, match="address-value.*version 7|version 7.*address-value"):
        wrong.serialize({"name": "Ann", "address": {"city": "Oslo", "zip": "1"}, "tier": "GOLD"}, VALUE)


def test_a_value_that_does_not_fit_a_referenced_type_is_a_serialization_error(url: str) -> None:
    client, _ = registry_client(url)
    register_types(client)
    serde = sl.serde.avro(CUSTOMER, registry=url, auto_register=True,
                          references=[("shop.Address", "address-value", 1), ("shop.Tier", "tier-value", 1)])
    with pytest.raises(SerializationError, match="could not serialize"):
        serde.serialize({"name": "Ann", "address": {"city": "Oslo", "zip": "1"}, "tier": "BRONZE"}, VALUE)


def test_reference_arguments_are_checked_at_construction() -> None:
    url = "mock://references-args"
    with pytest.raises(ConfigError, match="version"):
        sl.serde.avro(ORDER, registry=url, references=[("shop.Customer", "customer-value", 0)])
    with pytest.raises(ConfigError, match="subject"):
        sl.serde.avro(ORDER, registry=url, references=[("shop.Customer", "", 1)])
    with pytest.raises(ConfigError, match="SchemaReference"):
        sl.serde.avro(ORDER, registry=url, references=["shop.Customer"])
    with pytest.raises(ConfigError, match="pass that schema"):
        sl.serde.avro(registry=url, references=ORDER_REFS)
    with pytest.raises(NotImplementedError, match="to_dict"):
        sl.serde.avro(ORDER, registry=url, references=ORDER_REFS, record_type=dict)
    forget_mock(url)


def test_a_topology_reads_and_writes_values_whose_schemas_have_references(url: str) -> None:
    """Orders (referencing Customer and Address) in, through the TestDriver; their customer out, with
    Customer's own schema and references."""
    client, _ = registry_client(url)
    register_types(client)
    sl.serde.avro(ORDER, registry=url, references=ORDER_REFS).register("orders")  # as the orders' producer
    customer_refs = [("shop.Address", "address-value", 1), ("shop.Tier", "tier-value", 1)]
    app = sl.App("avro-refs")
    (app.stream("orders", value_serde=sl.serde.avro(ORDER, registry=url, references=ORDER_REFS))
        .map_values(lambda v: v["customer"])
        .to("customers", value_serde=sl.serde.avro(CUSTOMER, registry=url, references=customer_refs,
                                                  auto_register=True)))
    with sl.testing.TestDriver(app) as d:
        d.send("orders", key="o-1", value=VALUE_OF_ORDER)
        assert d.read("customers") == [("o-1", VALUE_OF_ORDER["customer"])]
        (_, data, _, _), = d.log["customers"][0]
    # what was written is Customer's registered id, and confluent-kafka's deserializer reads it
    assert int.from_bytes(data[1:5], "big") == client.get_latest_version("customers-value").schema_id
    ctx = sl.serde.SerializationContext("customers", sl.serde.VALUE)
    assert AvroDeserializer(client)(data, ctx) == VALUE_OF_ORDER["customer"]
