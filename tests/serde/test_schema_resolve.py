"""The On-Error Resolve producer policy of serde.avro (DESIGN §7): classification, one lookup,
following a harmless change, blocking the rest, lenient waits, the circuit breaker, the counters —
on confluent-kafka's ``mock://`` registry, with a client that counts (and can fail) its calls."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema

import streamlet as sl
from streamlet.errors import (
    ConfigError,
    InvalidRecordDataError,
    SchemaCircuitOpenError,
    SchemaConflictError,
    SchemaNotRegisteredError,
    SchemaRegistryUnavailableError,
)
from streamlet.serde.registry import forget_mock, registry_client

VALUE = sl.serde.SerializationContext("orders", sl.serde.VALUE)
KEY = sl.serde.SerializationContext("orders", sl.serde.KEY)

OURS = {"type": "record", "name": "Order", "namespace": "shop",
        "fields": [{"name": "id", "type": "string"}, {"name": "amount", "type": "double"}]}
#: what a ksqlDB CTAS registers: another record name, another field order, an added nullable field
CTAS = {"type": "record", "name": "KsqlDataSourceSchema", "namespace": "io.confluent.ksql.avro_schemas",
        "fields": [{"name": "amount", "type": "double"}, {"name": "id", "type": "string"},
                   {"name": "note", "type": ["null", "string"], "default": None}]}
RETYPED = {"type": "record", "name": "Order", "namespace": "shop",
           "fields": [{"name": "id", "type": "string"}, {"name": "amount", "type": "string"}]}


class Unreachable(Exception):
    """What the client raises when the registry's port is closed (no HTTP status)."""


class Client:
    """The mock registry client, counting the registry calls; ``down`` makes the next N calls fail
    as if the registry were unreachable."""

    def __init__(self, url: str) -> None:
        self.client, _ = registry_client(url)
        self.config = {"url": url}
        self.calls: list[str] = []
        self.down = 0

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self.client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            if name == "clear_latest_caches":
                return fn(*args, **kwargs)
            self.calls.append(name)
            if self.down:
                self.down -= 1
                raise Unreachable("connection refused")
            return fn(*args, **kwargs)

        return call


@pytest.fixture
def url(request: pytest.FixtureRequest) -> Any:
    name = "mock://" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())
    yield name
    forget_mock(name)


def register(url: str, subject: str, schema: Any) -> int:
    client, _ = registry_client(url)
    import orjson

    return int(client.register_schema(subject, Schema(orjson.dumps(schema).decode(), "AVRO")))


def read(url: str, data: bytes) -> Any:
    return sl.serde.avro(registry=url).deserialize(data, VALUE)


def counters(serde: Any) -> dict[str, int]:
    return {name: serde.resolver.metrics.get(name) for name in (
        "sr.lookup.ok", "sr.lookup.fail", "schema.conflict.key", "schema.conflict.value",
        "produce.retry.on_error", "produce.blocked", "produce.circuit.open", "produce.held") if
        serde.resolver.metrics.get(name)}


def test_the_normal_path_asks_the_registry_nothing_once_the_id_is_cached(url: str) -> None:
    register(url, "orders-value", OURS)
    client = Client(url)
    serde = sl.serde.avro(OURS, registry=client)
    for i in range(10_000):
        serde.serialize({"id": str(i), "amount": float(i)}, VALUE)
    assert client.calls == ["lookup_schema"]
    assert counters(serde) == {}


def test_a_ctas_race_is_followed_after_one_lookup_and_one_resend(url: str, caplog: Any) -> None:
    """The subject's latest was registered by a ksqlDB CTAS (other name, order, an added nullable field);
    ours was never registered there: a schema.conflict, one lookup, the value follows."""
    caplog.set_level("INFO", "streamlet.schema")
    ctas_id = register(url, "orders-value", CTAS)
    client = Client(url)
    serde = sl.serde.avro(OURS, registry=client)
    data = serde.serialize({"id": "o-1", "amount": 2.5}, VALUE)
    assert int.from_bytes(data[1:5], "big") == ctas_id
    assert read(url, data) == {"amount": 2.5, "id": "o-1", "note": None}
    assert client.calls == ["lookup_schema", "get_latest_version"]
    assert counters(serde) == {"schema.conflict.value": 1, "sr.lookup.ok": 1, "produce.retry.on_error": 1}
    for i in range(1000):  # the next records follow without asking again
        serde.serialize({"id": str(i), "amount": 1.0}, VALUE)
    assert client.calls == ["lookup_schema", "get_latest_version"]
    lines = [r for r in caplog.records if r.name == "streamlet.schema"]
    assert [r.event for r in lines] == ["schema.conflict.value", "sr.lookup.ok", "produce.retry.on_error"]
    assert lines[-1].resolved_subject == "orders-value" and lines[-1].schema_id == ctas_id
    assert lines[-1].version == 1 and "record name shop.Order -> io.confluent" in lines[-1].getMessage()


