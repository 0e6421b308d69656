"""A stream task: one sub-topology for one partition, compiled once."""

from __future__ import annotations

from typing import Any, Callable

from streamlet.runtime.task_state import State, TaskState
from streamlet.topology.compile import compile_task
from streamlet.topology.context import Produce, TaskContext
from streamlet.topology.graph import StoreSpec, Topology

#: opens the store cache of one store for one partition
StoreProvider = Callable[[StoreSpec, int], Any]


class StreamTask:
    """Runs the chains of sub-topology ``subtopology`` for ``partition``.

    Its life cycle is Kafka Streams' (:mod:`streamlet.runtime.task_state`):
    CREATED, then RESTORING until :meth:`activate` hands it its opened,
    restored stores, RUNNING (only then does it process records), SUSPENDED
    when revoked or found with a corrupted store, CLOSED. The runtime opens and
    restores the stores on the state updater's thread; with a
    ``store_provider`` (TestDriver) they are opened here at once, and a task
    without stores is running at once.
    """

    def __init__(self, topology: Topology, subtopology: int, partition: int, topics: list[str],
                 produce: Produce, partitions: dict[str, int],
                 store_provider: StoreProvider | None = None, clock: Callable[[], int] | None = None,
                 global_stores: dict[str, Any] | None = None) -> None:
        self.task_id = f"{subtopology}_{partition}"
        self.topology = topology
        self.subtopology = subtopology
        self.partition = partition
        self.topics = topics
        self.ctx = TaskContext(self.task_id, partition, produce, partitions, clock, global_stores)
        self.store_specs: list[StoreSpec] = topology.stores_of(topology.subtopologies()[subtopology])
        self.sources: dict[str, Any] = {}
        self.state = TaskState(self.task_id)
        #: input topics of this task currently assigned to this process
        self.assigned: set[str] = set()
        #: source-table topic → the group's committed offset (None: none), where its restore stops
        self.committed: dict[str, int | None] = {}
        self.state.to(State.RESTORING)
        if not self.store_specs:
            self.activate({})
        elif store_provider is not None:
            self.activate({spec.name: store_provider(spec, partition) for spec in self.store_specs})

    @property
    def active(self) -> bool:
        """RUNNING: it processes records."""
        return self.state.state is State.RUNNING

    def activate(self, stores: dict[str, Any]) -> None:
        """Take the task's (restored) store caches and compile its chains: RESTORING → RUNNING."""
        self.state.check(State.RUNNING)
        self.ctx.stores.update(stores)
        self.sources = compile_task(self.topology, self.ctx, self.topics)
        self.state.to(State.RUNNING)

    def suspend(self) -> None:
        """Stop processing: its chains are dropped and its stores closed (what was not committed is
        lost; the changelog has the rest)."""
        self.state.to(State.SUSPENDED)
        self.sources = {}
        self._close_stores()

    def restore_again(self) -> None:
        """A suspended task whose store was corrupted: restoring again (SUSPENDED → RESTORING)."""
        self.state.to(State.RESTORING)

    def close(self) -> None:
        """Suspend (if not yet) and close for good."""
        if self.state.state is not State.SUSPENDED:
            self.suspend()
        self.state.to(State.CLOSED)

    def _close_stores(self) -> None:
        self.ctx.close_processors()
        for cache in self.ctx.stores.values():
            close = getattr(cache, "close", None) or getattr(getattr(cache, "store", None), "close", None)
            if close:
                close()
        self.ctx.stores.clear()

    def __repr__(self) -> str:
        return f"<StreamTask {self.task_id} {sorted(self.assigned)} {self.state.state.name}>"
