"""Creates and closes tasks as partitions are assigned and revoked; knows when the worker is ready."""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterable

from streamlet.runtime.task import StoreProvider, StreamTask
from streamlet.runtime.task_state import State
from streamlet.topology.context import Produce
from streamlet.topology.graph import Topology

log = logging.getLogger("streamlet.tasks")


class TaskManager:
    """Owns the tasks of this process and the routing table of the record loop.

    ``routes[topic][partition]`` is the compiled source function the loop
    calls; it changes only between batches (rebalance callbacks, a task
    becoming active). A restoring task has no route: its partitions are
    paused until :meth:`activate`.

    The worker is *ready* once partitions were assigned and every assigned
    task is RUNNING (none restoring); ``on_readiness(ready)`` hears each change.
    """

    def __init__(self, topology: Topology, produce: Produce, partitions: dict[str, int],
                 store_provider: StoreProvider | None = None, clock: Callable[[], int] | None = None,
                 global_stores: dict[str, Any] | None = None) -> None:
        self.topology = topology
        #: the global tables' store caches by name (shared by every task; see runtime.global_stores)
        self.global_stores: dict[str, Any] = global_stores if global_stores is not None else {}
        self.clock = clock
        self.store_provider = store_provider
        self.produce = produce
        self.partitions = partitions
        self.sub_of_topic = topology.subtopology_of_topic()
        self.topics_of_sub = topology.topics_of_subtopology()
        self.tasks: dict[tuple[int, int], StreamTask] = {}
        self.routes: dict[str, dict[int, Any]] = {t: {} for t in self.sub_of_topic}
        #: called with a restoring task about to be closed (the state updater lets go of it first)
        self.before_close_restoring: Callable[[StreamTask], None] | None = None
        self.assigned_once = False
        self.ready = False
        self.on_readiness: Callable[[bool], None] | None = None
        #: counters of rare per-record events (late records dropped), given to every task's context
        self.metrics: Any = None
        #: ``on_late(msg, reason)`` for records too late for their windows (late_records="dead_letter")
        self.on_late: Any = None

    def task_of(self, topic: str, partition: int) -> StreamTask | None:
        sub = self.sub_of_topic.get(topic)
        return self.tasks.get((sub, partition)) if sub is not None else None

    def assign(self, topic_partitions: Iterable[tuple[str, int]]) -> list[StreamTask]:
        created = []
        for topic, partition in topic_partitions:
            sub = self.sub_of_topic[topic]
            task = self.tasks.get((sub, partition))
            if task is None:
                task = StreamTask(self.topology, sub, partition, self.topics_of_sub[sub],
                                  self.produce, self.partitions, self.store_provider, self.clock,
                                  self.global_stores)
                task.ctx.metrics = self.metrics
                task.ctx.on_late = self.on_late
                self.tasks[(sub, partition)] = task
                created.append(task)
            task.assigned.add(topic)
            if task.active:
                self.routes[topic][partition] = task.sources[topic]
        if created:
            log.info("created tasks %s", ", ".join(t.task_id for t in created))
        self.assigned_once = True
        self._update_readiness()
        return created

    def activate(self, task: StreamTask, stores: dict[str, Any]) -> None:
        """A restored task: compile it with its stores and route its assigned partitions to it."""
        task.activate(stores)
        for topic in task.assigned:
            self.routes[topic][task.partition] = task.sources[topic]
        self._update_readiness()

    def deactivate(self, task: StreamTask) -> None:
        """Back to restoring (a corrupted store): unroute its partitions and close its stores,
        dropping what was not committed; :meth:`activate` routes it again once restored."""
        for topic in task.assigned:
            self.routes[topic].pop(task.partition, None)
        task.suspend()
        task.restore_again()
        self._update_readiness()

    def active_tasks(self) -> list[StreamTask]:
        return [t for t in self.tasks.values() if t.active]

    def revoke(self, topic_partitions: Iterable[tuple[str, int]]) -> list[StreamTask]:
        closed = []
        for topic, partition in topic_partitions:
            self.routes.get(topic, {}).pop(partition, None)
            task = self.task_of(topic, partition)
            if task is None:
                continue
            task.assigned.discard(topic)
            if not task.assigned:
                if task.state.state is State.RESTORING and self.before_close_restoring is not None:
                    self.before_close_restoring(task)
                task.close()
                del self.tasks[(task.subtopology, partition)]
                closed.append(task)
        if closed:
            log.info("closed tasks %s", ", ".join(t.task_id for t in closed))
        # a revoke is followed by an assignment (maybe empty), which says whether the worker is ready
        self._update_readiness(may_become_ready=False)
        return closed

    def close_all(self) -> None:
        self.revoke([(t, p) for t, p in
                     {(t, task.partition) for task in self.tasks.values() for t in task.assigned}])

    def states(self) -> dict[str, str]:
        """Task id → state name, for ``App.state()`` (any thread: a copy of the tasks is read)."""
        tasks = list(self.tasks.values())
        return {t.task_id: t.state.state.name for t in sorted(tasks, key=lambda t: t.task_id)}

    def _update_readiness(self, may_become_ready: bool = True) -> None:
        waiting = [t.task_id for t in self.tasks.values() if not t.active]
        ready = self.assigned_once and not waiting
        if ready == self.ready or (ready and not may_become_ready):
            return
        self.ready = ready
        if ready:
            log.info("worker ready: all %d assigned task(s) running", len(self.tasks))
        else:
            log.info("worker not ready: task(s) %s restoring", ", ".join(sorted(waiting)))
        if self.on_readiness is not None:
            self.on_readiness(ready)
