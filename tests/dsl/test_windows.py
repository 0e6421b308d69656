"""Windowed aggregations through the TestDriver: window bounds, late records, emit changes and emit
final, every aggregation kind, the windowed key serde, store queries and expiry."""

from __future__ import annotations

from datetime import timedelta

import pytest

import streamlet as sl
from streamlet.errors import TopologyError
from streamlet.testing import TestDriver


def windowed_app(windows, final: bool = False, how: str = "count"):
    app = sl.App("win")
    grouped = app.stream("in").group_by_key().windowed_by(windows)
    if final:
        grouped = grouped.emit_final()
    if how == "count":
        table = grouped.count(name="w")
    elif how == "reduce":
        table = grouped.reduce(lambda a, v: {"amount": a["amount"] + v["amount"]}, name="w")
    elif how == "aggregate":
        table = grouped.aggregate(lambda: 0, lambda k, v, agg: agg + v["amount"], name="w")
    else:
        table = grouped.aggregate(n=sl.agg.count(), total=sl.agg.sum("amount"),
                                  first=sl.agg.earliest_by_offset("amount"), name="w")
    table.to_stream().to("out")
    return app


def send(d: TestDriver, *records: tuple[str, int, int | None]) -> None:
    for key, ts, amount in records:
        d.send("in", key, None if amount is None else {"amount": amount}, timestamp=ts)


def out(d: TestDriver) -> list[tuple[str, int, int, object]]:
    return [(r.key.key, r.key.start, r.key.end, r.value) for r in d.read_records("out")]


def test_tumbling_windows_are_half_open_and_emit_every_change() -> None:
    with TestDriver(windowed_app(sl.Tumbling(1000, grace=0))) as d:
        send(d, ("a", 0, 1), ("a", 999, 1), ("a", 1000, 1), ("b", 1500, 1))
        assert out(d) == [("a", 0, 1000, 1), ("a", 0, 1000, 2), ("a", 1000, 2000, 1), ("b", 1000, 2000, 1)]


def test_hopping_windows_start_at_multiples_of_the_advance_never_below_zero() -> None:
    with TestDriver(windowed_app(sl.Hopping(1000, 300, grace=0))) as d:
        send(d, ("a", 100, 1), ("a", 700, 1))
        assert out(d) == [("a", 0, 1000, 1),
                          ("a", 0, 1000, 2), ("a", 300, 1300, 1), ("a", 600, 1600, 1)]


def test_a_record_is_late_once_its_window_end_plus_grace_is_at_or_before_stream_time() -> None:
    with TestDriver(windowed_app(sl.Tumbling(1000, grace=200))) as d:
        send(d, ("a", 500, 1), ("a", 1199, 1))
        send(d, ("a", 900, 1))   # stream time 1199: [0, 1000) closes at 1200, still open
        send(d, ("a", 1200, 1))  # stream time 1200
        send(d, ("a", 950, 1))   # 1000 + 200 <= 1200: late, dropped
        assert out(d) == [("a", 0, 1000, 1), ("a", 1000, 2000, 1), ("a", 0, 1000, 2), ("a", 1000, 2000, 2)]
        assert d.metrics() == {'late_records_dropped{partition="0",store="w"}': 1}
        assert d.store("w")[sl.Windowed("a", 0, 1000)] == 2


def test_tombstones_and_null_keys_never_reach_a_windowed_aggregate() -> None:
    with TestDriver(windowed_app(sl.Tumbling(1000, grace=0))) as d:
        send(d, ("a", 0, None), (None, 10, 1), ("a", 20, 1))
        assert out(d) == [("a", 0, 1000, 1)]


@pytest.mark.parametrize("how,expected", [
    ("count", 3), ("reduce", {"amount": 6}), ("aggregate", 6),
    ("named", {"n": 3, "total": 6, "first": 1}),
])
def test_every_aggregation_kind_windows(how: str, expected: object) -> None:
    with TestDriver(windowed_app(sl.Tumbling(timedelta(seconds=1), grace=timedelta(0)), how=how)) as d:
        send(d, ("a", 0, 1), ("a", 10, 2), ("a", 20, 3), ("a", 1000, 4))
        rows = out(d)
        assert rows[2] == ("a", 0, 1000, expected) and rows[3][:3] == ("a", 1000, 2000)


