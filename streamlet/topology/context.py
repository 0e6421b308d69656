"""What a compiled chain needs from the task that runs it."""

from __future__ import annotations

import time
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
    ``stream_time``: the largest record timestamp this task has processed (-1: none yet), kept
    only by chains with a node that reads it (``NodeKind.reads_stream_time``).
    ``punctuation``: the task's punctuators (:class:`~streamlet.topology.punctuation.TaskPunctuation`),
    once one is scheduled. ``closers``: called when the task's chains are dropped (processors' ``close``).
    ``clock()``: wall-clock time in ms (the TestDriver's own clock under test).
    ``global_stores``: the caches of the global tables' stores by store name, shared by every task
    of the process and updated by the runtime, not by the task (it never commits or closes them).
    """

    __slots__ = ("task_id", "partition", "msg", "produce", "partitions", "stores", "stream_time",
                 "punctuation", "closers", "clock", "late_records", "metrics", "on_late", "global_stores")

    def __init__(self, task_id: str, partition: int, produce: Produce,
                 partitions: dict[str, int] | None = None, clock: Callable[[], int] | None = None,
                 global_stores: dict[str, Any] | None = None) -> None:
        self.task_id = task_id
        self.partition = partition
        self.msg: Any = None
        self.produce = produce
        self.partitions = partitions or {}
        self.stores: dict[str, Any] = {}
        self.stream_time = -1
        self.punctuation: Any = None
        self.closers: list[Callable[[], None]] = []
        self.clock = clock or _wall_clock_ms
        self.global_stores: dict[str, Any] = global_stores if global_stores is not None else {}
        #: records a windowed step dropped because their window had closed
        self.late_records = 0
        #: the worker's counters (``inc(name, amount, **labels)``), for rare events only; may be None
        self.metrics: Any = None
        #: ``on_late(msg, reason)`` for a record too late for every window (dead-lettering), or None
        self.on_late: Callable[[Any, str], None] | None = None

    def close_processors(self) -> None:
        """The chains are dropped (the task is suspended): close its processors, forget their
        punctuators (a recompiled chain schedules them again)."""
        closers, self.closers = self.closers, []
        self.punctuation = None
        for close in closers:
            close()


def _wall_clock_ms() -> int:
    return int(time.time() * 1000)
