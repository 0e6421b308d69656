"""Serdes that need a context: told the topic, key or value, and the headers, wherever streamlet
(de)serializes — sources, sinks, repartition topics, stores (their changelog), the TestDriver."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from confluent_kafka.serialization import StringDeserializer, StringSerializer

import streamlet as sl
from streamlet.errors import RecordError, SerializationError
from streamlet.serde.context import TopicSerde, context_expr, deserializer_for, for_topic, serializer_for
from streamlet.testing import TestDriver


class Recording(sl.serde.ContextSerde):
    """JSON behind a ``<topic>|`` prefix (its bytes depend on the topic, like a Schema Registry id per
    subject); records ``(op, topic, field, headers)`` of every call."""

    def __init__(self, name: str = "recording") -> None:
        self.name = name
        self.calls: list[tuple[str, str, str, Any]] = []

    def serialize(self, value: Any, ctx: sl.serde.SerializationContext) -> bytes:
        self.calls.append(("ser", ctx.topic, str(ctx.field), ctx.headers))
        return ctx.topic.encode() + b"|" + orjson.dumps(value)

    def deserialize(self, data: bytes, ctx: sl.serde.SerializationContext) -> Any:
        self.calls.append(("de", ctx.topic, str(ctx.field), ctx.headers))
        prefix, _, body = data.partition(b"|")
        if prefix != ctx.topic.encode():
            raise ValueError(f"bytes written for {prefix.decode()!r} read from {ctx.topic!r}")
        return orjson.loads(body)


# -- the serde objects ---------------------------------------------------------------------------
def test_from_confluent_wraps_confluent_kafkas_own_serializers() -> None:
    serde = sl.serde.from_confluent(StringSerializer(), StringDeserializer())
    ctx = sl.serde.SerializationContext("t", sl.serde.MessageField.VALUE, None)
    assert sl.serde.needs_context(serde) and isinstance(serde, sl.serde.Serde)
    assert serde.serialize("héllo", ctx) == "héllo".encode() and serde.deserialize(b"x", ctx) == "x"
    assert serde.name == "confluent(StringSerializer/StringDeserializer)"
    # None passes through without a call, and built-ins stay context-free
    assert serializer_for(serde, "t", sl.serde.KEY)(None, None) is None
    assert deserializer_for(serde, "t", sl.serde.KEY)(None, None) is None
    assert not sl.serde.needs_context(sl.serde.json()) and not sl.serde.needs_context(sl.serde.string())


def test_confluent_errors_are_typed_and_name_the_topic() -> None:
    serde = sl.serde.from_confluent(StringSerializer(), StringDeserializer())
    ctx = sl.serde.SerializationContext("orders", sl.serde.KEY)
    with pytest.raises(SerializationError, match=r"could not deserialize the key of topic 'orders'"):
        serde.deserialize(b"\xff\xfe", ctx)
    with pytest.raises(SerializationError, match=r"could not serialize the key for topic 'orders'"):
        serde.serialize(5, ctx)
    only_out = sl.serde.from_confluent(StringSerializer())
    with pytest.raises(SerializationError, match="has no deserializer"):
        only_out.deserialize(b"x", ctx)
    with pytest.raises(TypeError):
        sl.serde.from_confluent()
    with pytest.raises(TypeError):
        sl.serde.from_confluent("not callable")
    with pytest.raises(TypeError):  # both halves must be written
        type("Half", (sl.serde.ContextSerde,), {"serialize": lambda self, v, c: b""})()


def test_a_context_serde_never_passes_bytes_between_topics() -> None:
    from streamlet.serde.base import same_bytes

    rec = Recording()
    assert not same_bytes(rec, rec) and not same_bytes(rec, sl.serde.json())
    # bound to a topic it is a plain serde: the same binding writes the same bytes
    a, b = for_topic(rec, "cl", sl.serde.KEY), for_topic(rec, "cl", sl.serde.KEY)
    assert isinstance(a, TopicSerde) and same_bytes(a, b)
    assert not same_bytes(a, for_topic(rec, "other", sl.serde.KEY))
    assert not same_bytes(a, for_topic(rec, "cl", sl.serde.VALUE))
    assert a.serialize({"x": 1}) == b'cl|{"x":1}' and a.deserialize(b'cl|{"x":1}') == {"x": 1}
    assert for_topic(a, "again", sl.serde.KEY).serialize(1) == b"again|1"  # re-bound, not wrapped twice
    plain = sl.serde.json()
    assert for_topic(plain, "cl", sl.serde.KEY) is plain


def test_any_object_that_says_needs_context_is_called_with_one(generated: bool) -> None:
    class Flagged:  # no base class: the attribute alone decides
        name = "flagged"

        def __init__(self, needs: bool) -> None:
            self.needs_context = needs

        def serialize(self, value: Any, ctx: Any = None) -> bytes:
            return f"{ctx.topic if ctx else '-'}:{value}".encode()

        def deserialize(self, data: bytes, ctx: Any = None) -> Any:
            return data.decode().split(":", 1)[1]

    app = sl.App("ctx-app")
    app.stream("in", key_serde=Flagged(True), value_serde=Flagged(False)).to("out")
    with TestDriver(app) as d:
        d.send("in", key="a", value="b")
        assert d.read("out") == [("a", "b")]
        kb, vb, _, _ = d.log["out"][0][0]
    assert (kb, vb) == (b"out:a", b"-:b")


# -- generated code ------------------------------------------------------------------------------
def test_plain_serdes_generate_the_same_code_and_context_serdes_a_helper_call() -> None:
    def source_of(app: sl.App) -> str:
        with TestDriver(app) as d:
            return d.tasks.routes["in"][0].__streamlet_source__

    plain = sl.App("ctx-gen")
    plain.stream("in").map_values(lambda v: v).to("out")
    src = source_of(plain)
    assert "m.headers()" in src  # the produce call
    # no context helper: string keys inline, the JSON value's orjson functions bound and called directly
    assert not re.search(r"(key|value)_(de)?serialize_[0-9]", src) and "key_de" not in src
    assert re.search(r"v0 = None if vb is None else value_de_[0-9]+\(vb\)", src)
    assert re.search(r"None if v[0-9]+ is None else value_ser_[0-9]+\(v[0-9]+\)", src)

    ctx_app = sl.App("ctx-gen")
    ctx_app.stream("in", key_serde=Recording(), value_serde=Recording()).to("out")
    src = source_of(ctx_app)
    assert "key_deserialize_" in src and "(kb, m.headers())" in src
    assert "value_deserialize_" in src and "(vb, m.headers())" in src
    assert "key_serialize_" in src and "value_serialize_" in src

    # the builder is None for serdes that need no context: the generators keep their own code
    assert context_expr(sl.serde.json(), "serialize", "t", sl.serde.VALUE) is None
    build = context_expr(Recording(), "deserialize", "t", sl.serde.VALUE)
    names: dict[str, Any] = {}
    expr = build(lambda obj, hint: names.setdefault(hint, obj) and hint, "vb", "m.headers()")
    assert expr == "value_deserialize(vb, m.headers())"
    assert names["value_deserialize"](b't|{"a":1}', [("h", b"1")]) == {"a": 1}


# -- where the context comes from ----------------------------------------------------------------
def test_source_sink_and_driver_pass_topic_field_and_headers(generated: bool) -> None:
    ks, vs = Recording("k"), Recording("v")
    app = sl.App("ctx-app")
    app.stream("in", key_serde=ks, value_serde=vs).map_values(lambda v: {**v, "seen": True}).to("out")
    headers = [("trace", b"42")]
    with TestDriver(app) as d:
        d.send("in", key="a", value={"n": 1}, headers=headers)
        [out] = d.read_records("out")
        raw_key, raw_value, _, out_headers = d.log["out"][0][0]
    assert (out.key, out.value) == ("a", {"n": 1, "seen": True})
    # written for "out": the key was serialized again, not passed through from "in"
    assert raw_key == b'out|"a"' and raw_value == b'out|{"n":1,"seen":true}'
    assert out_headers == headers
    assert ks.calls == [("ser", "in", "key", headers),   # TestDriver.send
                        ("de", "in", "key", headers),    # the source
                        ("ser", "out", "key", headers),  # the sink
                        ("de", "out", "key", headers)]   # TestDriver.read
    assert vs.calls == [("ser", "in", "value", headers), ("de", "in", "value", headers),
                        ("ser", "out", "value", headers), ("de", "out", "value", headers)]


def test_a_header_a_serializer_adds_is_written(generated: bool) -> None:
    class SchemaIdInHeader(Recording):
        def serialize(self, value: Any, ctx: sl.serde.SerializationContext) -> bytes:
            if ctx.topic == "out" and ctx.headers is not None:
                ctx.headers.append(("schema-id", b"7"))
            return super().serialize(value, ctx)

    app = sl.App("ctx-app")
    app.stream("in", value_serde=SchemaIdInHeader()).to("out")
    with TestDriver(app) as d:
        d.send("in", key="a", value=1, headers=[("trace", b"1")])
        assert d.log["out"][0][0][3] == [("trace", b"1"), ("schema-id", b"7")]


def test_repartition_topic_and_store_changelog_are_the_context(generated: bool) -> None:
    ks, vs = Recording("k"), Recording("v")
    app = sl.App("ctx-app")
    (app.stream("in", key_serde=ks, value_serde=vs)
        .group_by(lambda k, v: v["user"]).count(name="per-user"))
    with TestDriver(app) as d:
        d.send("in", key="o1", value={"user": "u1"}, headers=[("h", b"1")])
        d.send("in", key="o2", value={"user": "u1"})
        assert d.store("per-user")["u1"] == 2
        assert dict(d.store("per-user").items()) == {"u1": 2}
    repartition, changelog = "ctx-app-per-user-repartition", "ctx-app-per-user-changelog"
    by_topic = {(op, topic, field) for op, topic, field, _ in ks.calls}
    assert {("ser", repartition, "key"), ("de", repartition, "key"), ("ser", changelog, "key")} <= by_topic
    assert ("ser", repartition, "value") in {(op, t, f) for op, t, f, _ in vs.calls}
    # the repartition record carries the origin header, and the serdes saw those headers
    [(_, _, _, headers)] = [c for c in ks.calls if c[:2] == ("ser", repartition)][:1]
    assert headers[0][0] == "streamlet.origin" and ("h", b"1") in headers
    # store keys are serialized for the changelog, with no headers (as Kafka Streams does)
    assert all(h is None for op, t, f, h in ks.calls if t == changelog)


def test_a_source_table_store_uses_the_table_topic_and_lookups_its_key_context(generated: bool) -> None:
    ks, vs = Recording("k"), Recording("v")
    app = sl.App("ctx-app")
    users = app.table("users", key_serde=ks, value_serde=vs)
    app.stream("orders", key_serde=ks).join(users, lambda o, u: {**o, "name": u["name"]}).to(
        "enriched", key_serde=sl.serde.string())
    with TestDriver(app) as d:
        d.send("users", key="u1", value={"name": "Ann"})
        d.send("orders", key="u1", value={"amount": 3})
        assert d.read("enriched") == [("u1", {"amount": 3, "name": "Ann"})]
        assert d.store("users")["u1"] == {"name": "Ann"}
    # the table's store: its changelog is the topic itself
    assert ("ser", "users", "value", None) in vs.calls
    # the join looks the row up by the key serialized for the table's topic, not the stream's bytes
    assert ("ser", "users", "key", None) in ks.calls


def test_table_regrouping_envelope_passes_the_context_through(generated: bool) -> None:
    vs = Recording("v")
    app = sl.App("ctx-app")
    app.table("users", value_serde=vs).group_by(lambda k, v: v["city"]).count(name="per-city")
    with TestDriver(app) as d:
        d.send("users", key="u1", value={"city": "Oslo"})
        d.send("users", key="u2", value={"city": "Oslo"})
        d.send("users", key="u1", value={"city": "Rome"})
        assert dict(d.store("per-city").items()) == {"Oslo": 1, "Rome": 1}
    repartition = "ctx-app-per-city-repartition"
    assert {("ser", repartition, "value"), ("de", repartition, "value")} <= {c[:3] for c in vs.calls}


def test_a_record_a_context_deserializer_rejects_is_dead_lettered_raw(generated: bool) -> None:
    def de(data: bytes, ctx: Any) -> Any:
        if not data.startswith(b"{"):
            raise ValueError(f"not JSON in {ctx.topic}/{ctx.field}")
        return orjson.loads(data)

    serde = sl.serde.from_confluent(lambda v, ctx: orjson.dumps(v), de, name="strict")
    app = sl.App("ctx-app", on_error="dead_letter", dead_letter_topic="dlq")
    app.stream("in", value_serde=serde).to("out")
    with TestDriver(app) as d:
        d.send_raw("in", b"k", b"oops", headers=[("h", b"1")])
        d.send("in", key="k2", value={"ok": 1})
        [(kb, vb, _, headers)] = d.log["dlq"][0]
        assert d.read("out") == [("k2", {"ok": 1})]
    assert (kb, vb) == (b"k", b"oops")
    found = dict(headers)
    assert found["streamlet.stage"] == b"deserialize"
    assert found["streamlet.error.type"] == b"SerializationError"
    assert b"strict could not deserialize the value of topic 'in'" in found["streamlet.error"]
    assert b"not JSON in in/value" in found["streamlet.error"]


def test_a_context_serde_error_under_fail_names_the_record(generated: bool) -> None:
    serde = sl.serde.from_confluent(StringSerializer(), StringDeserializer())
    app = sl.App("ctx-app")
    app.stream("in", key_serde=serde).to("out")
    with TestDriver(app) as d, pytest.raises(RecordError, match="'in'.*deserialize") as info:
        d.send_raw("in", b"\xff", b"{}")
    assert isinstance(info.value.__cause__, SerializationError)
