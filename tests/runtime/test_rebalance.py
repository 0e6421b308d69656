"""The rebalance callbacks' edge: an assignment handed out while the consumer closes."""

from __future__ import annotations

from typing import Any

from confluent_kafka import TopicPartition

from streamlet.runtime.rebalance import RebalanceCallbacks


class Tasks:
    def __init__(self) -> None:
        self.assigned: list[Any] = []

    def assign(self, keys: Any) -> list[Any]:
        self.assigned.append(keys)
        return []


class LogStart:
    def committed(self, keys: Any) -> dict[Any, Any]:
        # what librdkafka answers once close() began: the handle is being destroyed
        raise AssertionError("committed offsets read while the consumer closes")


def test_an_assignment_while_closing_starts_no_task_and_reads_nothing() -> None:
    worker = RebalanceCallbacks()
    worker.tasks, worker.log_start, worker.closing = Tasks(), LogStart(), True
    worker._on_assign(None, [TopicPartition("orders", 0)])  # a worker that stops exits cleanly
    assert worker.tasks.assigned == []
