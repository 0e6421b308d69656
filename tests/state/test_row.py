"""The stored row formats: timestamped rows (Kafka Streams' bytes) and aggregation rows."""

from __future__ import annotations

import struct

import pytest

from streamlet.errors import SerializationError
from streamlet.serde import json, string
from streamlet.serde.base import same_bytes
from streamlet.state import row
from streamlet.state.row import ValueAndTimestamp
from streamlet.topology.aggregation import stored_serde


def test_a_timestamped_row_is_the_timestamp_in_8_big_endian_bytes_then_the_value() -> None:
    serde = row.timestamped_serde(json())
    data = serde.serialize(row.timestamped({"a": 1}, 1_700_000_000_123))
    assert data == struct.pack(">q", 1_700_000_000_123) + b'{"a":1}'  # ValueAndTimestampSerializer's layout
    back = serde.deserialize(data)
    assert back == ValueAndTimestamp({"a": 1}, 1_700_000_000_123)
    assert row.value_of(back) == {"a": 1} and row.timestamp_of(back) == 1_700_000_000_123
    assert row.raw_value(data) == b'{"a":1}' and row.raw_timestamp(data) == 1_700_000_000_123
    assert serde.deserialize(serde.serialize(ValueAndTimestamp("x", -5))) == ("x", -5)  # before 1970


def test_no_value_is_no_row() -> None:
    serde = row.timestamped_serde(string())
    assert row.timestamped(None, 10) is None
    assert serde.serialize(None) is None and serde.deserialize(None) is None
    assert row.value_of(None) is None and row.timestamp_of(None) == -1 and row.raw_value(None) is None
    with pytest.raises(SerializationError, match="needs a value"):
        serde.serialize(ValueAndTimestamp(None, 10))
    with pytest.raises(SerializationError, match="at least 8 bytes"):
        serde.deserialize(b"\x00\x01")


def test_timestamped_serdes_write_the_same_bytes_when_their_values_do() -> None:
    assert same_bytes(row.timestamped_serde(json()), row.timestamped_serde(json()))
    assert not same_bytes(row.timestamped_serde(json()), json())
    assert not same_bytes(row.timestamped_serde(string("latin-1")), row.timestamped_serde(string()))


def test_aggregation_rows_and_their_replay_marks() -> None:
    r = row.aggregate_row(41, {"n": 3}, 1)
    assert r == [41, {"n": 3}, 1, -1] and row.state_of(r) == {"n": 3} and row.mark_of(r) == (41, 1)
    assert row.applied(r, 40, 5) and row.applied(r, 41, 0) and row.applied(r, 41, 1)
    assert not row.applied(r, 41, 2) and not row.applied(r, 42, 0)
    assert row.state_of(None) is None
    marks = {b"\x00\x00\x00\x01in": [7, 0, 0]}
    rr = row.repartitioned_row(marks, 5)
    assert row.marks_of(rr) is marks and row.state_of(rr) == 5


def test_aggregation_rows_encode_as_the_aggregations_store_does() -> None:
    serde = row.aggregate_serde()
    for r in (row.aggregate_row(3, [1, "a", None], 0),
              row.repartitioned_row({b"\x00\x00\x00\x02t": [9, 1, 0]}, {"x": [1.5]})):
        data = serde.serialize(r)
        assert data == stored_serde().serialize(r)
        assert serde.deserialize(data) == r


def test_aggregation_rows_keep_the_largest_timestamp_and_old_rows_read_as_unknown() -> None:
    assert row.row_timestamp(row.aggregate_row(3, 1, 0, 1700)) == 1700
    assert row.row_timestamp(row.repartitioned_row({b"p": [1, 0, 0]}, 1, 1800)) == 1800
    serde = row.aggregate_serde()
    old_direct, old_repartitioned = serde.serialize([5, {"n": 1}, 0]), serde.serialize([{b"p": [1, 0, 0]}, 2])
    assert serde.deserialize(old_direct) == [5, {"n": 1}, 0, -1]
    assert serde.deserialize(old_repartitioned) == [{b"p": [1, 0, 0]}, 2, -1]
    assert row.row_timestamp(serde.deserialize(old_direct)) == -1
