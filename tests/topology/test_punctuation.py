"""Punctuators through the TestDriver: Kafka Streams' ``ProcessorContext.schedule`` semantics.

Stream-time punctuators are aligned to multiples of their interval and fire when the task's stream
time (its largest record timestamp) reaches the next one — once per advance, with the current
stream time; wall-clock ones fire ``interval`` after they were scheduled, once per
``advance_wall_clock`` however many intervals went by. Each runs with generated chains and with
closures.
"""

from __future__ import annotations

from typing import Any

import pytest

import streamlet as sl
from streamlet.errors import PunctuationError

ST, WALL = sl.PunctuationType.STREAM_TIME, sl.PunctuationType.WALL_CLOCK_TIME


class Ticks(sl.Processor):
    """Forwards ('tick', punctuation time) on each punctuation of ``kind``; counts what it saw."""

    kind = ST
    interval = 1000
    made: list["Ticks"] = []

    def init(self, context: sl.ProcessorContext) -> None:
        self.context, self.seen, self.closed = context, [], False
        self.handle = context.schedule(self.interval, self.kind, self.tick)
        Ticks.made.append(self)

    def process(self, record: sl.Record) -> Any:
        self.seen.append((record.value, self.context.stream_time))
        return record

    def tick(self, ts: int) -> None:
        self.context.forward("tick", ts)

    def close(self) -> None:
        self.closed = True


def ticking_app(processor: type = Ticks, **source: Any) -> sl.App:
    app = sl.App("punctuate")
    app.stream("in", **source).process(processor).to("out")
    return app


def sends(d: Any, *timestamps: int) -> list[tuple[Any, Any, int]]:
    for i, ts in enumerate(timestamps):
        d.send("in", key=f"k{i}", value=i, timestamp=ts)
    return [(r.key, r.value, r.timestamp) for r in d.read_records("out")]


def test_stream_time_punctuation_is_aligned_and_fires_once_per_advance(generated: bool) -> None:
    with sl.testing.TestDriver(ticking_app()) as d:
        out = sends(d, 500, 900, 1000, 999, 4700, 4800, 6000)
    assert out == [("k0", 0, 500), ("tick", 500, 500),        # due at 0: fires at the first record
                   ("k1", 1, 900),
                   ("k2", 2, 1000), ("tick", 1000, 1000),     # 1000 reached
                   ("k3", 3, 999),                            # late: stream time stays 1000
                   ("k4", 4, 4700), ("tick", 4700, 4700),     # 2000, 3000, 4000 missed: one tick
                   ("k5", 5, 4800),
                   ("k6", 6, 6000), ("tick", 6000, 6000)]     # next was 5000


def test_stream_time_never_goes_back_and_follows_the_records(generated: bool) -> None:
    Ticks.made = []
    with sl.testing.TestDriver(ticking_app()) as d:
        assert d.stream_time("in") == -1
        sends(d, 3000, 1000, 2000, 3500)
        assert d.stream_time("in") == 3500
    assert Ticks.made[0].seen == [(0, 3000), (1, 3000), (2, 3000), (3, 3500)]


def test_wall_clock_punctuation_fires_once_however_late(generated: bool) -> None:
    class Wall(Ticks):
        kind, interval = WALL, 100

    with sl.testing.TestDriver(ticking_app(Wall), start_time_ms=10_000) as d:
        assert sends(d, 1) == [("k0", 0, 1)]  # records do not move the wall clock
        d.advance_wall_clock(99)
        assert d.read("out") == []
        d.advance_wall_clock(1)
        assert d.read_records("out")[0][:3] == ("tick", 10_100, 10_100)
        d.advance_wall_clock(1_000)  # ten intervals: one punctuation, the next aligned after now
        assert d.read("out") == [("tick", 11_100)]
        d.advance_wall_clock(50)
        assert d.read("out") == []
        d.advance_wall_clock(50)
        assert d.read("out") == [("tick", 11_200)]
        d.advance_time(100)  # the older name
        assert d.read("out") == [("tick", 11_300)]


def test_the_other_clock_does_not_fire_a_punctuator(generated: bool) -> None:
    class Wall(Ticks):
        kind = WALL

    with sl.testing.TestDriver(ticking_app(Wall)) as d:
        assert sends(d, 50_000) == [("k0", 0, 50_000)]
    with sl.testing.TestDriver(ticking_app()) as d:
        d.advance_wall_clock(50_000)
        assert d.read("out") == []


def test_a_cancelled_punctuator_stops_also_from_its_own_callback(generated: bool) -> None:
    class Twice(Ticks):
        def tick(self, ts: int) -> None:
            super().tick(ts)
            if ts >= 1000:
                self.handle.cancel()

    with sl.testing.TestDriver(ticking_app(Twice)) as d:
        out = sends(d, 0, 1000, 2000, 3000)
    assert [k for k, _, _ in out].count("tick") == 2