def test_emit_final_emits_each_window_once_when_stream_time_reaches_end_plus_grace() -> None:
    with TestDriver(windowed_app(sl.Tumbling(1000, grace=100), final=True)) as d:
        send(d, ("a", 0, 1), ("b", 500, 1), ("a", 999, 1), ("a", 1050, 1))
        assert out(d) == []                      # stream time 1050 < 1000 + 100
        send(d, ("b", 1099, 1))
        assert out(d) == []
        send(d, ("c", 1100, 1))                  # 1000 + 100 <= 1100: [0, 1000) closes
        assert out(d) == [("a", 0, 1000, 2), ("b", 0, 1000, 1)]  # start, then key order
        send(d, ("a", 1200, 1), ("a", 3500, 1))  # [1000, 2000) closes; 3500 opens [3000, 4000)
        assert out(d) == [("a", 1000, 2000, 2), ("b", 1000, 2000, 1), ("c", 1000, 2000, 1)]
        send(d, ("a", 3600, 1))
        assert out(d) == []                      # nothing closes twice


def test_emit_final_output_keeps_the_windows_largest_record_time() -> None:
    with TestDriver(windowed_app(sl.Tumbling(1000, grace=0), final=True)) as d:
        send(d, ("a", 700, 1), ("a", 300, 1), ("a", 2000, 1))
        [record] = d.read_records("out")
        assert (record.key, record.value, record.timestamp) == (sl.Windowed("a", 0, 1000), 2, 700)


def test_hopping_emit_final_emits_every_window_once() -> None:
    with TestDriver(windowed_app(sl.Hopping(1000, 500, grace=0), final=True)) as d:
        send(d, ("a", 600, 1), ("a", 1400, 1), ("a", 5000, 1))
        assert out(d) == [("a", 0, 1000, 1), ("a", 500, 1500, 2), ("a", 1000, 2000, 1)]


def test_the_store_answers_by_key_and_time_range_and_expires_old_windows() -> None:
    with TestDriver(windowed_app(sl.Tumbling(1000, grace=0, retention=5000))) as d:
        send(d, ("a", 0, 1), ("b", 10, 1), ("a", 1500, 1), ("a", 2500, 1))
        view = d.store("w")
        assert view.fetch("a") == [(sl.Windowed("a", 0, 1000), 1), (sl.Windowed("a", 1000, 2000), 1),
                                   (sl.Windowed("a", 2000, 3000), 1)]
        assert view.fetch("a", 1000, 1999) == [(sl.Windowed("a", 1000, 2000), 1)]
        assert sl.Windowed("b", 0, 1000) in set(view)
        send(d, ("z", 70_000, 1))  # a minute of stream time later: windows older than 5 s expire
        assert list(view.items()) == [(sl.Windowed("z", 70_000, 71_000), 1)]


def test_windowed_keys_are_written_in_kafka_streams_layout_and_read_back() -> None:
    app = windowed_app(sl.Tumbling(1000, grace=0))
    with TestDriver(app) as d:
        send(d, ("user-1", 2500, 1))
        raw = d.log["out"][0][0][0]
    assert raw == b"user-1" + (2000).to_bytes(8, "big")
    assert sl.serde.windowed(sl.serde.string(), 1000).deserialize(raw) == sl.Windowed("user-1", 2000, 3000)
    session = sl.serde.session_windowed(sl.serde.string())
    assert session.deserialize(session.serialize(sl.Windowed("k", 5, 90))) == sl.Windowed("k", 5, 90)


def test_a_new_key_after_a_windowed_table_drops_the_windowed_serde() -> None:
    app = sl.App("win")
    (app.stream("in").group_by_key().windowed_by(sl.Tumbling(1000, grace=0)).count(name="w")
     .to_stream().map(lambda w, n: (f"{w.key}@{w.start}", n)).to("flat"))
    with TestDriver(app) as d:
        d.send("in", "a", {"amount": 1}, timestamp=1234)
        assert d.read("flat") == [("a@1000", 1)]