def test_specific_records_and_keys_fail_fast_with_the_diff(url: str) -> None:
    @dataclasses.dataclass
    class Order:
        id: str
        amount: float

    register(url, "orders-value", CTAS)
    register(url, "orders-key", {**CTAS, "name": "Key"})
    specific = sl.serde.avro(OURS, registry=url, record_type=Order)
    with pytest.raises(SchemaConflictError, match=r"specific records \(Order\) never follow") as err:
        specific.serialize(Order("o-1", 1.0), VALUE)
    assert err.value.error_class == "schema.conflict" and err.value.version == 1
    assert "record name shop.Order -> io.confluent.ksql.avro_schemas.KsqlDataSourceSchema" in err.value.diff
    key = sl.serde.avro(OURS, registry=url)
    with pytest.raises(SchemaConflictError, match="keys never follow"):
        key.serialize({"id": "o-1", "amount": 1.0}, KEY)
    assert counters(key) == {"schema.conflict.key": 1, "sr.lookup.ok": 1, "produce.blocked": 1}


def test_a_type_change_always_blocks(url: str) -> None:
    register(url, "orders-value", RETYPED)
    serde = sl.serde.avro(OURS, registry=url)
    with pytest.raises(SchemaConflictError, match="type double -> string at amount") as err:
        serde.serialize({"id": "o-1", "amount": 1.0}, VALUE)
    assert err.value.diff == ["type double -> string at amount"]
    assert str(err.value).startswith("[schema.conflict]")


def test_invalid_data_blocks_at_once_without_asking_the_registry(url: str) -> None:
    register(url, "orders-value", OURS)
    client = Client(url)
    serde = sl.serde.avro(OURS, registry=client)
    serde.serialize({"id": "a", "amount": 1.0}, VALUE)
    for bad, why in [({"id": "a"}, "no value and no default for amount"), ({"id": 7, "amount": 1.0}, "string")]:
        with pytest.raises(InvalidRecordDataError, match=why) as err:
            serde.serialize(bad, VALUE)
        assert err.value.error_class == "data.invalid" and str(err.value).startswith("[data.invalid]")
    assert client.calls == ["lookup_schema"]
    assert counters(serde) == {"produce.blocked": 2}


def test_observe_only_classifies_and_counts_but_never_looks_up(url: str) -> None:
    register(url, "orders-value", CTAS)
    client = Client(url)
    serde = sl.serde.avro(OURS, registry=client, schema_policy=sl.serde.OBSERVE_ONLY)
    with pytest.raises(SchemaNotRegisteredError):
        serde.serialize({"id": "a", "amount": 1.0}, VALUE)
    assert client.calls == ["lookup_schema"]
    assert counters(serde) == {"schema.conflict.value": 1, "produce.blocked": 1}


def test_max_resends_zero_blocks_the_record_and_follows_for_the_next(url: str) -> None:
    register(url, "orders-value", CTAS)
    serde = sl.serde.avro(OURS, registry=url, schema_policy=sl.serde.SchemaPolicy(max_resends=0))
    with pytest.raises(SchemaConflictError, match="max_resends=0"):
        serde.serialize({"id": "a", "amount": 1.0}, VALUE)
    assert read(url, serde.serialize({"id": "b", "amount": 2.0}, VALUE))["id"] == "b"


def test_topic_patterns_limit_the_policy(url: str) -> None:
    register(url, "orders-value", CTAS)
    client = Client(url)
    policy = sl.serde.SchemaPolicy(topic_patterns=["payments-*", re.compile(r"audit\..*")])
    serde = sl.serde.avro(OURS, registry=client, schema_policy=policy)
    with pytest.raises(SchemaNotRegisteredError):
        serde.serialize({"id": "a", "amount": 1.0}, VALUE)
    assert client.calls == ["lookup_schema"] and counters(serde) == {}
    assert policy.applies_to("payments-eu") and policy.applies_to("audit.x") and not policy.applies_to("orders")


