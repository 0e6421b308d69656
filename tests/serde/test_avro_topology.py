"""serde.avro in a topology, run by the TestDriver: Avro keys and values in and out, a store whose
changelog is Avro, and bad records under every on_error policy."""

from __future__ import annotations

import dataclasses
import re
import struct
from typing import Any

import pytest

import streamlet as sl
from streamlet.errors import RecordError, SchemaNotRegisteredError, UnknownSchemaIdError
from streamlet.serde.registry import forget_mock, registry_client

ORDER = {"type": "record", "name": "Order", "namespace": "shop", "fields": [
    {"name": "id", "type": "string"}, {"name": "amount", "type": "double"},
    {"name": "user", "type": "string"}]}
BIG = {"type": "record", "name": "BigOrder", "namespace": "shop", "fields": [
    {"name": "id", "type": "string"}, {"name": "amount", "type": "double"},
    {"name": "big", "type": "boolean"}]}


@dataclasses.dataclass
class BigOrder:
    id: str
    amount: float
    big: bool


@pytest.fixture
def url(request: pytest.FixtureRequest) -> Any:
    name = "mock://" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())
    yield name
    forget_mock(name)


def pipeline(url: str, on_error: str = "fail", specific: bool = False) -> sl.App:
    key = sl.serde.avro("string", registry=url, auto_register=True)
    app = sl.App("avro-app", on_error=on_error)
    orders = app.stream("orders", key_serde=key, value_serde=sl.serde.avro(ORDER, registry=url))
    big = orders.filter(lambda k, v: v["amount"] > 100)
    if specific:
        (big.map_values(lambda v: BigOrder(v["id"], v["amount"], True))
            .to("big-orders", key_serde=key,
                value_serde=sl.serde.avro(BIG, registry=url, record_type=BigOrder, auto_register=True)))
    else:
        (big.map_values(lambda v: {"id": v["id"], "amount": v["amount"], "big": True})
            .to("big-orders", key_serde=key, value_serde=sl.serde.avro(BIG, registry=url, auto_register=True)))
    return app


def test_avro_in_and_out_through_the_test_driver(url: str) -> None:
    sl.serde.avro(ORDER, registry=url).register("orders")  # inputs are registered by their producer
    with sl.testing.TestDriver(pipeline(url)) as d:
        d.send("orders", key="u1", value={"id": "o1", "amount": 50.0, "user": "u1"})
        d.send("orders", key="u2", value={"id": "o2", "amount": 150.0, "user": "u2"})
        assert d.read("big-orders") == [("u2", {"id": "o2", "amount": 150.0, "big": True})]
        (kb, vb, _, _), = d.log["big-orders"][0]
    client, _ = registry_client(url)
    assert sorted(client.get_subjects()) == ["big-orders-key", "big-orders-value", "orders-key", "orders-value"]
    assert vb[:1] == b"\x00" and struct.unpack(">I", vb[1:5])[0] == \
        client.get_latest_version("big-orders-value").schema_id
    assert struct.unpack(">I", kb[1:5])[0] == client.get_latest_version("big-orders-key").schema_id


def test_specific_records_out(url: str) -> None:
    sl.serde.avro(ORDER, registry=url).register("orders")
    with sl.testing.TestDriver(pipeline(url, specific=True)) as d:
        d.send("orders", key="u2", value={"id": "o2", "amount": 150.0, "user": "u2"})
        assert d.read("big-orders") == [("u2", BigOrder("o2", 150.0, True))]


