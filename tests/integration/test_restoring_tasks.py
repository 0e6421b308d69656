"""Restoring tasks on the state updater's thread, with `app.run()` on the embedded broker.

A task whose stores are restoring neither holds up the tasks that are ready nor processes (or
commits) anything of its own before its restore ends — then it processes every record of its
partition exactly once: the records fetched meanwhile are held, and past a limit the partition is
paused and rewound, never skipped.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

import streamlet as sl
import streamlet.runtime.restoring as restoring_module
import streamlet.runtime.runner as runner_module
from streamlet.runtime.state_manager import StateManager
from tests.integration.procs import app_in_thread

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

PER_PARTITION = 300


def produce(bootstrap: str, topic: str) -> None:
    p = Producer({"bootstrap.servers": bootstrap})
    for partition in (0, 1):
        for i in range(PER_PARTITION):
            p.produce(topic, orjson.dumps({"i": i}), f"p{partition}-k{i % 10}".encode(), partition)
    assert p.flush(10) == 0


def committed(bootstrap: str, group: str, topic: str) -> list[int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        return [tp.offset for tp in c.committed([TopicPartition(topic, p) for p in (0, 1)], timeout=10)]
    finally:
        c.close()


class Gate(threading.Event):
    """Holds the second restore; opens (at the latest) when its ``with`` block ends."""

    #: the partition whose restore waits for the gate: the second one restored (the first is ready)
    partition = -1

    def __enter__(self) -> "Gate":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.set()


def gate_second_restore(monkeypatch: pytest.MonkeyPatch) -> Gate:
    """The restore of the second task's store waits for the returned event."""
    gate = Gate()
    original = StateManager._restore_one
    seen: list[int] = []

    def restore_one(self: StateManager, task: Any, spec: Any, cache: Any, *args: Any) -> None:
        seen.append(task.partition)
        if len(seen) == 2:
            gate.partition = task.partition
            assert gate.wait(60)
        original(self, task, spec, cache, *args)

    monkeypatch.setattr(StateManager, "_restore_one", restore_one)
    return gate


def counts_app(tmp_path: Path, app_id: str) -> tuple[sl.App, str]:
    app = sl.App(app_id, brokers="embedded", state_dir=str(tmp_path), commit_interval_ms=100)
    app.stream("events").group_by_key().count(name="counts")
    broker = app.embedded_broker()
    broker.create_topic("events", 2)
    produce(broker.bootstrap_servers, "events")
    return app, broker.bootstrap_servers


def wait_for(check: Any, errors: list[BaseException], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert not errors, errors
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def counted(app: sl.App, partition: int) -> int:
    if app._runner is None or app._runner.tasks is None:
        return 0
    return sum(n for k, n in app.store("counts").items() if k.startswith(f"p{partition}-"))


def first_task_done(app: sl.App, gate: Gate, errors: list[BaseException]) -> tuple[int, int]:
    """Wait until the second restore is held and the task restored first has processed its partition;
    (the held partition, the other)."""
    wait_for(lambda: gate.partition >= 0, errors, "the second restore")
    slow, ready = gate.partition, 1 - gate.partition
    wait_for(lambda: counted(app, ready) == PER_PARTITION, errors, "the ready task's records")
    return slow, ready


def test_a_restoring_task_holds_up_neither_the_others_nor_its_own_records(tmp_path: Path, monkeypatch) -> None:
    gate = gate_second_restore(monkeypatch)
    app, bootstrap = counts_app(tmp_path, "su-app")
    with app_in_thread(app) as errors, gate:
        # the task restored first processes everything ...
        slow, ready = first_task_done(app, gate, errors)
        wait_for(lambda: committed(bootstrap, "su-app", "events")[ready] == PER_PARTITION, errors, "its commit")
        # ... while the other restores: none of its records processed, nothing committed for it
        time.sleep(0.3)
        assert counted(app, slow) == 0
        assert committed(bootstrap, "su-app", "events")[slow] < 0
        assert app._runner is not None and app._runner.updater.busy
        gate.set()
        wait_for(lambda: counted(app, slow) == PER_PARTITION, errors, "the records after the restore")
        wait_for(lambda: committed(bootstrap, "su-app", "events") == [PER_PARTITION] * 2, errors, "commits")
        assert counted(app, ready) == PER_PARTITION  # each record counted once
        assert app.store("counts")[f"p{slow}-k3"] == PER_PARTITION // 10
    assert not errors


class _RecordingSeeks:
    """The consumer, with its seeks recorded."""

    def __init__(self, consumer: Any) -> None:
        self._consumer = consumer
        self.seeks: list[tuple[str, int, int]] = []

    def seek(self, tp: Any) -> None:
        self.seeks.append((tp.topic, tp.partition, tp.offset))
        self._consumer.seek(tp)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)


def test_past_the_hold_limit_a_restoring_partition_is_paused_and_rewound(tmp_path: Path, monkeypatch) -> None:
    """Records fetched for a restoring task are held in memory up to a limit; past it the partition
    is paused and rewound to the first record not held, and read again once the task is active."""
    gate = gate_second_restore(monkeypatch)
    monkeypatch.setattr(restoring_module, "HOLD_LIMIT", 50)
    wrapped: list[_RecordingSeeks] = []
    make = runner_module.make_consumer

    def make_consumer(settings: dict[str, Any]) -> Any:
        wrapped.append(_RecordingSeeks(make(settings)))
        return wrapped[0]

    monkeypatch.setattr(runner_module, "make_consumer", make_consumer)
    app, bootstrap = counts_app(tmp_path, "su-rewind")
    with app_in_thread(app) as errors, gate:
        slow, ready = first_task_done(app, gate, errors)
        # the first record past the 50 held (the task restored first may have been rewound too)
        wait_for(lambda: ("events", slow, 50) in wrapped[0].seeks, errors, "the restoring partition rewound")
        time.sleep(0.3)
        assert counted(app, slow) == 0
        assert committed(bootstrap, "su-rewind", "events")[slow] < 0  # nothing of it committed
        gate.set()
        wait_for(lambda: counted(app, slow) == PER_PARTITION, errors, "the records after the restore")
        wait_for(lambda: committed(bootstrap, "su-rewind", "events") == [PER_PARTITION] * 2, errors, "commits")
        assert counted(app, ready) == PER_PARTITION and app._runner.processed == 2 * PER_PARTITION
    assert not errors
    seeks = wrapped[0].seeks
    assert all(offset == 50 for _, _, offset in seeks) and len({p for _, p, _ in seeks}) == len(seeks), seeks
