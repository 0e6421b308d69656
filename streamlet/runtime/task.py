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

    ``sources`` maps each of its input topics to the compiled ``fn(message)``;
    ``stores`` maps store name → (spec, cache), opened before compiling.
    """

    def __init__(self, topology: Topology, subtopology: int, partition: int, topics: list[str],
                 produce: Produce, partitions: dict[str, int],
                 store_provider: StoreProvider | None = None) -> None:
        self.task_id = f"{subtopology}_{partition}"
        self.subtopology = subtopology
        self.partition = partition
        self.topics = topics
        self.ctx = TaskContext(self.task_id, partition, produce, partitions)
        self.store_specs: list[StoreSpec] = topology.stores_of(topology.subtopologies()[subtopology])
        if self.store_specs and store_provider is None:
            raise RuntimeError("this topology has state stores but no store provider was given")
        for spec in self.store_specs:
            self.ctx.stores[spec.name] = store_provider(spec, partition)  # type: ignore[misc]
        self.sources: dict[str, Any] = compile_task(topology, self.ctx, topics)
        #: input topics of this task currently assigned to this process
        self.assigned: set[str] = set()
        #: changelog topic → next offset this task expects to write there (for the checkpoint)
        self.changelog_end: dict[str, int] = {}

    def close(self) -> None:
        for cache in self.ctx.stores.values():
            close = getattr(cache, "close", None) or getattr(getattr(cache, "store", None), "close", None)
            if close:
                close()
        self.ctx.stores.clear()

    def __repr__(self) -> str:
        return f"<StreamTask {self.task_id} {sorted(self.assigned)}>"
