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


def test_same_bytes_tells_serdes_apart_by_what_they_write_not_by_name() -> None:
    from streamlet.serde.base import FunctionSerde, same_bytes

    assert same_bytes(sl.serde.string(), sl.serde.string("UTF8"))  # one codec, two spellings
    assert not same_bytes(sl.serde.string(), sl.serde.string("latin-1"))  # both are called "string"
    assert same_bytes(sl.serde.json(), sl.serde.json()) and not same_bytes(sl.serde.json(), sl.serde.msgpack())
    mine = FunctionSerde("string", str.encode, bytes.decode)  # a user's serde with a built-in's name
    assert same_bytes(mine, mine) and not same_bytes(mine, sl.serde.string())


def test_a_latin1_key_is_not_passed_through_as_utf8_bytes() -> None:
    """Source keys in latin-1, sink keys in UTF-8: the sink must encode the key, not reuse its bytes."""
    app = sl.App("serde-bytes")
    app.stream("in", key_serde=sl.serde.string("latin-1")).to("out", key_serde=sl.serde.string())
    with sl.testing.TestDriver(app) as d:
        d.send_raw("in", "café".encode("latin-1"), b'{"x": 1}')
        [out] = d.read_records("out")
        raw_key = d.log["out"][out.partition][out.offset][0]
    assert out.key == "café" and raw_key == "café".encode("utf-8")