def test_an_avro_table_a_join_and_a_repartition_topic(url: str) -> None:
    user = {"type": "record", "name": "User", "fields": [{"name": "name", "type": "string"}]}
    sl.serde.avro(user, registry=url).register("users")
    sl.serde.avro(ORDER, registry=url).register("orders")
    app = sl.App("avro-join")
    users = app.table("users", value_serde=sl.serde.avro(user, registry=url))
    orders = app.stream("orders", value_serde=sl.serde.avro(ORDER, registry=url))
    (orders.join(users, lambda o, u: {"id": o["id"], "amount": o["amount"], "big": u["name"] == "Alice"})
           .to("enriched", value_serde=sl.serde.avro(BIG, registry=url, auto_register=True)))
    (orders.group_by(lambda k, v: v["user"], value_serde=sl.serde.avro(ORDER, registry=url, auto_register=True))
           .count(name="per-user"))
    with sl.testing.TestDriver(app) as d:
        d.send("users", key="u1", value={"name": "Alice"})
        d.send("orders", key="u1", value={"id": "o1", "amount": 10.0, "user": "u1"})
        d.send("orders", key="u1", value={"id": "o2", "amount": 20.0, "user": "u1"})
        assert d.store("users")["u1"] == {"name": "Alice"}
        assert d.store("per-user")["u1"] == 2
        assert d.read("enriched") == [("u1", {"id": "o1", "amount": 10.0, "big": True}),
                                      ("u1", {"id": "o2", "amount": 20.0, "big": True})]
    assert "avro-join-per-user-repartition-value" in registry_client(url)[0].get_subjects()


def test_bad_avro_records_follow_on_error_with_topic_partition_offset(url: str) -> None:
    sl.serde.avro(ORDER, registry=url).register("orders")
    key = sl.serde.avro("string", registry=url, auto_register=True)
    good_key = key.serialize("u1", sl.serde.SerializationContext("orders", sl.serde.KEY))
    unknown = b"\x00" + struct.pack(">I", 999) + b"\x02"
    with sl.testing.TestDriver(pipeline(url, "fail")) as d:
        d.send("orders", key="u1", value={"id": "o1", "amount": 500.0, "user": "u1"})
        with pytest.raises(RecordError) as info:
            d.send_raw("orders", good_key, unknown)
        e = info.value
        assert (e.topic, e.partition, e.offset, e.stage) == ("orders", 0, 1, "deserialize")
        assert isinstance(e.cause, UnknownSchemaIdError) and "schema id 999" in str(e)
    with sl.testing.TestDriver(pipeline(url, "skip")) as d:
        d.send_raw("orders", good_key, b"garbage")
        d.send_raw("orders", b"\x00\x00", unknown)  # a bad key
        d.send("orders", key="u1", value={"id": "o1", "amount": 500.0, "user": "u1"})
        assert d.policy.skipped == 2 and len(d.read("big-orders")) == 1
    app = pipeline(url, "dead_letter")
    with sl.testing.TestDriver(app) as d:
        d.send_raw("orders", good_key, unknown)
        (r,) = d.read_records(app.config.dead_letter)
    headers = dict(r.headers)
    assert r.value == unknown and headers["streamlet.error.type"] == b"UnknownSchemaIdError"
    assert headers["streamlet.stage"] == b"deserialize" and headers["streamlet.offset"] == b"0"


def test_an_unregistered_output_schema_is_a_record_error_saying_how_to_fix_it(url: str) -> None:
    app = sl.App("unregistered")
    app.stream("in", value_serde=sl.serde.json()).to("out", value_serde=sl.serde.avro(BIG, registry=url))
    with sl.testing.TestDriver(app) as d:
        with pytest.raises(RecordError) as info:
            d.send("in", key="k", value={"id": "a", "amount": 1.0, "big": False})
    assert isinstance(info.value.cause, SchemaNotRegisteredError)
    assert "subject 'out-value'" in str(info.value) and "auto_register=True" in str(info.value)


def test_an_unreachable_registry_stops_even_under_skip_and_dead_letter() -> None:
    """Skipping records while the registry is down would lose them: the record fails as under 'fail'."""
    dead = {"url": "http://127.0.0.1:9", "max.retries": 0, "timeout": 2}
    for policy in ("skip", "dead_letter"):
        app = sl.App("registry-down", on_error=policy)
        app.stream("in", value_serde=sl.serde.avro(ORDER, registry=dead)).to("out")
        with sl.testing.TestDriver(app) as d:
            with pytest.raises(RecordError) as info:
                d.send_raw("in", b"k", b"\x00\x00\x00\x00\x01\x02a")
            assert info.value.policy == "fail" and info.value.stage == "deserialize"
            assert "could not be reached" in str(info.value) and d.policy.skipped == 0
            assert d.read_records(app.config.dead_letter) == []
