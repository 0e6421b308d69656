"""A stream task: one sub-topology for one partition, compiled once."""

from __future__ import annotations

from typing import Any

from streamlet.topology.compile import compile_task
from streamlet.topology.context import Produce, TaskContext
from streamlet.topology.graph import Topology


class StreamTask:
    """Runs the chains of sub-topology ``subtopology`` for ``partition``.

    ``sources`` maps each of its input topics to the compiled ``fn(message)``.
    Stores and punctuators hang off :attr:`ctx`.
    """

    def __init__(self, topology: Topology, subtopology: int, partition: int, topics: list[str],
                 produce: Produce, partitions: dict[str, int]) -> None:
        self.task_id = f"{subtopology}_{partition}"
        self.subtopology = subtopology
        self.partition = partition
        self.topics = topics
        self.ctx = TaskContext(self.task_id, partition, produce, partitions)
        self.sources: dict[str, Any] = compile_task(topology, self.ctx, topics)
        #: input topics of this task currently assigned to this process
        self.assigned: set[str] = set()

    def close(self) -> None:
        for store in self.ctx.stores.values():
            close = getattr(store, "close", None)
            if close:
                close()
        self.ctx.stores.clear()

    def __repr__(self) -> str:
        return f"<StreamTask {self.task_id} {sorted(self.assigned)}>"
