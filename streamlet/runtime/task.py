"""A stream task: one sub-topology for one partition, compiled once."""

from __future__ import annotations

from typing import Any, Callable

from streamlet.topology.compile import compile_task
from streamlet.topology.context import Produce, TaskContext
from streamlet.topology.graph import StoreSpec, Topology

#: opens the store cache of one store for one partition
StoreProvider = Callable[[StoreSpec, int], Any]


class StreamTask:
    """Runs the chains of sub-topology ``subtopology`` for ``partition``.

    ``sources`` maps each of its input topics to the compiled ``fn(message)``.
    A task with stores is *restoring* until :meth:`activate` hands it its
    opened, restored stores (Kafka Streams' RESTORING → RUNNING): the runtime
    opens and restores them on the state updater's thread; with a
    ``store_provider`` (TestDriver) they are opened here at once.
    """

    def __init__(self, topology: Topology, subtopology: int, partition: int, topics: list[str],
                 produce: Produce, partitions: dict[str, int],
                 store_provider: StoreProvider | None = None) -> None:
        self.task_id = f"{subtopology}_{partition}"
        self.topology = topology
        self.subtopology = subtopology
        self.partition = partition
        self.topics = topics
        self.ctx = TaskContext(self.task_id, partition, produce, partitions)
        self.store_specs: list[StoreSpec] = topology.stores_of(topology.subtopologies()[subtopology])
        self.sources: dict[str, Any] = {}
        self.active = False
        #: input topics of this task currently assigned to this process
        self.assigned: set[str] = set()
        #: changelog topic → next offset this task expects to write there (for the checkpoint)
        self.changelog_end: dict[str, int] = {}
        #: source-table topic → the group's committed offset (None: none), where its restore stops
        self.committed: dict[str, int | None] = {}
        if not self.store_specs:
            self.activate({})
        elif store_provider is not None:
            self.activate({spec.name: store_provider(spec, partition) for spec in self.store_specs})

    def activate(self, stores: dict[str, Any]) -> None:
        """Take the task's (restored) store caches and compile its chains: it may process now."""
        self.ctx.stores.update(stores)
        self.sources = compile_task(self.topology, self.ctx, self.topics)
        self.active = True

    def close(self) -> None:
        for cache in self.ctx.stores.values():
            close = getattr(cache, "close", None) or getattr(getattr(cache, "store", None), "close", None)
            if close:
                close()
        self.ctx.stores.clear()

    def __repr__(self) -> str:
        return f"<StreamTask {self.task_id} {sorted(self.assigned)}{'' if self.active else ' restoring'}>"
