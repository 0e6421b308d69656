"""Timestamp extractors per source: the extracted time is the record's timestamp downstream, and a
bad one is a bad record under ``on_error`` (Kafka Streams' ``LogAndSkipOnInvalidTimestamp`` with
``skip``). Each runs with generated chains and with closures."""

from __future__ import annotations

from typing import Any

import pytest

import streamlet as sl
from streamlet.errors import RecordError, TimestampError


def timestamps(d: Any, topic: str) -> list[tuple[Any, int]]:
    return [(r.key, r.timestamp) for r in d.read_records(topic)]


def test_a_field_of_the_value_times_the_record_downstream(generated: bool) -> None:
    app = sl.App("ts-field")
    seen: list[int] = []
    s = app.stream("in", timestamp="at")
    s.filter(lambda k, v: True).to("out")
    s.process(lambda r: seen.append(r.timestamp) or r).to("processed")
    s.group_by_key().aggregate(first=sl.agg.min_by("v", by=sl.agg.TIMESTAMP), name="firsts")
    s.select_key(lambda k, v: v["v"]).group_by_key().aggregate(
        latest=sl.agg.max_by("v", by=sl.agg.TIMESTAMP), name="by-v")  # through a repartition topic
    with sl.testing.TestDriver(app) as d:
        d.send("in", key="a", value={"at": 5_000, "v": "late"}, timestamp=1)
        d.send("in", key="a", value={"at": 2_000.7, "v": "early"}, timestamp=2)
        assert timestamps(d, "out") == [("a", 5_000), ("a", 2_000)]
        assert timestamps(d, "processed") == [("a", 5_000), ("a", 2_000)]
        assert seen == [5_000, 2_000]
        assert d.store("firsts")["a"] == {"first": "early"}
        assert [r.timestamp for r in d.read_records("ts-field-by-v-repartition")] == [5_000, 2_000]
        assert d.store("by-v")["late"] == {"latest": "late"}


def test_a_function_of_key_value_and_record_timestamp(generated: bool) -> None:
    app = sl.App("ts-fn")
    app.stream("in", timestamp_extractor=lambda k, v, ts: ts + int(k) + v["d"]).to("out")
    with sl.testing.TestDriver(app) as d:
        d.send("in", key="7", value={"d": 100}, timestamp=1_000)
        assert timestamps(d, "out") == [("7", 1_107)]


def test_a_table_source_takes_one_too_and_a_tombstone_keeps_its_record_timestamp(generated: bool) -> None:
    app = sl.App("ts-table")
    app.table("users", timestamp="at").to_stream().to("changes")
    with sl.testing.TestDriver(app) as d:
        d.send("users", key="u", value={"at": 42}, timestamp=9)
        d.send("users", key="u", value=None, timestamp=10)
        assert timestamps(d, "changes") == [("u", 42), ("u", 10)]


BAD = [({"v": 1}, "timestamp field 'at' is missing"),
       ({"at": "12:00"}, "'12:00' \\(str\\), not a number"),
       ({"at": -5}, "cannot be negative"),
       ({"at": True}, "True \\(bool\\), not a number"),
       ([1, 2], "the value is a list, not a dict")]


@pytest.mark.parametrize("value, why", BAD)
def test_a_bad_timestamp_fails_with_topic_partition_and_offset(generated: bool, value: Any, why: str) -> None:
    app = sl.App("ts-bad")
    app.stream("in", timestamp="at").to("out")
    with sl.testing.TestDriver(app) as d:
        d.send("in", key="a", value={"at": 1}, timestamp=1)
        with pytest.raises(RecordError, match=f"no valid timestamp in record at topic 'in' partition 0 offset 1: "
                                              f"TimestampError: .*{why}") as info:
            d.send("in", key="b", value=value)
        assert info.value.stage == "timestamp" and isinstance(info.value.cause, TimestampError)
        assert d.read("out") == [("a", {"at": 1})]


def test_an_extractor_that_raises_or_returns_nonsense_is_a_bad_record(generated: bool) -> None:
    app = sl.App("ts-raise", on_error="skip")
    app.stream("in", timestamp_extractor=lambda k, v, ts: v["when"]).to("out")
    with sl.testing.TestDriver(app) as d:
        d.send("in", key="a", value={"x": 1})
        d.send("in", key="b", value={"when": None})
        d.send("in", key="c", value={"when": 3})
        assert timestamps(d, "out") == [("c", 3)] and d.policy.skipped == 2


def test_bad_timestamps_are_skipped_or_dead_lettered(generated: bool) -> None:
    app = sl.App("ts-dlq", on_error="dead_letter", dead_letter_topic="dlq")
    app.stream("in", timestamp="at").to("out")
    with sl.testing.TestDriver(app) as d:
        d.send("in", key="a", value={"at": -1}, timestamp=77)
        d.send("in", key="b", value={"at": 8})
        assert timestamps(d, "out") == [("b", 8)]
        (kb, vb, ts, headers), = d.log["dlq"][0]
        got = dict(headers)
        assert (kb, ts) == (b"a", 77) and got["streamlet.stage"] == b"timestamp"
        assert got["streamlet.error.type"] == b"TimestampError" and got["streamlet.offset"] == b"0"


def test_the_options_are_checked_when_the_source_is_made() -> None:
    app = sl.App("ts-args")
    with pytest.raises(TypeError, match="not both"):
        app.stream("a", timestamp="at", timestamp_extractor=lambda k, v, ts: ts)
    with pytest.raises(TypeError, match="use timestamp_extractor="):
        app.stream("b", timestamp=lambda k, v, ts: ts)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a function"):
        app.stream("c", timestamp_extractor=5)  # type: ignore[arg-type]
    app.stream("d", timestamp_extractor="at").to("out")  # a field name there too
    with sl.testing.TestDriver(app) as d:
        d.send("d", key="k", value={"at": 3})
        assert timestamps(d, "out") == [("k", 3)]


def test_the_default_path_generates_no_extractor() -> None:
    app = sl.App("ts-code")
    app.stream("plain").to("out1")
    app.stream("timed", timestamp="at").to("out2")
    with sl.testing.TestDriver(app) as d:
        plain = d.tasks.routes["plain"][0].__streamlet_source__
        timed = d.tasks.routes["timed"][0].__streamlet_source__
    assert "ts0" not in plain and "timestamp_extractor" not in plain
    assert "ts0 = timestamp_extractor" in timed
