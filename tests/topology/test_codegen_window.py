"""The tumbling window aggregation called from generated chains (codegen_window): the same outputs,
stamps, late records, dead letters and replays as through its closure, with the record's timestamp
taken from a field of the value (``timestamp=``), and no stamped message made per record."""

from __future__ import annotations

from typing import Any

import streamlet as sl
from streamlet.testing import TestDriver


def windowed(final: bool, **config: Any) -> sl.App:
    app = sl.App("cw", **config)
    grouped = (app.stream("in", timestamp="ts").filter(lambda k, v: v.get("drop") is None).group_by_key()
               .windowed_by(sl.Tumbling(1000, grace=100)))
    (grouped.emit_final() if final else grouped).count(name="w").to_stream().to("out")
    return app


def send(d: TestDriver, key: str, ts: Any, record_ts: int = 1, **extra: Any) -> None:
    d.send("in", key=key, value={"ts": ts, **extra}, timestamp=record_ts)


def out(d: TestDriver) -> list[tuple[str, int, int, int]]:
    """(key, window start, count, record timestamp) of each output."""
    return [(r.key.key, r.key.start, r.value, r.timestamp) for r in d.read_records("out")]


def test_emit_changes_stamps_each_change_with_the_windows_largest_extracted_time(generated: bool) -> None:
    with TestDriver(windowed(final=False)) as d:
        send(d, "a", 500)
        send(d, "a", 200)                   # out of order: the change keeps the window's time, 500
        send(d, "b", 999.9)                 # a float field: its whole milliseconds
        send(d, "a", 1500, drop=True)       # filtered out before the window: no change, no stream time
        send(d, "a", 1050)
        assert out(d) == [("a", 0, 1, 500), ("a", 0, 2, 500), ("b", 0, 1, 999), ("a", 1000, 1, 1050)]
        assert d.store("w").fetch("a", 0, 999) == [(sl.Windowed("a", 0, 1000), 2)]  # window starts in [0, 999]


def test_emit_final_emits_closed_windows_once_in_start_then_key_order(generated: bool) -> None:
    with TestDriver(windowed(final=True)) as d:
        send(d, "b", 10)
        send(d, "a", 900)
        send(d, "a", 1099)                  # [0, 1000) closes at 1100: still open
        assert out(d) == []
        send(d, "c", 2100)                  # closes [0, 1000) and [1000, 2000)
        assert out(d) == [("a", 0, 1, 900), ("b", 0, 1, 10), ("a", 1000, 1, 1099)]
        send(d, "c", 2150)
        assert out(d) == []


def test_a_late_record_is_dropped_and_dead_lettered_with_its_extracted_time(generated: bool) -> None:
    with TestDriver(windowed(final=True, late_records="dead_letter")) as d:
        send(d, "a", 2000)
        send(d, "a", 900, record_ts=7)      # [0, 1000) closed at 1100 <= 2000: late
        [dead] = d.read_records("cw-dead-letter")
        assert dead.key == b"a" and dead.timestamp == 900
        assert dict(dead.headers)["streamlet.stage"] == b"window"
        assert d.metrics() == {'late_records_dropped{partition="0",store="w"}': 1}
        assert d.store("w").fetch("a", 0, 3000) == [(sl.Windowed("a", 2000, 3000), 1)]


def test_a_replayed_record_changes_no_window_twice(generated: bool) -> None:
    with TestDriver(windowed(final=False)) as d:
        send(d, "a", 100)
        send(d, "a", 200)
        send(d, "b", 300)
        d.read_records("out")
        d.redeliver("in", from_offset=1)    # after a crash: the records come again
        assert out(d) == []
        send(d, "a", 400)
        assert out(d) == [("a", 0, 3, 400)]


def test_generated_chains_call_the_window_step_with_the_records_parts() -> None:
    with TestDriver(windowed(final=True)) as d:
        src = d.tasks.routes["in"][0].__streamlet_source__
    assert "with_timestamp" not in src and "ctx.msg" not in src
    assert "(k0, v0, kb, ts0, m, m.offset(), 0, True)" in src
