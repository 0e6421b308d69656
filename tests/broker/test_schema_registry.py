"""The embedded Schema Registry over HTTP, driven by confluent-kafka's real ``SchemaRegistryClient``:
register, get by id, latest and versions, look-up, compatibility, Confluent's error codes — and the
normal path of serde.avro, which sends it no request at all."""

from __future__ import annotations

import json
import struct
from typing import Any, Iterator

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

import streamlet as sl
from streamlet.broker.registry import RegistryServer
from streamlet.broker.registry_compat import incompatibilities, problems

V1 = {"type": "record", "name": "User", "namespace": "shop",
      "fields": [{"name": "id", "type": "string"}, {"name": "age", "type": "int"}]}
V2 = {**V1, "fields": V1["fields"] + [{"name": "email", "type": ["null", "string"], "default": None}]}
RETYPED = {**V1, "fields": [{"name": "id", "type": "string"}, {"name": "age", "type": "string"}]}
RENAMED = {**V1, "name": "Person"}


def avro(schema: Any) -> Schema:
    return Schema(json.dumps(schema), "AVRO")


@pytest.fixture
def registry() -> Iterator[RegistryServer]:
    with RegistryServer() as server:
        yield server


@pytest.fixture
def client(registry: RegistryServer) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": registry.url, "max.retries": 0})


def sr_error(fn: Any) -> tuple[int, int]:
    with pytest.raises(SchemaRegistryError) as info:
        fn()
    return info.value.http_status_code, info.value.error_code


def test_register_get_by_id_latest_versions_and_lookup(client: SchemaRegistryClient) -> None:
    id1 = client.register_schema("users-value", avro(V1))
    assert client.register_schema("users-value", avro(V1)) == id1  # the same schema: the same id
    id2 = client.register_schema("users-value", avro(V2))
    assert id2 != id1
    # the same schema under another subject keeps its id, in another spelling too (normalized JSON)
    other = SchemaRegistryClient({"url": client._rest_client.base_urls[0]})
    assert other.register_schema("people-value", Schema(json.dumps(V1, indent=2), "AVRO")) == id1
    assert json.loads(other.get_schema(id2).schema_str) == V2
    latest = other.get_latest_version("users-value")
    assert (latest.schema_id, latest.version, latest.subject) == (id2, 2, "users-value")
    assert other.get_version("users-value", 1).schema_id == id1
    assert other.get_versions("users-value") == [1, 2]
    assert sorted(other.get_subjects()) == ["people-value", "users-value"]
    found = other.lookup_schema("users-value", avro(V1))
    assert (found.schema_id, found.version) == (id1, 1)
    assert sorted(other.get_subjects_by_schema_id(id1)) == ["people-value", "users-value"]
    assert other.delete_version("users-value", 2) == 2 and other.get_versions("users-value") == [1]
    assert other.delete_subject("people-value") == [1] and other.get_subjects() == ["users-value"]


def test_confluent_error_codes(client: SchemaRegistryClient) -> None:
    client.register_schema("users-value", avro(V1))
    assert sr_error(lambda: client.get_schema(4242)) == (404, 40403)
    assert sr_error(lambda: client.get_latest_version("nobody-value")) == (404, 40401)
    assert sr_error(lambda: client.get_version("users-value", 7)) == (404, 40402)
    assert sr_error(lambda: client.lookup_schema("users-value", avro(V2))) == (404, 40403)
    assert sr_error(lambda: client.lookup_schema("nobody-value", avro(V2))) == (404, 40401)
    assert sr_error(lambda: client.register_schema("users-value", avro(RETYPED))) == (409, 409)
    assert sr_error(lambda: client.register_schema("x", Schema("{not json", "AVRO"))) == (422, 42201)
    assert sr_error(lambda: client.set_compatibility(level="SOMETIMES")) == (422, 42203)
    assert sr_error(lambda: client.get_compatibility("users-value")) == (404, 40408)