def test_punctuators_of_each_task_and_close_at_the_end(generated: bool) -> None:
    Ticks.made = []
    with sl.testing.TestDriver(ticking_app(), partitions=2) as d:
        d.send("in", key="a", value=1, timestamp=5000, partition=0)
        d.send("in", key="b", value=2, timestamp=100, partition=1)
        assert (d.stream_time("in", 0), d.stream_time("in", 1)) == (5000, 100)
        assert [r.value for r in d.read_records("out") if r.key == "tick"] == [5000, 100]
        assert len(Ticks.made) == 2 and not any(p.closed for p in Ticks.made)
    assert all(p.closed for p in Ticks.made)


def test_a_punctuator_feeds_an_aggregation_through_a_repartition(generated: bool) -> None:
    """What a punctuator forwards reaches stores downstream, each record once (two of one key in one
    punctuation are two records)."""

    class Tally(sl.Processor):
        def init(self, context: sl.ProcessorContext) -> None:
            self.context, self.n = context, 0
            context.schedule(1000, ST, self.flush)

        def process(self, record: sl.Record) -> None:
            self.n += 1

        def flush(self, ts: int) -> None:
            self.context.forward(sl.Record("total", {"n": self.n}, ts, None, -1, -1))
            self.context.forward("batches", {"n": 1}, headers=[("at", str(ts).encode())])
            self.context.forward("batches", {"n": 1})

    app = sl.App("punctuate-agg")
    app.stream("in").process(Tally).group_by_key().aggregate(
        last=sl.agg.latest_by_offset("n"), events=sl.agg.count(), name="tallies")
    with sl.testing.TestDriver(app) as d:
        for ts in (0, 10, 1500, 1600, 4000):  # punctuations at 0, 1500 and 4000
            d.send("in", key="k", value={}, timestamp=ts)
        assert dict(d.store("tallies").items()) == {"total": {"last": 5, "events": 3},
                                                    "batches": {"last": 1, "events": 6}}


def test_a_punctuator_that_raises_stops_with_what_to_do(generated: bool) -> None:
    class Broken(Ticks):
        def tick(self, ts: int) -> None:
            raise KeyError("oops")

    with sl.testing.TestDriver(ticking_app(Broken)) as d:
        with pytest.raises(PunctuationError, match=r"task 0_0: a STREAM_TIME punctuator .*Broken.tick.* raised "
                                                   r"at 5: KeyError.*fix the punctuator"):
            d.send("in", key="a", value=1, timestamp=5)


def test_schedule_checks_its_arguments() -> None:
    def app_scheduling(*args: Any) -> sl.App:
        class Bad(sl.Processor):
            def init(self, context: sl.ProcessorContext) -> None:
                context.schedule(*args)

            def process(self, record: sl.Record) -> None:
                return None

        return ticking_app(Bad)

    with pytest.raises(ValueError, match="at least 1 ms"):
        sl.testing.TestDriver(app_scheduling(0, ST, print))
    with pytest.raises(TypeError, match="PunctuationType"):
        sl.testing.TestDriver(app_scheduling(10, "stream", print))
    with pytest.raises(TypeError, match="callback"):
        sl.testing.TestDriver(app_scheduling(10, WALL, None))
    with pytest.raises(TypeError, match="no process"):
        sl.App("x").stream("in").process(type("NoProcess", (), {}))


def test_forward_in_process_keeps_the_record_context() -> None:
    class Echo(sl.Processor):
        def init(self, context: sl.ProcessorContext) -> None:
            self.context = context

        def process(self, record: sl.Record) -> None:
            self.context.forward(record.key, record.value * 2)
            self.context.forward(record.key, record.value * 3, timestamp=7)

    with sl.testing.TestDriver(ticking_app(Echo)) as d:
        d.send("in", key="a", value=1, timestamp=100, headers=[("h", b"1")])
        assert [(r.value, r.timestamp, r.headers) for r in d.read_records("out")] == [
            (2, 100, [("h", b"1")]), (3, 7, [("h", b"1")])]


def test_stream_time_is_kept_only_by_chains_that_read_it() -> None:
    app = sl.App("cost")
    app.stream("plain").process(lambda r: r).map_values(lambda v: v).to("out1")
    app.stream("timed").process(Ticks).to("out2")
    with sl.testing.TestDriver(app) as d:
        assert "stream_time" not in d.tasks.routes["plain"][0].__streamlet_source__
        assert "ctx.stream_time = ts0" in d.tasks.routes["timed"][0].__streamlet_source__
        d.send("plain", key="a", value=1, timestamp=99)
        assert d.stream_time("plain") == -1