def test_the_subject_resolver_names_where_to_look(url: str) -> None:
    ctas_id = register(url, "ORDERS_CTAS-value", CTAS)
    register(url, "orders-value", RETYPED)  # what a plain lookup of the subject would find
    seen = []

    def resolver(topic: str, field: str, record_name: Any) -> str:
        seen.append((topic, field, record_name))
        return "ORDERS_CTAS-value"

    serde = sl.serde.avro(OURS, registry=url, schema_policy=sl.serde.SchemaPolicy(subject_resolver=resolver))
    data = serde.serialize({"id": "a", "amount": 1.0}, VALUE)
    assert int.from_bytes(data[1:5], "big") == ctas_id and seen == [("orders", "value", "shop.Order")]
    assert serde.resolver.metrics.get("sr.lookup.ok", resolved_subject="ORDERS_CTAS-value", subject="orders-value")


def test_strict_blocks_at_once_when_the_registry_is_unreachable(url: str) -> None:
    register(url, "orders-value", OURS)
    client = Client(url)
    client.down = 1
    serde = sl.serde.avro(OURS, registry=client)
    with pytest.raises(SchemaRegistryUnavailableError) as err:
        serde.serialize({"id": "a", "amount": 1.0}, VALUE)
    assert err.value.error_class == "sr.unreachable" and err.value.record_fault is False
    assert client.calls == ["lookup_schema"]
    assert counters(serde) == {"sr.lookup.fail": 1, "produce.blocked": 1}


def test_lenient_holds_the_record_retries_with_backoff_then_sends_it_once(url: str) -> None:
    register(url, "orders-value", OURS)
    client = Client(url)
    client.down = 3
    policy = sl.serde.SchemaPolicy(schema_check="lenient",
                                   schema_lookup_backoff=sl.serde.Backoff(initial=0.5, maximum=1.0, give_up_after=30))
    serde = sl.serde.avro(OURS, registry=client, schema_policy=policy)
    waits: list[float] = []
    serde.resolver.sleep = waits.append
    data = serde.serialize({"id": "a", "amount": 1.0}, VALUE)
    assert read(url, data) == {"id": "a", "amount": 1.0}
    assert waits == [0.5, 1.0, 1.0]
    assert client.calls == ["lookup_schema"] * 4
    assert counters(serde) == {"sr.lookup.fail": 3, "produce.held": 3, "sr.lookup.ok": 1,
                               "produce.retry.on_error": 1}


def test_lenient_gives_up_after_its_budget_and_blocks(url: str) -> None:
    register(url, "orders-value", OURS)
    client = Client(url)
    client.down = 100
    policy = sl.serde.SchemaPolicy(schema_check="lenient",
                                   schema_lookup_backoff=sl.serde.Backoff(initial=1, maximum=2, give_up_after=6))
    serde = sl.serde.avro(OURS, registry=client, schema_policy=policy)
    waits: list[float] = []
    serde.resolver.sleep = waits.append
    with pytest.raises(SchemaRegistryUnavailableError):
        serde.serialize({"id": "a", "amount": 1.0}, VALUE)
    assert waits == [1, 2, 2] and len(client.calls) == 4
    assert serde.resolver.metrics.get("produce.blocked", error_class="sr.unreachable") == 1


def test_lenient_follows_a_conflict_found_once_the_registry_is_back(url: str) -> None:
    ctas_id = register(url, "orders-value", CTAS)
    client = Client(url)
    client.down = 1
    serde = sl.serde.avro(OURS, registry=client, schema_policy=sl.serde.SchemaPolicy(schema_check="lenient"))
    serde.resolver.sleep = lambda s: None
    data = serde.serialize({"id": "a", "amount": 1.0}, VALUE)
    assert int.from_bytes(data[1:5], "big") == ctas_id
    assert client.calls == ["lookup_schema", "lookup_schema", "get_latest_version"]


