"""The worker's record loop (``Runner._loop`` with a fake consumer): stream-time punctuators are
checked after each batch — once per batch however far stream time moved, as Kafka Streams'
stream thread does — and wall-clock ones once per loop, also when a poll brings nothing; a bad
timestamp goes through the error policy like any bad record."""

from __future__ import annotations

from typing import Any

import pytest

import streamlet as sl
from streamlet.errors import PunctuationError, RecordError
from streamlet.runtime.error_policy import ErrorPolicy
from streamlet.runtime.runner import Runner
from streamlet.runtime.task_manager import TaskManager
from tests.topology.test_record_loop import FakeCommitter, FakeConsumer, Sent, _msg


class Clock:
    def __init__(self) -> None:
        self.now = 10_000

    def __call__(self) -> int:
        return self.now


class TickingConsumer(FakeConsumer):
    """Each poll moves the clock 100 ms."""

    def __init__(self, app: sl.App, batches: list[list[Any]], clock: Clock) -> None:
        super().__init__(app, batches)
        self.clock = clock

    def consume(self, n: int, timeout: float) -> list[Any]:
        self.clock.now += 100
        return super().consume(n, timeout)


class Ticks(sl.Processor):
    def init(self, context: sl.ProcessorContext) -> None:
        self.context = context
        context.schedule(1000, sl.PunctuationType.STREAM_TIME, lambda ts: context.forward("st", ts))
        context.schedule(250, sl.PunctuationType.WALL_CLOCK, lambda ts: context.forward("wall", ts))

    def process(self, record: sl.Record) -> sl.Record:
        return record


def run(app: sl.App, batches: list[list[Any]], policy: str = "fail") -> tuple[list[tuple[Any, ...]], Runner]:
    clock = Clock()
    sent = Sent()
    runner = Runner(app)
    runner.consumer = TickingConsumer(app, batches, clock)
    runner.committer = FakeCommitter()  # type: ignore[assignment]
    runner.fatal = None
    runner.policy = ErrorPolicy(policy, app.config.dead_letter, sent.produce)
    runner.tasks = TaskManager(app.topology, sent.produce, {"in": 1}, clock=clock)
    runner.tasks.assign([("in", 0)])
    try:
        runner._loop()
    finally:
        runner.outputs = [(r[2], r[4]) for r in sent.records]  # type: ignore[attr-defined]
    return runner.outputs, runner  # type: ignore[attr-defined]


def record(offset: int, ts: int, value: bytes = b"{}") -> Any:
    return _msg("in", 0, offset, f"k{offset}", value, ts)


def test_punctuators_fire_once_per_batch_and_wall_clock_also_between_batches() -> None:
    app = sl.App("loop-punctuate")
    app.stream("in").process(Ticks).to("out")
    batches = [[record(0, 500), record(1, 900), record(2, 1000)], [], [record(3, 4700)], []]
    out, _ = run(app, batches)
    # polls at 10100, 10200, 10300, 10400, 10500 (the last one finds nothing and stops)
    assert out == [(b"k0", 500), (b"k1", 900), (b"k2", 1000), (b"st", 1000),  # one tick for the batch
                   (b"k3", 4700), (b"st", 4700), (b"wall", 10_300),
                   (b"wall", 10_500)]


def test_a_punctuator_that_raises_stops_the_loop() -> None:
    class Broken(sl.Processor):
        def init(self, context: sl.ProcessorContext) -> None:
            context.schedule(10, sl.PunctuationType.STREAM_TIME, lambda ts: 1 / 0)

        def process(self, record: sl.Record) -> None:
            return None

    app = sl.App("loop-broken")
    app.stream("in").process(Broken).to("out")
    with pytest.raises(PunctuationError, match="ZeroDivisionError"):
        run(app, [[record(0, 5)]])


def test_a_topology_without_processor_classes_never_looks_for_punctuators(monkeypatch) -> None:
    app = sl.App("loop-plain")
    app.stream("in").process(lambda r: r).to("out")
    monkeypatch.setattr(Runner, "_punctuate", lambda self: pytest.fail("looked for punctuators"))
    out, _ = run(app, [[record(0, 5)]])
    assert out == [(b"k0", 5)]


@pytest.mark.parametrize("policy", ["fail", "skip"])
def test_a_bad_timestamp_in_the_loop_goes_through_the_error_policy(policy: str) -> None:
    app = sl.App("loop-ts", on_error=policy)
    app.stream("in", timestamp="at").to("out")
    batch = [record(0, 1, b'{"at": 7}'), record(1, 1, b'{"at": "x"}'), record(2, 1, b'{"at": 9}')]
    if policy == "fail":
        with pytest.raises(RecordError, match="no valid timestamp in record at topic 'in' partition 0 offset 1"):
            run(app, [batch], policy)
        return
    out, runner = run(app, [batch], policy)
    assert out == [(b"k0", 7), (b"k2", 9)] and runner.policy.skipped == 1
