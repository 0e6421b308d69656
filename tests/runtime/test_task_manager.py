"""TaskManager and RestoringTasks with fakes of the consumer, committer and state updater: tasks go
CREATED → RESTORING → RUNNING, a revoke during a restore closes the task through the updater, a
corrupted store sends a running task back to RESTORING, and the worker is ready only while every
assigned task runs."""

from __future__ import annotations

from typing import Any

import pytest

import streamlet as sl
from streamlet.errors import StoreCorruptedError, TaskStateError
from streamlet.record import RecordMessage
from streamlet.runtime.restoring import RestoringTasks
from streamlet.runtime.task_manager import TaskManager
from streamlet.runtime.task_state import State
from streamlet.state import InMemoryStore, StoreCache


class FakeUpdater:
    """Queues tasks; the test decides which are restored (``finish``)."""

    def __init__(self) -> None:
        self.queued: list[Any] = []
        self.removed: list[Any] = []
        self._ready: list[tuple[Any, dict[str, Any]]] = []

    def add(self, tasks: list[Any]) -> None:
        self.queued.extend(tasks)

    def finish(self, task: Any) -> None:
        self.queued.remove(task)
        self._ready.append((task, {s.name: StoreCache(InMemoryStore(s.name), s.value_serde)
                                   for s in task.store_specs}))

    def take_ready(self) -> list[tuple[Any, dict[str, Any]]]:
        ready, self._ready = self._ready, []
        return ready

    def remove(self, task: Any) -> None:
        assert task.state.state is State.RESTORING  # let go of before the task closes
        self.removed.append(task)
        if task in self.queued:
            self.queued.remove(task)

    @property
    def busy(self) -> bool:
        return bool(self.queued or self._ready)


class FakeConsumer:
    def __init__(self, committed: dict[tuple[str, int], int]) -> None:
        self._committed = committed
        self.calls: list[tuple[str, Any]] = []

    def committed(self, tps: list[Any], timeout: float = 0) -> list[Any]:
        for tp in tps:
            tp.offset = self._committed.get((tp.topic, tp.partition), -1001)
        return tps

    def pause(self, tps: list[Any]) -> None:
        self.calls += [("pause", (tp.topic, tp.partition)) for tp in tps]

    def seek(self, tp: Any) -> None:
        self.calls.append(("seek", (tp.topic, tp.partition, tp.offset)))

    def resume(self, tps: list[Any]) -> None:
        self.calls += [("resume", (tp.topic, tp.partition)) for tp in tps]


class FakeCommitter:
    def __init__(self) -> None:
        self.pending: dict[tuple[str, int], int] = {}
        self.forgotten: list[tuple[str, int]] = []

    def forget(self, keys: list[tuple[str, int]]) -> None:
        self.forgotten += keys

    def track_positions(self, positions: list[Any]) -> None:
        for tp in positions:
            self.pending[(tp.topic, tp.partition)] = tp.offset


def counting_app() -> sl.App:
    app = sl.App("tm")
    app.stream("events").group_by_key().count(name="counts")
    return app


class World:
    """A task manager over ``app``'s topology with the fakes around it, as the Runner wires them."""

    def __init__(self, app: sl.App, committed: dict[tuple[str, int], int] | None = None) -> None:
        self.outputs: list[tuple[str, Any]] = []
        self.tasks = TaskManager(app.topology, self.produce, {"events": 2})
        self.readiness: list[bool] = []
        self.tasks.on_readiness = self.readiness.append
        self.updater = FakeUpdater()
        self.tasks.before_close_restoring = self.updater.remove
        self.consumer = FakeConsumer(committed or {})
        self.committer = FakeCommitter()
        self.processed: list[Any] = []
        self.restoring = RestoringTasks(self.consumer, self.committer, self.tasks, self.updater,
                                        self.process, lambda: False)

    def produce(self, topic: str, value: Any, key: Any, partition: int = -1, timestamp: int = 0,
                headers: Any = None) -> None:
        self.outputs.append((topic, key))

    def process(self, msgs: list[Any]) -> None:
        for m in msgs:
            self.processed.append((m.topic(), m.partition(), m.offset()))
            self.tasks.routes[m.topic()][m.partition()](m)

    def assign(self, *partitions: int) -> list[Any]:
        created = self.tasks.assign([("events", p) for p in partitions])
        self.restoring.add([t for t in created if not t.active], {})
        return created

    def state(self, partition: int) -> State:
        task = self.tasks.task_of("events", partition)
        assert task is not None
        return task.state.state