def test_compatibility_levels_get_put_and_test(client: SchemaRegistryClient) -> None:
    assert client.get_compatibility() == "BACKWARD"
    client.register_schema("users-value", avro(V1))
    assert client.test_compatibility("users-value", avro(V2)) is True
    assert client.test_compatibility("users-value", avro(RETYPED)) is False
    assert client.test_compatibility("users-value", avro(RENAMED)) is False  # the ksqlDB CTAS rename
    assert sr_error(lambda: client.register_schema("users-value", avro(RENAMED))) == (409, 409)
    client.set_compatibility("users-value", "NONE")
    assert client.get_compatibility("users-value") == "NONE" and client.get_compatibility() == "BACKWARD"
    client.register_schema("users-value", avro(RENAMED))  # accepted now
    client.set_compatibility(level="FULL")
    assert client.get_compatibility() == "FULL"
    client.register_schema("strict-value", avro(V2))
    # V1 lacks the defaulted field: new readers cope (backward), old readers of V2 data... also cope
    assert client.test_compatibility("strict-value", avro(V1)) is True
    assert client.test_compatibility("strict-value", avro(RETYPED)) is False


def test_avro_resolution_rules() -> None:
    assert problems(V2, V1) == [] and problems(V1, V2) == []
    assert problems(RETYPED, V1) == ["/age: the writer's int cannot be read as string"]
    promoted = {**V1, "fields": [{"name": "id", "type": "bytes"}, {"name": "age", "type": "double"}]}
    assert problems(promoted, V1) == []
    required = {**V1, "fields": V1["fields"] + [{"name": "must", "type": "string"}]}
    assert problems(required, V1) == ["/must: a reader field with no default is not in the writer"]
    assert problems(RENAMED, V1) == ["/: record User read as Person"]
    aliased = {**RENAMED, "aliases": ["User"]}
    assert problems(aliased, V1) == []
    e1 = {"type": "enum", "name": "E", "symbols": ["A", "B"]}
    assert problems({**e1, "symbols": ["A"]}, e1) != [] and problems({**e1, "symbols": ["A"], "default": "A"}, e1) == []
    assert problems(["null", "int"], "int") == [] and problems("int", ["null", "int"]) != []
    recursive = {"type": "record", "name": "Node", "fields": [
        {"name": "v", "type": "int"}, {"name": "next", "type": ["null", "Node"], "default": None}]}
    assert problems(recursive, recursive) == []
    assert incompatibilities("BACKWARD_TRANSITIVE", V2, [RETYPED, V1]) != []
    assert incompatibilities("BACKWARD", V2, [RETYPED, V1]) == []


def test_serde_avro_through_http_and_no_request_in_the_normal_path(registry: RegistryServer) -> None:
    """After warm-up, 10,000 records in and out of a topology (Avro keys and values, through the
    HTTP registry) send the registry no request at all."""
    SchemaRegistryClient({"url": registry.url}).register_schema("orders-value", avro(V1))
    key = sl.serde.avro("string", registry=registry.url, auto_register=True)
    app = sl.App("no-requests")
    (app.stream("orders", key_serde=key, value_serde=sl.serde.avro(V1, registry=registry.url))
        .map_values(lambda v: {**v, "email": None, "age": v["age"] + 1})
        .to("out", key_serde=key, value_serde=sl.serde.avro(V2, registry=registry.url, auto_register=True)))
    with sl.testing.TestDriver(app) as d:
        d.send("orders", key="warm", value={"id": "warm", "age": 0})
        assert d.read("out") == [("warm", {"id": "warm", "age": 1, "email": None})]
        warm = registry.requests
        assert warm > 0
        for i in range(10_000):
            d.send("orders", key=f"u{i % 100}", value={"id": str(i), "age": i})
        out = d.read("out")
        assert registry.requests == warm, registry.recent[-5:]
    assert len(out) == 10_000 and out[-1] == ("u99", {"id": "9999", "age": 10_000, "email": None})
    (_, vb, _, _) = d.log["out"][0][-1]
    assert struct.unpack(">I", vb[1:5])[0] == SchemaRegistryClient(
        {"url": registry.url}).get_latest_version("out-value").schema_id
