"""Stream–stream windowed joins (KStream.join / left_join / outer_join with sl.JoinWindows), with Kafka
Streams' KStreamKStreamJoin semantics, through the TestDriver."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

import streamlet as sl
from streamlet.errors import TopologyError
from streamlet.testing import TestDriver
from streamlet.topology.describe import describe_text


def pair(a: Any, b: Any) -> list[Any]:
    return [a, b]


def _app(how: str, windows: sl.JoinWindows, name: str = "j") -> sl.App:
    app = sl.App(f"ss-{how}")
    left, right = app.stream("left"), app.stream("right")
    getattr(left, how)(right, pair, windows, name=name).to("out")
    return app


def _out(d: TestDriver) -> list[tuple[Any, Any, int]]:
    return [(r.key, r.value, r.timestamp) for r in d.read_records("out")]


# -- the window ------------------------------------------------------------------------------------
def test_inner_join_window_bounds_are_inclusive_and_output_has_the_larger_timestamp() -> None:
    with TestDriver(_app("join", sl.JoinWindows(before=100, after=200, grace=1000))) as d:
        d.send("left", "k", "L", timestamp=1000)
        for ts in (899, 900, 1200, 1201):
            d.send("right", "k", f"R{ts}", timestamp=ts)
        # a right record at ts joins left records in [ts - after, ts + before]
        assert _out(d) == [("k", ["L", "R900"], 1000), ("k", ["L", "R1200"], 1200)]
        d.send("right", "other", "X", timestamp=1000)  # another key: nothing
        assert _out(d) == []


def test_asymmetric_window_seen_from_both_sides() -> None:
    windows = sl.JoinWindows(before=0, after=500, grace=10_000)
    with TestDriver(_app("join", windows)) as d:
        d.send("right", "k", "R1", timestamp=1000)
        d.send("left", "k", "L1", timestamp=1100)  # R1 is 100 before L1: before=0, no
        d.send("left", "k", "L2", timestamp=600)   # R1 is 400 after L2: yes
        d.send("left", "k", "L3", timestamp=1000)  # same time: yes
        assert _out(d) == [("k", ["L2", "R1"], 1000), ("k", ["L3", "R1"], 1000)]
        d.send("right", "k", "R2", timestamp=1100)  # left records in [1100 - 500, 1100 + 0]
        # oldest first
        assert _out(d) == [("k", ["L2", "R2"], 1100), ("k", ["L3", "R2"], 1100), ("k", ["L1", "R2"], 1100)]


def test_duplicates_on_both_sides_all_join() -> None:
    with TestDriver(_app("join", sl.JoinWindows.of(100, grace=0))) as d:
        d.send("left", "k", "L", timestamp=1000)
        d.send("left", "k", "L", timestamp=1000)
        d.send("right", "k", "R", timestamp=1000)
        d.send("right", "k", "R", timestamp=1050)
        out = _out(d)
        assert out == [("k", ["L", "R"], 1000)] * 2 + [("k", ["L", "R"], 1050)] * 2


def test_durations_as_timedelta() -> None:
    w = sl.JoinWindows.of(timedelta(seconds=2), grace=timedelta(milliseconds=500))
    assert (w.before, w.after, w.grace) == (2000, 2000, 500)
    assert sl.JoinWindows(timedelta(0), 3, 0).size == 3


def test_a_self_join_joins_each_record_with_itself_and_its_neighbours() -> None:
    app = sl.App("self")
    s = app.stream("events")
    s.join(s, pair, sl.JoinWindows.of(100, grace=0), name="self").to("out")
    with TestDriver(app) as d:
        d.send("events", "k", "a", timestamp=1000)
        assert _out(d) == [("k", ["a", "a"], 1000)]
        d.send("events", "k", "b", timestamp=1050)
        assert _out(d) == [("k", ["b", "a"], 1050), ("k", ["a", "b"], 1050), ("k", ["b", "b"], 1050)]


def test_a_negative_before_shifts_the_window() -> None:
    # a right record joins left records 100..300 ms before it, never after
    with TestDriver(_app("join", sl.JoinWindows(before=-100, after=300, grace=1000))) as d:
        for ts in (1000, 1150, 1250):
            d.send("left", "k", f"L{ts}", timestamp=ts)
        d.send("right", "k", "R", timestamp=1300)
        assert _out(d) == [("k", ["L1000", "R"], 1300), ("k", ["L1150", "R"], 1300)]


# -- unmatched records: only once the window has closed --------------------------------------------
def test_left_join_emits_unmatched_only_after_the_window_and_grace_before_the_trigger() -> None:
    with TestDriver(_app("left_join", sl.JoinWindows(before=100, after=100, grace=50))) as d:
        d.send("left", "a", "A", timestamp=1000)  # unmatched: out once stream time passes 1000 + 100 + 50
        d.send("left", "b", "B", timestamp=1000)
        d.send("right", "x", "X", timestamp=1100)
        d.send("right", "b", "Bmatch", timestamp=1090)  # within B's window (out of order): joins
        assert _out(d) == [("b", ["B", "Bmatch"], 1090)]
        d.send("left", "a", "A3", timestamp=1100)
        d.send("left", "z", "Z", timestamp=1150)  # 1150 has not passed 1150: A waits
        assert _out(d) == []
        d.send("right", "a", "a", timestamp=1151)  # A first, then this record's own result
        assert _out(d) == [("a", ["A", None], 1000), ("a", ["A3", "a"], 1151)]
        d.send("left", "q", "Q", timestamp=5000)  # B was matched, A3 too: only Z is left
        assert _out(d) == [("z", ["Z", None], 1150)]


def test_left_join_never_emits_the_right_side_unmatched() -> None:
    with TestDriver(_app("left_join", sl.JoinWindows.of(10, grace=0))) as d:
        d.send("right", "r", "R", timestamp=0)
        d.send("left", "l", "L", timestamp=1000)
        d.send("left", "l", "L", timestamp=2000)
        assert _out(d) == [("l", ["L", None], 1000)]


def test_outer_join_emits_both_sides_unmatched_each_with_its_own_window() -> None:
    windows = sl.JoinWindows(before=300, after=100, grace=0)
    with TestDriver(_app("outer_join", windows)) as d:
        d.send("left", "a", "A", timestamp=1000)   # left: waits until stream time passes 1000 + 100
        d.send("right", "b", "B", timestamp=1000)  # right: until it passes 1000 + 300 (its "after" is before)
        d.send("left", "c", "C", timestamp=1101)
        assert _out(d) == [("a", ["A", None], 1000)]
        d.send("left", "y", "Y", timestamp=1300)
        assert _out(d) == [("c", ["C", None], 1101)]
        # B's window has closed (1301 > 1300), but as in Kafka Streams a right record looks only once
        # stream time passes the tracker's low mark (1101, the last record the previous look saw) +
        # before: B waits for the next left record — later than its window's close, never earlier
        d.send("right", "c", "c2", timestamp=1301)  # c2 finds no left record in [1201, 1601]
        assert _out(d) == []
        d.send("left", "c", "C3", timestamp=1350)  # B first, then C3 joins c2 (no longer unmatched)
        assert _out(d) == [("b", [None, "B"], 1000), ("c", ["C3", "c2"], 1350)]
        d.send("left", "w", "W", timestamp=9000)
        assert _out(d) == [("y", ["Y", None], 1300)]


def test_a_record_filtered_out_before_the_join_closes_no_window() -> None:
    app = sl.App("filtered")
    left = app.stream("left").filter(lambda k, v: v != "skip")
    left.left_join(app.stream("right"), pair, sl.JoinWindows.of(100, grace=0), name="j").to("out")
    with TestDriver(app) as d:
        d.send("left", "a", "A", timestamp=1000)
        d.send("left", "x", "skip", timestamp=9000)  # the task's stream time moves, the join's does not
        d.send("right", "y", "Y", timestamp=1000)
        assert _out(d) == []
        d.send("right", "y", "Y2", timestamp=9000)
        assert _out(d) == [("a", ["A", None], 1000)]


def test_a_record_whose_window_already_passed_is_emitted_unmatched_at_once() -> None:
    with TestDriver(_app("left_join", sl.JoinWindows(before=100, after=100, grace=500))) as d:
        d.send("left", "x", "X", timestamp=2000)
        d.send("left", "k", "late", timestamp=1800)  # 1800 + 100 < 2000: nothing can still join it
        assert _out(d) == [("k", ["late", None], 1800)]


def test_a_match_removes_the_record_from_the_unmatched_ones() -> None:
    with TestDriver(_app("outer_join", sl.JoinWindows.of(100, grace=0))) as d:
        d.send("left", "k", "L", timestamp=1000)
        d.send("right", "k", "R", timestamp=1100)
        d.send("left", "x", "X", timestamp=5000)
        d.send("left", "x", "X", timestamp=9000)
        assert _out(d) == [("k", ["L", "R"], 1100), ("x", ["X", None], 5000)]


# -- grace, expiry and late records ----------------------------------------------------------------
def test_records_older_than_the_retention_are_not_joined() -> None:
    # retention = before + after + grace = 300: each side keeps records newer than its latest − 300
    with TestDriver(_app("join", sl.JoinWindows(before=100, after=100, grace=100))) as d:
        d.send("right", "k", "R", timestamp=1000)
        d.send("right", "x", "R2", timestamp=1300)  # the right side has seen 1300: R (at 1000) expired
        d.send("left", "k", "L", timestamp=1050)
        assert _out(d) == []
        d.send("left", "k", "late", timestamp=600)  # the left side has seen 1050: 600 expired, not buffered
        d.send("right", "k", "R3", timestamp=650)    # (late itself; its window covers 600)
        assert _out(d) == []
        d.send("left", "k", "ok", timestamp=800)     # 800 > 1050 − 300: buffered
        d.send("right", "k", "R4", timestamp=850)
        assert _out(d) == [("k", ["ok", "R4"], 850)]


def test_expired_segments_leave_the_store() -> None:
    app = _app("join", sl.JoinWindows.of(1000, grace=0))
    with TestDriver(app) as d:
        for i in range(20):  # one record a minute
            d.send("left", f"k{i}", "v", timestamp=i * 60_000)
        store = d.store("j-this-join-store")
        # retention 2 s, segments of 60 s: only the newest segments are kept
        assert 1 <= len(store) <= 2


# -- nulls -----------------------------------------------------------------------------------------
def test_null_keys_and_values_are_dropped_by_an_inner_join() -> None:
    with TestDriver(_app("join", sl.JoinWindows.of(100, grace=0))) as d:
        d.send("left", None, "L", timestamp=1000)
        d.send("right", None, "R", timestamp=1000)
        d.send("left", "k", None, timestamp=1000)
        d.send("right", "k", "R", timestamp=1000)
        assert _out(d) == []


def test_a_keyless_record_of_an_outer_side_is_emitted_at_once() -> None:
    # Kafka Streams 3.7+ (KIP-962): a left / outer join emits a keyless record joined with null
    with TestDriver(_app("left_join", sl.JoinWindows.of(100, grace=0))) as d:
        d.send("left", None, "L", timestamp=1000)
        d.send("right", None, "R", timestamp=1000)
        d.send("left", "k", None, timestamp=1000)
        assert _out(d) == [(None, ["L", None], 1000)]


# -- replay, topology, errors ----------------------------------------------------------------------
def test_a_replayed_record_is_not_buffered_twice() -> None:
    with TestDriver(_app("join", sl.JoinWindows.of(100, grace=0))) as d:
        d.send("left", "k", "L", timestamp=1000)
        d.send("right", "k", "R", timestamp=1000)
        assert _out(d) == [("k", ["L", "R"], 1000)]
        d.redeliver("left", 0)  # at-least-once: processed again after a crash
        assert _out(d) == [("k", ["L", "R"], 1000)]  # its output again (at least once)
        d.send("right", "k", "R2", timestamp=1010)
        assert _out(d) == [("k", ["L", "R2"], 1010)]  # L is buffered once
        assert len(d.store("j-this-join-store")) == 1


def test_stores_changelogs_and_description() -> None:
    app = _app("outer_join", sl.JoinWindows.of(100, grace=0), name="pay")
    topo = app.topology
    assert sorted(topo.stores) == ["pay-other-join-store", "pay-outer-shared-join-store", "pay-this-join-store"]
    changelog = topo.internal_topics["ss-outer_join-pay-this-join-store-changelog"]
    assert changelog.config["cleanup.policy"] == "compact,delete"
    assert int(changelog.config["retention.ms"]) == 200 + 86_400_000
    assert topo.internal_topics["ss-outer_join-pay-outer-shared-join-store-changelog"].config[
        "cleanup.policy"] == "compact"
    text = describe_text(topo)
    assert "(store: pay-this-join-store)" in text and "(store: pay-outer-shared-join-store)" in text
    assert len(topo.subtopologies()) == 1  # both streams in one task: co-partitioned
    assert "pay-outer-shared-join-store" not in _app("join", sl.JoinWindows.of(1, grace=0)).topology.stores


def test_a_rekeyed_stream_is_repartitioned_before_the_join() -> None:
    app = sl.App("rekey")
    left = app.stream("left").select_key(lambda k, v: v["user"])
    left.join(app.stream("right"), pair, sl.JoinWindows.of(100, grace=0), name="j").to("out")
    assert "rekey-j-left-repartition" in app.topology.internal_topics
    with TestDriver(app) as d:
        d.send("left", "x", {"user": "u1"}, timestamp=1000)
        d.send("right", "u1", "R", timestamp=1000)
        assert d.read("out") == [("u1", [{"user": "u1"}, "R"])]


def test_misuse_says_what_to_do() -> None:
    app = sl.App("bad")
    s, other = app.stream("a"), app.stream("b")
    with pytest.raises(TypeError, match="JoinWindows"):
        s.join(other, pair)
    with pytest.raises(TypeError, match="no window"):
        s.join(app.table("t"), pair, sl.JoinWindows.of(1, grace=0))
    with pytest.raises(TypeError, match="outer join with a table"):
        s.outer_join(app.table("t2"), pair)
    with pytest.raises(TopologyError, match="same App"):
        s.join(sl.App("other").stream("c"), pair, sl.JoinWindows.of(1, grace=0))
    with pytest.raises(TypeError):
        sl.JoinWindows.of(100)  # grace is explicit
    with pytest.raises(ValueError, match="negative"):
        sl.JoinWindows(100, 100, -1)
    with pytest.raises(ValueError, match="negative"):
        sl.JoinWindows(-200, 100, 0)
    with pytest.raises(TypeError, match="milliseconds"):
        sl.JoinWindows(1.5, 1, 0)