def msg(partition: int, offset: int, key: str = "k") -> RecordMessage:
    return RecordMessage("events", partition, offset, 1000 + offset, None, key.encode(), b"{}")


def test_assigned_tasks_restore_then_run_and_the_worker_is_ready_when_all_run() -> None:
    w = World(counting_app())
    t0, t1 = w.assign(0, 1)
    assert w.state(0) is w.state(1) is State.RESTORING
    assert w.updater.queued == [t0, t1] and w.tasks.routes["events"] == {}
    assert not w.tasks.ready and w.readiness == []
    # a record fetched for a restoring task is held, not processed
    assert w.restoring.hold(msg(1, 0))
    w.updater.finish(t0)
    w.restoring.activate_ready(lambda n: None)
    assert w.state(0) is State.RUNNING and w.state(1) is State.RESTORING
    assert not w.tasks.ready and w.readiness == []  # one task still restores
    w.updater.finish(t1)
    w.restoring.activate_ready(lambda n: None)
    assert w.state(1) is State.RUNNING and w.tasks.ready and w.readiness == [True]
    assert w.processed == [("events", 1, 0)]  # the held record, once its task runs
    assert w.tasks.task_of("events", 1).ctx.stores["counts"].get(b"k")[1] == 1
    assert w.committer.pending == {("events", 1): 1}


def test_a_worker_of_stateless_tasks_is_ready_at_its_assignment() -> None:
    app = sl.App("tm-stateless")
    app.stream("events").to("out")
    w = World(app)
    assert not w.tasks.ready  # nothing assigned yet
    w.assign(0, 1)
    assert w.state(0) is w.state(1) is State.RUNNING and w.updater.queued == []
    assert w.readiness == [True]


def test_a_task_revoked_while_it_restores_is_let_go_by_the_updater_then_closed() -> None:
    w = World(counting_app())
    t0, t1 = w.assign(0, 1)
    w.updater.finish(t0)
    w.restoring.activate_ready(lambda n: None)
    assert w.restoring.hold(msg(1, 0))
    w.restoring.drop([("events", 1)])
    w.tasks.revoke([("events", 1)])
    assert w.updater.removed == [t1] and t1.state.state is State.CLOSED
    assert w.tasks.task_of("events", 1) is None and ("events", 1) not in w.restoring.held
    # a revoke alone never makes the worker ready: the assignment that follows a revoke does
    assert not w.tasks.ready and w.readiness == []
    w.assign()
    assert w.tasks.ready and w.readiness == [True]
    with pytest.raises(TaskStateError, match="from CLOSED to RUNNING"):
        t1.activate({})


def test_revoking_a_running_task_closes_it_without_the_updater() -> None:
    w = World(counting_app())
    (t0,) = w.assign(0)
    w.updater.finish(t0)
    w.restoring.activate_ready(lambda n: None)
    closed: list[str] = []
    t0.ctx.stores["counts"].close = lambda: closed.append("counts")  # type: ignore[method-assign]
    w.tasks.revoke([("events", 0)])
    assert t0.state.state is State.CLOSED and w.updater.removed == [] and t0.ctx.stores == {}
    assert closed == ["counts"] and w.tasks.routes["events"] == {}