def test_the_circuit_breaker_opens_on_repeated_conflicts_and_closes_after_its_cooldown(url: str) -> None:
    register(url, "orders-value", RETYPED)
    client = Client(url)
    policy = sl.serde.SchemaPolicy(breaker=sl.serde.CircuitBreaker(threshold=2, window=10, cooldown=30))
    serde = sl.serde.avro(OURS, registry=client, schema_policy=policy)
    now = [100.0]
    serde.resolver.clock = lambda: now[0]
    for _ in range(2):
        with pytest.raises(SchemaConflictError):
            serde.serialize({"id": "a", "amount": 1.0}, VALUE)
    calls = len(client.calls)
    now[0] += 5
    with pytest.raises(SchemaCircuitOpenError, match="closes 25 s from now"):
        serde.serialize({"id": "a", "amount": 1.0}, VALUE)
    assert len(client.calls) == calls  # rejected fast: no registry call
    assert serde.resolver.metrics.get("produce.circuit.open", topic="orders", subject="orders-value") == 1
    # another topic has its own breaker
    other = sl.serde.SerializationContext("payments", "value")
    register(url, "payments-value", OURS)
    serde.serialize({"id": "a", "amount": 1.0}, other)
    now[0] += 30  # cooled down: the next send asks the registry again, which now has ours
    register(url, "orders-value", {**OURS, "fields": OURS["fields"]})
    client.client.register_schema("orders-value", Schema('{"type":"record","name":"Order","namespace":"shop",'
                                  '"fields":[{"name":"id","type":"string"},{"name":"amount","type":"double"}]}',
                                  "AVRO"))
    assert read(url, serde.serialize({"id": "b", "amount": 2.0}, VALUE)) == {"id": "b", "amount": 2.0}


def test_a_rejected_record_is_remapped_and_resent_once_and_32_rejections_cost_one_lookup(url: str) -> None:
    register(url, "orders-value", OURS)
    client = Client(url)
    serde = sl.serde.avro(OURS, registry=client)
    written = [serde.serialize({"id": str(i), "amount": float(i)}, VALUE) for i in range(32)]
    ctas_id = register(url, "orders-value", CTAS)  # the CTAS race: the broker now rejects the old id
    again = [serde.resolver.rejected("orders", data, "INVALID_RECORD") for data in written]
    assert client.calls == ["lookup_schema", "get_latest_version"]
    assert {int.from_bytes(d[1:5], "big") for d in again} == {ctas_id}
    assert [read(url, d) for d in again] == [{"amount": float(i), "id": str(i), "note": None} for i in range(32)]
    assert int.from_bytes(serde.serialize({"id": "x", "amount": 0.0}, VALUE)[1:5], "big") == ctas_id
    # the re-sent record is rejected too: the latest is its own schema, following cannot help: block
    with pytest.raises(SchemaConflictError, match="following cannot fix it"):
        serde.resolver.rejected("orders", again[0], "INVALID_RECORD")
    assert serde.resolver.metrics.get("schema.conflict.value") == 33


def test_resolve_schema_at_produce_follows_a_new_latest_before_sending(url: str) -> None:
    register(url, "orders-value", OURS)
    policy = sl.serde.SchemaPolicy(resolve_schema_on_error_only=False, resolve_schema_at_produce=True)
    serde = sl.serde.avro(OURS, registry=url, schema_policy=policy)
    first = serde.serialize({"id": "a", "amount": 1.0}, VALUE)
    ctas_id = register(url, "orders-value", CTAS)
    registry_client(url)[0].clear_latest_caches()
    second = serde.serialize({"id": "b", "amount": 2.0}, VALUE)
    assert int.from_bytes(first[1:5], "big") != ctas_id and int.from_bytes(second[1:5], "big") == ctas_id
    register(url, "orders-value", RETYPED)
    registry_client(url)[0].clear_latest_caches()
    with pytest.raises(SchemaConflictError, match="type double -> string"):
        serde.serialize({"id": "c", "amount": 3.0}, VALUE)


@pytest.mark.parametrize("kwargs,match", [
    (dict(resolve_schema_at_produce=True), "exclusive"),
    (dict(schema_check="loose"), "'strict' or 'lenient'"),
    (dict(subject_resolver="orders-value"), "callable"),
    (dict(max_resends=-1), "max_resends"),
    (dict(topic_patterns=[3]), "globs"),
])
def test_wrong_policy_settings_fail_at_start(kwargs: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        sl.serde.SchemaPolicy(**kwargs)
    with pytest.raises(ConfigError, match="Backoff"):
        sl.serde.Backoff(initial=0)
    with pytest.raises(ConfigError, match="CircuitBreaker"):
        sl.serde.CircuitBreaker(threshold=0)
    with pytest.raises(ConfigError, match="SchemaPolicy"):
        sl.serde.avro(OURS, registry="mock://x", schema_policy={"schema_check": "strict"})  # type: ignore
