"""Schema references in the embedded Schema Registry: stored with the schema and served back (by id, by
version, on look-up), checked on register, used by the compatibility checks, ``referencedby``, and a
referenced version that cannot be deleted — through confluent-kafka's ``SchemaRegistryClient`` and raw
HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Iterator

import pytest
from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from streamlet.broker.registry import RegistryServer

ADDRESS = {"type": "record", "name": "Address", "namespace": "shop",
           "fields": [{"name": "city", "type": "string"}]}
ADDRESS_ZIP = {**ADDRESS, "fields": ADDRESS["fields"] + [{"name": "zip", "type": "string"}]}  # no default
ADDRESS_NOTE = {**ADDRESS, "fields": ADDRESS["fields"] + [{"name": "note", "type": ["null", "string"],
                                                           "default": None}]}
USER = {"type": "record", "name": "User", "namespace": "shop",
        "fields": [{"name": "id", "type": "string"}, {"name": "home", "type": "shop.Address"},
                   {"name": "work", "type": ["null", "Address"], "default": None}]}


def avro(schema: Any, *refs: tuple[str, str, int]) -> Schema:
    return Schema(json.dumps(schema), "AVRO", [SchemaReference(*r) for r in refs])


@pytest.fixture
def registry() -> Iterator[RegistryServer]:
    with RegistryServer() as server:
        yield server


@pytest.fixture
def client(registry: RegistryServer) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": registry.url, "max.retries": 0})


def http(registry: RegistryServer, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(registry.url + path, data=data, method=method,
                                 headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def sr_error(fn: Any) -> tuple[int, int]:
    with pytest.raises(SchemaRegistryError) as info:
        fn()
    return info.value.http_status_code, info.value.error_code


def test_references_are_stored_and_served_by_id_version_and_look_up(
        registry: RegistryServer, client: SchemaRegistryClient) -> None:
    client.register_schema("address-value", avro(ADDRESS))
    ref = ("shop.Address", "address-value", 1)
    sid = client.register_schema("users-value", avro(USER, ref))
    assert sid == client.register_schema("users-value", avro(USER, ref))  # the same schema and references
    wanted = [{"name": "shop.Address", "subject": "address-value", "version": 1}]
    assert http(registry, "GET", f"/schemas/ids/{sid}")[1]["references"] == wanted
    assert http(registry, "GET", "/subjects/users-value/versions/1")[1]["references"] == wanted
    # a schema without references is served without the key, as Confluent's
    assert "references" not in http(registry, "GET", "/schemas/ids/1")[1]
    fresh = SchemaRegistryClient({"url": registry.url})
    assert [(r.name, r.subject, r.version) for r in fresh.get_schema(sid).references] == [ref]
    found = fresh.lookup_schema("users-value", avro(USER, ref))
    assert found.schema_id == sid and found.schema.references[0].subject == "address-value"
    # the same text without its references is another schema: not found under the subject
    assert sr_error(lambda: fresh.lookup_schema("users-value", avro(USER)))[0] == 404


def test_a_reference_to_an_unregistered_version_or_a_malformed_one_is_refused(
        registry: RegistryServer, client: SchemaRegistryClient) -> None:
    assert sr_error(lambda: client.register_schema(
        "users-value", avro(USER, ("shop.Address", "address-value", 1)))) == (422, 42201)
    client.register_schema("address-value", avro(ADDRESS))
    assert sr_error(lambda: client.register_schema(
        "users-value", avro(USER, ("shop.Address", "address-value", 2)))) == (422, 42201)
    status, answer = http(registry, "POST", "/subjects/users-value/versions",
                          {"schema": json.dumps(USER), "references": [{"name": "shop.Address"}]})
    assert (status, answer["error_code"]) == (422, 42201) and "subject" in answer["message"]


def test_compatibility_sees_the_referenced_types(client: SchemaRegistryClient) -> None:
    client.register_schema("address-value", avro(ADDRESS))
    client.register_schema("address-value", avro(ADDRESS_NOTE))   # v2: an optional field
    client.set_compatibility("address-value", "NONE")
    client.register_schema("address-value", avro(ADDRESS_ZIP))    # v3: a required field
    client.register_schema("users-value", avro(USER, ("shop.Address", "address-value", 1)))
    # BACKWARD (the default): the new User reads old data; a referenced Address with a field without
    # default cannot read the old Address, one with an optional field can
    assert client.test_compatibility("users-value", avro(USER, ("shop.Address", "address-value", 2)))
    assert not client.test_compatibility("users-value", avro(USER, ("shop.Address", "address-value", 3)))
    assert sr_error(lambda: client.register_schema(
        "users-value", avro(USER, ("shop.Address", "address-value", 3))))[0] == 409
    assert client.register_schema("users-value", avro(USER, ("shop.Address", "address-value", 2))) > 0


def test_referenced_by_and_a_referenced_version_is_not_deleted(
        registry: RegistryServer, client: SchemaRegistryClient) -> None:
    client.register_schema("address-value", avro(ADDRESS))
    sid = client.register_schema("users-value", avro(USER, ("shop.Address", "address-value", 1)))
    assert http(registry, "GET", "/subjects/address-value/versions/1/referencedby") == (200, [sid])
    assert http(registry, "GET", "/subjects/users-value/versions/1/referencedby") == (200, [])
    assert sr_error(lambda: client.delete_version("address-value", 1)) == (422, 42206)
    assert sr_error(lambda: client.delete_subject("address-value")) == (422, 42206)
    client.delete_subject("users-value")
    assert client.delete_subject("address-value") == [1]
