"""serde.avro with ``auto_register=True`` when the registry answers the registration with 409: a
registry that refuses the second of two concurrent first registrations of a subject ("already
exists", as Apicurio Registry does) leaves the schema registered, so the serde looks it up and goes
on; a 409 for an incompatible schema stays a refusal."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError as ClientError

import streamlet as sl
from streamlet.errors import SchemaRegistryError, SchemaRegistryUnavailableError

ORDER = {"type": "record", "name": "Order", "namespace": "shop",
         "fields": [{"name": "id", "type": "string"}, {"name": "amount", "type": "double"}]}
VALUE = sl.serde.SerializationContext("orders", sl.serde.VALUE)


class RacingClient:
    """A registry client whose registrations lose a race: another process registers the same schema
    first, then this one is refused with 409 (``winner=False``: refused as incompatible, nothing
    registered)."""

    def __init__(self, url: str, winner: bool = True) -> None:
        self.inner = SchemaRegistryClient.new_client({"url": url})
        self.winner = winner
        self.calls: list[str] = []

    def register_schema(self, subject: str, schema: Schema, normalize_schemas: bool = False) -> int:
        self.calls.append("register")
        if self.winner:
            self.inner.register_schema(subject, schema)  # the other process's registration
            raise ClientError(409, 409, f"An artifact with ID '{subject}' already exists.")
        raise ClientError(409, 409, "Incompatible artifact")

    def lookup_schema(self, subject: str, schema: Schema, normalize_schemas: bool = False, **kw: Any) -> Any:
        self.calls.append("lookup")
        return self.inner.lookup_schema(subject, schema)

    def get_schema(self, schema_id: int, *args: Any, **kw: Any) -> Any:
        return self.inner.get_schema(schema_id)

    def get_latest_version(self, subject: str, *args: Any, **kw: Any) -> Any:
        return self.inner.get_latest_version(subject)


@pytest.fixture
def url(request: pytest.FixtureRequest) -> str:
    """A ``mock://`` URL: each RacingClient gets a registry of its own."""
    return f"mock://register-conflict-{request.node.name.lower()}"


def test_a_lost_registration_race_goes_on_with_the_registered_id(url: str) -> None:
    racing = RacingClient(url)
    serde = sl.serde.avro(ORDER, registry=racing, auto_register=True)
    data = serde.serialize({"id": "o1", "amount": 2.5}, VALUE)
    registered = racing.inner.get_latest_version("orders-value").schema_id
    assert struct.unpack(">bI", data[:5]) == (0, registered)
    assert racing.calls == ["register", "lookup"]
    assert sl.serde.avro(ORDER, registry=racing).deserialize(data, VALUE) == {"id": "o1", "amount": 2.5}


def test_a_409_for_an_incompatible_schema_stays_a_refusal(url: str) -> None:
    racing = RacingClient(url, winner=False)
    serde = sl.serde.avro(ORDER, registry=racing, auto_register=True)
    refused = "refused registering the schema under subject 'orders-value'"
    with pytest.raises(SchemaRegistryError, match=refused) as info:
        serde.serialize({"id": "o1", "amount": 2.5}, VALUE)
    assert not isinstance(info.value, SchemaRegistryUnavailableError)
    assert "Incompatible artifact" in str(info.value) and racing.calls == ["register", "lookup"]
