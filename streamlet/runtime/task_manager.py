"""Creates and closes tasks as partitions are assigned and revoked."""

from __future__ import annotations

import logging
from typing import Any, Iterable

from streamlet.runtime.task import StoreProvider, StreamTask
from streamlet.topology.context import Produce
from streamlet.topology.graph import Topology

log = logging.getLogger("streamlet.tasks")


class TaskManager:
    """Owns the tasks of this process and the routing table of the record loop.

    ``routes[topic][partition]`` is the compiled source function the loop
    calls; it changes only in rebalance callbacks, between batches.
    """

    def __init__(self, topology: Topology, produce: Produce, partitions: dict[str, int],
                 store_provider: StoreProvider | None = None) -> None:
        self.topology = topology
        self.store_provider = store_provider
        self.produce = produce
        self.partitions = partitions
        self.sub_of_topic = topology.subtopology_of_topic()
        self.topics_of_sub = topology.topics_of_subtopology()
        self.tasks: dict[tuple[int, int], StreamTask] = {}
        self.routes: dict[str, dict[int, Any]] = {t: {} for t in self.sub_of_topic}

    def assign(self, topic_partitions: Iterable[tuple[str, int]]) -> list[StreamTask]:
        created = []
        for topic, partition in topic_partitions:
            sub = self.sub_of_topic[topic]
            task = self.tasks.get((sub, partition))
            if task is None:
                task = StreamTask(self.topology, sub, partition, self.topics_of_sub[sub],
                                  self.produce, self.partitions, self.store_provider)
                self.tasks[(sub, partition)] = task
                created.append(task)
            task.assigned.add(topic)
            self.routes[topic][partition] = task.sources[topic]
        if created:
            log.info("created tasks %s", ", ".join(t.task_id for t in created))
        return created

    def revoke(self, topic_partitions: Iterable[tuple[str, int]]) -> list[StreamTask]:
        closed = []
        for topic, partition in topic_partitions:
            self.routes.get(topic, {}).pop(partition, None)
            sub = self.sub_of_topic.get(topic)
            task = self.tasks.get((sub, partition)) if sub is not None else None
            if task is None:
                continue
            task.assigned.discard(topic)
            if not task.assigned:
                task.close()
                del self.tasks[(sub, partition)]
                closed.append(task)
        if closed:
            log.info("closed tasks %s", ", ".join(t.task_id for t in closed))
        return closed

    def close_all(self) -> None:
        self.revoke([(t, p) for t, parts in self.routes.items() for p in list(parts)])
