"""StateUpdater: the hand-over of restoring tasks between the record loop and the updater's thread.

The opening and restoring itself is StateManager's (tested with real stores and changelogs in
tests/state and tests/integration); here a state manager that blocks on demand shows the
protocol: tasks come back ready in order, a revoked task's restore is cancelled and its stores
closed, errors reach the record loop.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from streamlet.errors import StateError
from streamlet.runtime.restore_progress import RestoreProgress
from streamlet.runtime.state_updater import StateUpdater
from streamlet.state.restore import RestoreCancelled


class Cache:
    def __init__(self, name: str) -> None:
        self.name, self.closed = name, False

    def close(self) -> None:
        self.closed = True


class Task:
    store_specs: list[Any] = []  # nothing opened ahead: BlockingState opens in open_and_restore

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self.partition = int(task_id.split("_")[1])


class BlockingState:
    """``open_and_restore`` waits for ``release[task_id]`` (or the cancel event) when one is set."""

    def __init__(self) -> None:
        self.progress = RestoreProgress(enabled=False)
        self.release: dict[str, threading.Event] = {}
        self._started: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self.opened: dict[str, Cache] = {}
        self.fail: set[str] = set()

    def started(self, task_id: str) -> threading.Event:
        with self._lock:
            return self._started.setdefault(task_id, threading.Event())

    def open_and_restore(self, task: Task, cancel: threading.Event, opening: Any = None) -> dict[str, Cache]:
        cache = self.opened[task.task_id] = Cache(task.task_id)
        self.started(task.task_id).set()
        if task.task_id in self.fail:
            cache.close()
            raise StateError(f"cannot restore {task.task_id}")
        gate = self.release.get(task.task_id)
        while gate is not None and not gate.is_set():
            if cancel.is_set():
                cache.close()  # as StateManager does with what it opened
                raise RestoreCancelled(task.task_id)
            time.sleep(0.005)
        return {"s": cache}


def wait_ready(updater: StateUpdater, n: int, timeout: float = 5.0) -> list[tuple[Any, dict[str, Cache]]]:
    got: list[tuple[Any, dict[str, Cache]]] = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        assert time.monotonic() < deadline, f"only {len(got)} of {n} tasks ready"
        got += updater.take_ready()
        time.sleep(0.005)
    return got


@pytest.fixture
def state() -> BlockingState:
    return BlockingState()


@pytest.fixture
def updater(state: BlockingState):
    u = StateUpdater(state)
    yield u
    u.close()


def test_tasks_come_back_ready_in_order_with_their_stores(state, updater) -> None:
    tasks = [Task(f"0_{p}") for p in range(4)]
    assert not updater.busy and updater.take_ready() == []
    updater.add(tasks)
    assert updater.busy
    got = wait_ready(updater, 4)
    assert [t for t, _ in got] == tasks
    assert all(caches["s"] is state.opened[t.task_id] and not caches["s"].closed for t, caches in got)
    assert not updater.busy


def test_a_slow_restore_does_not_hold_back_tasks_already_ready(state, updater) -> None:
    state.release["0_1"] = threading.Event()
    updater.add([Task("0_0"), Task("0_1"), Task("0_2")])
    (first, _), = wait_ready(updater, 1)
    assert first.task_id == "0_0"
    assert state.started("0_1").wait(5)
    time.sleep(0.05)
    assert updater.take_ready() == [] and updater.busy  # 0_1 restores, 0_2 waits its turn
    state.release["0_1"].set()
    assert [t.task_id for t, _ in wait_ready(updater, 2)] == ["0_1", "0_2"]


def test_removing_the_task_being_restored_cancels_it_and_closes_its_stores(state, updater) -> None:
    state.release["0_0"] = threading.Event()  # never released
    t0, t1 = Task("0_0"), Task("0_1")
    updater.add([t0, t1])
    assert state.started("0_0").wait(5)
    updater.remove(t0)  # returns once the updater has let go of t0
    assert state.opened["0_0"].closed
    assert [t for t, _ in wait_ready(updater, 1)] == [t1]


def test_removing_a_queued_or_ready_task(state, updater) -> None:
    state.release["0_0"] = threading.Event()
    t0, t1, t2 = Task("0_0"), Task("0_1"), Task("0_2")
    updater.add([t0, t1, t2])
    assert state.started("0_0").wait(5)
    updater.remove(t1)  # still queued: never opened
    state.release["0_0"].set()
    deadline = time.monotonic() + 5
    while "0_2" not in state.opened or updater._current is not None:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    updater.remove(t2)  # ready, not taken yet: its stores are closed
    assert state.opened["0_2"].closed
    assert [t for t, _ in updater.take_ready()] == [t0]
    assert "0_1" not in state.opened


def test_a_failed_restore_is_raised_in_the_record_loop(state, updater) -> None:
    state.fail.add("0_0")
    updater.add([Task("0_0"), Task("0_1")])
    deadline = time.monotonic() + 5
    with pytest.raises(StateError, match="cannot restore 0_0"):
        while time.monotonic() < deadline:
            updater.take_ready()
            time.sleep(0.005)


def test_close_cancels_the_current_restore_and_closes_what_was_opened(state) -> None:
    updater = StateUpdater(state)
    state.release["0_1"] = threading.Event()
    updater.add([Task("0_0"), Task("0_1"), Task("0_2")])
    assert state.started("0_1").wait(5)
    updater.close()
    assert state.opened["0_0"].closed  # ready but never taken
    assert state.opened["0_1"].closed  # cancelled
    assert "0_2" not in state.opened  # never started
    assert updater._thread is not None and not updater._thread.is_alive()


class Spec:
    def __init__(self, name: str) -> None:
        self.name = name


class AheadState(BlockingState):
    """Stores opened by ``open_ahead`` (on the updater's opening threads); ``open_and_restore`` takes them."""

    def __init__(self) -> None:
        super().__init__()
        self.ahead: list[Cache] = []

    def open_ahead(self, spec: Spec, partition: int) -> tuple[Cache, tuple[int, int]]:
        cache = Cache(f"{spec.name}-{partition}")
        with self._lock:
            self.ahead.append(cache)
        return cache, (0, 0)

    def open_and_restore(self, task: Task, cancel: threading.Event, opening: Any = None) -> dict[str, Cache]:
        self.started(task.task_id).set()
        gate = self.release.get(task.task_id)
        while gate is not None and not gate.is_set():
            time.sleep(0.005)
        return {spec.name: future.result()[0] for spec, future in zip(task.store_specs, opening)}


def test_stores_of_queued_tasks_are_opened_ahead_and_closed_when_not_used() -> None:
    state = AheadState()
    updater = StateUpdater(state)
    try:
        state.release["0_0"] = threading.Event()
        tasks = [Task(f"0_{p}") for p in range(3)]
        for t in tasks:
            t.store_specs = [Spec("a"), Spec("b")]
        updater.add(tasks)
        deadline = time.monotonic() + 5
        while len(state.ahead) < 6:  # every store opened while the first task still restores
            assert time.monotonic() < deadline, state.ahead
            time.sleep(0.005)
        assert updater.take_ready() == []
        updater.remove(tasks[2])
        assert sorted(c.name for c in state.ahead if c.closed) == ["a-2", "b-2"]
        state.release["0_0"].set()
        got = wait_ready(updater, 2)
        assert [t for t, _ in got] == tasks[:2]
        assert got[1][1]["b"].name == "b-1" and not got[1][1]["b"].closed
    finally:
        updater.close()
