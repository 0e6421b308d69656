"""Task states and punctuation in a worker (`app.run()` on the embedded broker): the worker is ready
only once every assigned task has restored its stores, and a wall-clock punctuator fires from the
record loop while no record arrives."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

import streamlet as sl
from tests.integration.kafka_io import Follower
from tests.integration.procs import app_in_thread
from tests.integration.test_restoring_tasks import (
    PER_PARTITION,
    counted,
    counts_app,
    first_task_done,
    gate_second_restore,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_the_worker_is_ready_only_when_every_task_has_restored(tmp_path: Path, monkeypatch) -> None:
    gate = gate_second_restore(monkeypatch)
    app, _ = counts_app(tmp_path, "ready-app")
    assert app.state()["state"] == "not_running"
    with app_in_thread(app) as errors, gate:
        slow, done = first_task_done(app, gate, errors)
        runner = app._runner
        assert runner is not None and runner.assigned.is_set()
        time.sleep(0.3)  # processing goes on for the restored task; readiness waits for the other
        assert not runner.ready.is_set()
        state = app.state()
        assert state["state"] == "restoring" and not state["ready"]
        assert state["tasks"] == {f"0_{done}": "RUNNING", f"0_{slow}": "RESTORING"}
        gate.set()
        assert runner.ready.wait(30), app.state()
        assert app.state() == {"state": "running", "ready": True, "tasks": {"0_0": "RUNNING", "0_1": "RUNNING"}}
        wait_for(lambda: counted(app, slow) == PER_PARTITION, errors, "the records after the restore")
    assert not errors
    assert app.state()["state"] == "not_running"


class Heartbeat(sl.Processor):
    """Forwards ('beat', wall-clock time) every 100 ms and ('st', stream time) every 1000 ms of it."""

    def init(self, context: sl.ProcessorContext) -> None:
        self.context = context
        context.schedule(100, sl.PunctuationType.WALL_CLOCK_TIME, lambda ts: context.forward("beat", ts))
        context.schedule(1000, sl.PunctuationType.STREAM_TIME, lambda ts: context.forward("st", ts))

    def process(self, record: sl.Record) -> sl.Record:
        return record


def test_punctuators_in_a_running_worker(tmp_path: Path) -> None:
    app = sl.App("beat-app", brokers="embedded", state_dir=str(tmp_path), commit_interval_ms=100)
    app.stream("events").process(Heartbeat).to("beats")
    broker = app.embedded_broker()
    broker.create_topic("events", 1)
    broker.create_topic("beats", 1)
    bootstrap = broker.bootstrap_servers
    with app_in_thread(app) as errors, Follower(bootstrap, "beats", 1) as beats:
        wait_for(lambda: app._runner is not None and app._runner.ready.is_set(), errors, "the worker ready")
        started = int(time.time() * 1000)
        # no input at all: the wall-clock punctuator still fires, from the record loop
        wait_for(lambda: sum(m.key() == b"beat" for m in beats.poll()) >= 5, errors, "wall-clock beats")
        beat_times = [orjson.loads(m.value()) for m in beats.poll() if m.key() == b"beat"]
        assert all(t >= started - 200 for t in beat_times) and beat_times == sorted(beat_times)
        assert len(set(beat_times)) == len(beat_times)
        assert not any(m.key() == b"st" for m in beats.poll())  # no record: no stream time
        p = Producer({"bootstrap.servers": bootstrap})
        p.produce("events", b"{}", b"k", 0, timestamp=5_000)
        assert p.flush(10) == 0
        wait_for(lambda: any(m.key() == b"st" for m in beats.poll()), errors, "the stream-time punctuation")
        st = [(orjson.loads(m.value()), m.timestamp()[1]) for m in beats.poll() if m.key() == b"st"]
        assert st == [(5_000, 5_000)]
    assert not errors


class StreamTimeProbe(sl.Processor):
    """Emits each record with the task's stream time as its value (a stream-time punctuator makes the
    task keep stream time)."""

    def init(self, context: sl.ProcessorContext) -> None:
        self.context = context
        context.schedule(60_000, sl.PunctuationType.STREAM_TIME, lambda ts: None)

    def process(self, record: sl.Record) -> sl.Record:
        return record._replace(value=self.context.stream_time)


def test_stream_time_is_committed_with_the_offsets_and_resumed_after_a_restart(tmp_path: Path, broker,
                                                                               broker_kind: str) -> None:
    from confluent_kafka import Consumer, TopicPartition

    from streamlet.runtime.stream_time import decode

    if broker_kind == "tansu":
        pytest.skip("Tansu drops the metadata of committed offsets")
    for t in ("events", "probe"):
        broker.create_topic(t, 1)

    def app() -> sl.App:
        a = sl.App("st-app", brokers=broker.bootstrap, state_dir=str(tmp_path), commit_interval_ms=100,
                   config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
        a.stream("events").process(StreamTimeProbe).to("probe")
        return a

    p = Producer({"bootstrap.servers": broker.bootstrap})
    with Follower(broker.bootstrap, "probe", 1) as probe:
        with app_in_thread(app()) as errors:
            p.produce("events", b"{}", b"k", 0, timestamp=5_000)
            assert p.flush(10) == 0
            wait_for(lambda: probe.poll(), errors, "the first record's output")
        assert not errors
        c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "st-app"})
        try:
            (tp,) = c.committed([TopicPartition("events", 0)], timeout=10)
        finally:
            c.close()
        assert tp.offset == 1 and decode(tp.metadata) == 5_000  # Kafka Streams' layout
        with app_in_thread(app()) as errors:
            p.produce("events", b"{}", b"k", 0, timestamp=1_000)  # older than the stream time
            assert p.flush(10) == 0
            wait_for(lambda: len(probe.poll()) == 2, errors, "the second record's output", timeout=60)
        assert not errors
        # the restarted task went on from the committed stream time, not from "unknown"
        assert [orjson.loads(m.value()) for m in probe.poll()] == [5_000, 5_000]