def test_windows_say_what_is_wrong() -> None:
    with pytest.raises(TopologyError, match="grace=0: none"):
        sl.Tumbling(1000)
    with pytest.raises(TopologyError, match="advance must be > 0 and <= its size"):
        sl.Hopping(1000, 2000, grace=0)
    with pytest.raises(TopologyError, match="retention .* at least size \\+ grace"):
        sl.Tumbling(1000, grace=500, retention=1200)
    with pytest.raises(TopologyError, match="milliseconds"):
        sl.Tumbling("1m", grace=0)
    grouped = sl.App("a").table("t").group_by(lambda k, v: (k, v))
    with pytest.raises(TopologyError, match="groups a stream"):
        grouped.windowed_by(sl.Tumbling(1000, grace=0))


# -- session windows --------------------------------------------------------------------------------
def session_app(final: bool = False, how: str = "count", gap: int = 100, grace: int = 0):
    return windowed_app(sl.Session(gap, grace=grace), final, how)


def test_a_record_within_the_gap_extends_its_session_and_emits_tombstone_then_merged_session() -> None:
    with TestDriver(session_app()) as d:
        send(d, ("a", 0, 1), ("a", 100, 1), ("a", 300, 1))
        rows = [(r.key, r.value, r.timestamp) for r in d.read_records("out")]
        assert rows == [(sl.Windowed("a", 0, 0), 1, 0),
                        (sl.Windowed("a", 0, 0), None, 0), (sl.Windowed("a", 0, 100), 2, 100),
                        (sl.Windowed("a", 300, 300), 1, 300)]  # 300 - 100 > gap: a new session


def test_a_record_between_two_sessions_merges_them_into_one() -> None:
    with TestDriver(session_app(how="named", grace=1000)) as d:
        send(d, ("a", 0, 5), ("a", 200, 7), ("a", 100, 1))
        assert out(d)[-3:] == [("a", 0, 0, None), ("a", 200, 200, None),
                               ("a", 0, 200, {"n": 3, "total": 13, "first": 5})]  # the union, by offset
        assert d.store("w").fetch("a") == [(sl.Windowed("a", 0, 200), {"n": 3, "total": 13, "first": 5})]


def test_a_record_inside_its_session_updates_it_without_a_tombstone() -> None:
    with TestDriver(session_app()) as d:
        send(d, ("a", 0, 1), ("a", 100, 1), ("a", 50, 1))
        assert out(d)[-1:] == [("a", 0, 100, 3)] and len(out(d)) == 0


def test_a_session_closed_by_end_plus_gap_plus_grace_drops_a_late_record() -> None:
    with TestDriver(session_app(grace=50)) as d:
        send(d, ("a", 0, 1), ("b", 200, 1))  # stream time 200 > 0 + 100 + 50: [0, 0] is closed
        send(d, ("a", 20, 1))                # its session would end at 20: 20 + 150 < 200, late
        send(d, ("a", 60, 1))                # 60 + 150 >= 200: a session of its own ([0, 0] expired)
        assert out(d) == [("a", 0, 0, 1), ("b", 200, 200, 1), ("a", 60, 60, 1)]
        assert d.metrics() == {'late_records_dropped{partition="0",store="w"}': 1}


def test_session_emit_final_emits_each_session_once_it_closes_in_end_then_start_order() -> None:
    with TestDriver(session_app(final=True)) as d:
        send(d, ("b", 30, 1), ("a", 0, 1), ("a", 50, 1), ("c", 150, 1))
        assert out(d) == [("b", 30, 30, 1)]    # 30 + 100 < 150; 50 + 100 < 150 is false: still open
        send(d, ("c", 160, 1))
        assert out(d) == [("a", 0, 50, 2)]
        send(d, ("c", 200, 1))
        assert out(d) == []
        send(d, ("c", 1000, 1))
        assert out(d) == [("c", 150, 200, 3)]


