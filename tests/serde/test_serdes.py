"""Built-in serdes: round trips, Kafka byte layouts, None passes through, clear type errors."""

from __future__ import annotations

import pytest

import streamlet as sl


@pytest.mark.parametrize("serde,value", [
    (sl.serde.string(), "héllo"),
    (sl.serde.bytes(), b"\x00\xff"),
    (sl.serde.long(), -(2**63)),
    (sl.serde.int32(), 2**31 - 1),
    (sl.serde.json(), {"a": [1, 2.5, None, "x"], "b": {"c": True}}),
    (sl.serde.msgpack(), {"a": [1, 2.5, None, "x"], "b": b"raw"}),
])
def test_round_trip_and_none_passes_through(serde, value) -> None:
    assert serde.deserialize(serde.serialize(value)) == value
    assert serde.serialize(None) is None and serde.deserialize(None) is None
    assert isinstance(serde, sl.serde.Serde)


def test_integers_use_kafka_big_endian_layout() -> None:
    assert sl.serde.long().serialize(1) == b"\x00" * 7 + b"\x01"
    assert sl.serde.long().serialize(-1) == b"\xff" * 8
    assert sl.serde.int32().serialize(258) == b"\x00\x00\x01\x02"
    assert sl.serde.integer().serialize(5) == sl.serde.long().serialize(5)
    assert sl.serde.integer(size=4).serialize(5) == sl.serde.int32().serialize(5)
    with pytest.raises(ValueError, match="expects 8 bytes"):
        sl.serde.long().deserialize(b"\x00\x01")
    with pytest.raises(ValueError):
        sl.serde.integer(size=2)


def test_json_is_compact_utf8() -> None:
    assert sl.serde.json().serialize({"a": 1, "b": "é"}) == '{"a":1,"b":"é"}'.encode()


@pytest.mark.parametrize("serde,bad", [
    (sl.serde.string(), 5), (sl.serde.bytes(), "text"), (sl.serde.long(), "5"), (sl.serde.long(), True),
])
def test_wrong_types_raise_clearly(serde, bad) -> None:
    with pytest.raises(TypeError, match="serde expects"):
        serde.serialize(bad)