def test_a_corrupted_store_sends_a_running_task_back_to_restoring() -> None:
    w = World(counting_app(), committed={("events", 0): 7})
    (t0,) = w.assign(0)
    w.updater.finish(t0)
    w.restoring.activate_ready(lambda n: None)
    assert w.tasks.ready and w.readiness == [True]
    w.process([msg(0, 7)])
    w.restoring.reset(t0, StoreCorruptedError("counts", "/x", "read", "bad block"))
    assert t0.state.state is State.RESTORING and w.tasks.task_of("events", 0) is t0
    assert w.tasks.routes["events"] == {} and t0.ctx.stores == {}  # its uncommitted state dropped
    assert not w.tasks.ready and w.readiness == [True, False]
    assert w.committer.forgotten == [("events", 0)]
    assert ("pause", ("events", 0)) in w.consumer.calls and ("seek", ("events", 0, 7)) in w.consumer.calls
    assert w.updater.queued == [t0]
    # restored again: the records after the committed offset are processed again
    assert w.restoring.hold(msg(0, 7))  # rewound: dropped, read again after the resume
    w.updater.finish(t0)
    w.restoring.activate_ready(lambda n: None)
    assert t0.state.state is State.RUNNING and w.tasks.ready and w.readiness == [True, False, True]
    assert ("resume", ("events", 0)) in w.consumer.calls


def test_close_all_closes_restoring_and_running_tasks() -> None:
    w = World(counting_app())
    t0, t1 = w.assign(0, 1)
    w.updater.finish(t0)
    w.restoring.activate_ready(lambda n: None)
    w.tasks.close_all()
    assert t0.state.state is t1.state.state is State.CLOSED and w.tasks.tasks == {}
    assert w.updater.removed == [t1]
    assert w.tasks.states() == {}


def test_states_report_each_task() -> None:
    w = World(counting_app())
    t0, _ = w.assign(0, 1)
    w.updater.finish(t0)
    w.restoring.activate_ready(lambda n: None)
    assert w.tasks.states() == {"0_0": "RUNNING", "0_1": "RESTORING"}


def test_app_state_before_a_run() -> None:
    assert counting_app().state() == {"state": "not_running", "ready": False, "tasks": {}}


def test_a_rebalance_that_brings_a_task_to_restore_makes_the_worker_not_ready_until_it_runs() -> None:
    w = World(counting_app())
    (t0,) = w.assign(0)
    w.updater.finish(t0)
    w.restoring.activate_ready(lambda n: None)
    assert w.readiness == [True]
    (t1,) = w.assign(1)  # a cooperative rebalance adds a partition
    assert w.state(0) is State.RUNNING and w.state(1) is State.RESTORING
    assert not w.tasks.ready and w.readiness == [True, False]
    w.updater.finish(t1)
    w.restoring.activate_ready(lambda n: None)
    assert w.readiness == [True, False, True]


class Recorder(sl.Processor):
    events: list[tuple[str, str]] = []

    def init(self, context: sl.ProcessorContext) -> None:
        self.task = context.task_id
        context.schedule(10, sl.PunctuationType.WALL_CLOCK, lambda ts: None)
        Recorder.events.append(("init", self.task))

    def process(self, record: sl.Record) -> sl.Record:
        return record

    def close(self) -> None:
        Recorder.events.append(("close", self.task))


def test_a_task_restored_again_closes_its_processors_and_starts_them_afresh() -> None:
    Recorder.events = []
    app = sl.App("tm-processor")
    events = app.stream("events")
    events.group_by_key().count(name="counts")
    events.process(Recorder).to("out")
    w = World(app, committed={("events", 0): 0})
    (t0,) = w.assign(0)
    assert Recorder.events == []  # nothing runs before the restore
    w.updater.finish(t0)
    w.restoring.activate_ready(lambda n: None)
    assert Recorder.events == [("init", "0_0")] and t0.ctx.punctuation is not None
    w.restoring.reset(t0, StoreCorruptedError("counts", "/x", "read", "bad block"))
    assert Recorder.events == [("init", "0_0"), ("close", "0_0")] and t0.ctx.punctuation is None
    w.updater.finish(t0)
    w.restoring.activate_ready(lambda n: None)
    assert Recorder.events == [("init", "0_0"), ("close", "0_0"), ("init", "0_0")]
    w.tasks.revoke([("events", 0)])
    assert Recorder.events[-1] == ("close", "0_0")
