"""TestDriver applies the app's error policy exactly like the runtime."""

from __future__ import annotations

import pytest

import streamlet as sl
from streamlet.errors import RecordError


def app_with(policy: str) -> sl.App:
    app = sl.App("e", on_error=policy)
    app.stream("in").map_values(lambda v: 10 // v["d"]).to("out")
    return app


def test_fail_raises_with_topic_partition_offset_and_stage() -> None:
    with sl.testing.TestDriver(app_with("fail")) as d:
        d.send("in", key="k", value={"d": 1})
        with pytest.raises(RecordError) as info:
            d.send("in", key="k", value={"d": 0})
        e = info.value
        assert (e.topic, e.partition, e.offset, e.stage) == ("in", 0, 1, "process")
        assert isinstance(e.cause, ZeroDivisionError)
        assert "topic 'in' partition 0 offset 1" in str(e) and "on_error='fail'" in str(e)
        with pytest.raises(RecordError) as info:
            d.send_raw("in", b"k", b"{bad json")
        assert info.value.stage == "deserialize"


def test_skip_counts_and_continues() -> None:
    with sl.testing.TestDriver(app_with("skip")) as d:
        d.send("in", key="k", value={"d": 0})
        d.send_raw("in", b"k", b"nope")
        d.send("in", key="k", value={"d": 2})
        assert d.read("out") == [("k", 5)] and d.policy.skipped == 2


def test_dead_letter_keeps_raw_bytes_and_origin_headers() -> None:
    app = app_with("dead_letter")
    with sl.testing.TestDriver(app) as d:
        d.send("in", key="k", value={"d": 2})
        d.send_raw("in", b"bad-key", b"{oops", headers=[("trace", b"t1")])
        (r,) = d.read_records(app.config.dead_letter)
    assert app.config.dead_letter == "e-dead-letter"
    assert r.key == b"bad-key" and r.value == b"{oops"
    headers = dict(r.headers)
    assert headers["trace"] == b"t1"
    assert headers["streamlet.topic"] == b"in" and headers["streamlet.partition"] == b"0"
    assert headers["streamlet.offset"] == b"1" and headers["streamlet.stage"] == b"deserialize"
    assert headers["streamlet.error.type"] == b"JSONDecodeError" and headers["streamlet.error"]


def test_driver_basics() -> None:
    assert sl.testing.TestDriver.__test__ is False
    app = sl.App("b")
    seen = []
    app.stream("in").process(lambda r: seen.append((r.key, r.partition, r.offset)) or r).to("out")
    with sl.testing.TestDriver(app, partitions=3) as d:
        with pytest.raises(Exception, match="not an input"):
            d.send("nope", key="k", value=1)
        d.send("in", key="a", value=1, partition=2)
        d.send("in", key="b", value=2, partition=2)
        d.send("in", key="c", value=3, partition=1)
        assert seen == [("a", 2, 0), ("b", 2, 1), ("c", 1, 0)]  # offsets count per partition
        assert [k for k, _ in d.read("out")] == ["a", "b", "c"]
        assert d.read("out") == []  # read returns only what is new
        with pytest.raises(ValueError):
            d.advance_time(-1)
        d.advance_time(500)
        assert d.wall_clock_ms == 500
