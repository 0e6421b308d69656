"""What a compiled chain needs from the task that runs it."""

from __future__ import annotations

from typing import Any, Callable, Protocol


class Produce(Protocol):
    def __call__(self, topic: str, value: bytes | None, key: bytes | None, partition: int = -1,
                 timestamp: int = 0, headers: Any = None) -> None: ...


class TaskContext:
    """Per-task environment of a compiled chain.

    ``msg`` is the input message being processed (a ``confluent_kafka.Message``
    or a :class:`streamlet.record.RecordMessage`); chains read its metadata
    only when they need it. ``produce`` sends one output record.
    ``partitions`` maps each known topic to its partition count.
    """

    __slots__ = ("task_id", "partition", "msg", "produce", "partitions", "stores", "punctuators")

    def __init__(self, task_id: str, partition: int, produce: Produce,
                 partitions: dict[str, int] | None = None) -> None:
        self.task_id = task_id
        self.partition = partition
        self.msg: Any = None
        self.produce = produce
        self.partitions = partitions or {}
        self.stores: dict[str, Any] = {}
        self.punctuators: list[Callable[[int], None]] = []