def test_a_user_aggregate_on_sessions_needs_a_merger() -> None:
    grouped = sl.App("s").stream("in").group_by_key().windowed_by(sl.Session(100, grace=0))
    with pytest.raises(TopologyError, match="needs merger="):
        grouped.aggregate(lambda: 0, lambda k, v, a: a + 1, name="x")
    grouped.aggregate(lambda: 0, lambda k, v, a: a + 1, merger=lambda k, a, b: a + b, name="y")


def test_a_replayed_record_changes_no_window_twice() -> None:
    with TestDriver(windowed_app(sl.Hopping(1000, 500, grace=0))) as d:
        send(d, ("a", 100, 1), ("a", 700, 1))
        d.read_records("out")
        d.redeliver("in", from_offset=0)      # after a crash: the records come again
        assert out(d) == [] and d.store("w").fetch("a")[0] == (sl.Windowed("a", 0, 1000), 2)
    with TestDriver(session_app()) as d:
        send(d, ("a", 0, 1), ("a", 50, 1))
        d.read_records("out")
        d.redeliver("in", from_offset=0)
        assert out(d) == [] and d.store("w").fetch("a") == [(sl.Windowed("a", 0, 50), 2)]


# -- sliding windows --------------------------------------------------------------------------------
def test_sliding_windows_end_at_each_record_and_open_right_windows_for_later_ones() -> None:
    with TestDriver(windowed_app(sl.Sliding(100, grace=1000))) as d:
        send(d, ("a", 500, 1), ("a", 550, 1), ("a", 700, 1))
        assert out(d) == [
            ("a", 400, 500, 1),                     # 500: its left window
            ("a", 501, 601, 1),                     # 550: 500's right window, with 550 only
            ("a", 450, 550, 2),                     # 550: its left window, 500 and 550
            ("a", 600, 700, 1),                     # 700: its left window; nothing within 100 before it
        ]
        assert [w for w, _ in d.store("w").fetch("a")] == [
            sl.Windowed("a", 400, 500), sl.Windowed("a", 450, 550), sl.Windowed("a", 501, 601),
            sl.Windowed("a", 600, 700)]


def test_a_sliding_record_before_the_max_difference_falls_in_the_first_window() -> None:
    with TestDriver(windowed_app(sl.Sliding(100, grace=1000))) as d:
        send(d, ("a", 10, 1), ("a", 40, 1))
        assert out(d) == [("a", 0, 100, 1), ("a", 11, 111, 1), ("a", 0, 100, 2)]


def test_sliding_emit_final_emits_each_window_once_after_its_end_plus_grace() -> None:
    with TestDriver(windowed_app(sl.Sliding(100, grace=0), final=True)) as d:
        send(d, ("a", 500, 1), ("a", 550, 1))
        assert out(d) == [("a", 400, 500, 1)]  # closed: its end is before stream time 550
        send(d, ("b", 700, 1))
        assert out(d) == [("a", 450, 550, 2), ("a", 501, 601, 1)]


def test_late_records_can_go_to_the_dead_letter_topic_with_the_reason() -> None:
    app = sl.App("win", late_records="dead_letter")
    app.stream("in").group_by_key().windowed_by(sl.Hopping(1000, 500, grace=0)).count(name="w")
    with TestDriver(app) as d:
        send(d, ("a", 2000, 1))
        send(d, ("a", 1600, 1))  # late for [1000, 2000), in time for [1500, 2500): not dead-lettered
        send(d, ("a", 900, 1))   # late for both its windows
        [dead] = d.read_records("win-dead-letter")
        headers = dict(dead.headers)
        assert dead.key == b"a" and dead.timestamp == 900
        assert headers["streamlet.stage"] == b"window" and headers["streamlet.offset"] == b"2"
        assert b"late record for store 'w'" in headers["streamlet.error"]
        assert d.metrics() == {'late_records_dropped{partition="0",store="w"}': 3}


def test_late_records_setting_is_checked() -> None:
    with pytest.raises(sl.errors.ConfigError, match="late_records='keep' is not valid"):
        sl.App("a", late_records="keep")
