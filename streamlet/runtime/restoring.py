"""Restoring tasks as the record loop sees them: held records, activation, and the reset of a task
whose store is corrupted (Kafka Streams' task-corrupted path).

While the state updater restores a task's stores, the records fetched for its partitions are held
in order (a paused partition that never fetched resumes only after librdkafka's next assignment
pass, ~1 s); past ``HOLD_LIMIT`` a partition is paused and rewound to the first record not held.
When the task is ready, the held records are processed before anything newer. A task whose store
turns out corrupted goes back to restoring: its uncommitted state is dropped, the corrupted store
wiped (as it closes), and its partitions rewound to the committed offsets.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, KafkaException, TopicPartition

from streamlet.errors import StateError, StoreCorruptedError

log = logging.getLogger("streamlet.runtime")

#: records held per restoring partition before it is paused (and rewound)
HOLD_LIMIT = 20_000
#: a task whose stores are found corrupted more often than this within the window stops the worker
CORRUPTION_LIMIT, CORRUPTION_WINDOW_S = 3, 600.0

Key = tuple[str, int]


class RestoringTasks:
    """The record loop's side of restoring tasks. ``process(msgs)`` runs records through their tasks."""

    def __init__(self, consumer: Any, committer: Any, tasks: Any, updater: Any,
                 process: Callable[[list[Any]], None], stopping: Callable[[], bool],
                 auto_offset_reset: str = "earliest") -> None:
        self.consumer, self.committer, self.tasks, self.updater = consumer, committer, tasks, updater
        self.process, self.stopping = process, stopping
        self.reset_to_start = auto_offset_reset in ("earliest", "smallest", "beginning")
        #: records of restoring tasks' partitions, held until the task is active
        self.held: dict[Key, list[Any]] = {}
        #: partitions whose held records reached HOLD_LIMIT (or whose task was reset): paused and rewound
        self.rewound: set[Key] = set()
        #: task id → when its stores were found corrupted (recent ones)
        self._corruptions: dict[str, list[float]] = {}

    # -- assignment --------------------------------------------------------------------
    def add(self, tasks: list[Any], committed: dict[Key, int | None]) -> None:
        """New restoring tasks: hold their partitions' records and queue them on the state updater.
        ``committed``: the group's committed offsets of their partitions, where a source table's
        restore stops (the records after it are processed, and forwarded, as the first time)."""
        for task in tasks:
            for topic in task.assigned:
                self.held[(topic, task.partition)] = []
            _restore_tables_to(task, committed)
        self.updater.add(tasks)

    def drop(self, keys: list[Key]) -> None:
        """Revoked before their task was active: not processed, not committed; the new owner reads them."""
        for key in keys:
            self.held.pop(key, None)
            self.rewound.discard(key)

    # -- the loop ----------------------------------------------------------------------
    def hold(self, m: Any) -> bool:
        """A record with no route: of a partition revoked this very batch (dropped, False), or of a
        restoring task (True): held in order until the task is active, or — past ``HOLD_LIMIT``, or
        rewound — dropped, to be read again."""
        key = (m.topic(), m.partition())
        held = self.held.get(key)
        if held is None:
            return False
        if key in self.rewound:
            return True  # read again from where it was rewound to
        if len(held) < HOLD_LIMIT:
            held.append(m)
            return True
        self.rewound.add(key)
        tp = TopicPartition(key[0], key[1], m.offset())
        self.consumer.pause([tp])
        self.consumer.seek(tp)
        return True

    def activate_ready(self, counted: Callable[[int], None]) -> None:
        """Tasks whose stores the state updater has ready: route their partitions to them and process
        the records held for them meanwhile, in order, before anything newer; ``counted(n)`` is told
        how many, before their positions are tracked."""
        for task, caches in self.updater.take_ready():
            self.tasks.activate(task, caches)
            log.debug("task %s active", task.task_id)
            for topic in sorted(task.assigned):
                key = (topic, task.partition)
                held = self.held.pop(key, None)
                rewound = key in self.rewound
                self.rewound.discard(key)
                if held and not self.stopping():  # stopping: left uncommitted for the next run
                    self.process(held)
                    if not task.active:
                        break  # a corrupted store reset it meanwhile: it is restoring again
                    counted(len(held))
                    self.committer.track_positions([TopicPartition(topic, task.partition, held[-1].offset() + 1)])
                if rewound:
                    self.consumer.resume([TopicPartition(topic, task.partition)])

    # -- corrupted stores --------------------------------------------------------------
    def reset(self, task: Any, exc: StoreCorruptedError) -> None:
        """Close the task without committing, drop its uncommitted state (the corrupted store is wiped
        as it closes), restore its stores on the state updater and process its partitions again from
        the committed offsets. Too often for one task: a :class:`StateError` stops the worker."""
        now = time.monotonic()
        seen = [t for t in self._corruptions.get(task.task_id, []) if now - t < CORRUPTION_WINDOW_S] + [now]
        self._corruptions[task.task_id] = seen
        if len(seen) > CORRUPTION_LIMIT:
            raise StateError(f"{exc}; task {task.task_id} found a corrupted store {len(seen)} times in "
                             f"{CORRUPTION_WINDOW_S:.0f} s: the disk under state_dir may be failing; check "
                             "it, or move state_dir to another disk") from exc
        self.rewind(task, str(exc))

    def rewind(self, task: Any, why: str) -> None:
        """Close the task without committing (its uncommitted state dropped), restore its stores' tail
        on the state updater and process its partitions again from the committed offsets (a
        corrupted store; an aborted transaction)."""
        keys = [(topic, task.partition) for topic in sorted(task.assigned)]
        log.warning("task %s: %s. The task is closed without a commit and its stores restored from their "
                    "changelogs; %s are processed again from the last committed offset", task.task_id, why,
                    ", ".join(f"{t}[{p}]" for t, p in keys))
        self.committer.forget(keys)
        self.tasks.deactivate(task)
        try:
            committed = self.consumer.committed([TopicPartition(t, p) for t, p in keys], timeout=30)
            start = OFFSET_BEGINNING if self.reset_to_start else OFFSET_END
            for tp in committed:
                key = (tp.topic, tp.partition)
                self.held[key] = []
                self.rewound.add(key)  # its records in flight are dropped; resumed at activation
                target = TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else start)
                self.consumer.pause([target])
                self.consumer.seek(target)
            _restore_tables_to(task, {(tp.topic, tp.partition): tp.offset if tp.offset >= 0 else None
                                      for tp in committed})
        except KafkaException as exc2:
            # without the rewind, records after the committed offset would be skipped: stop instead
            raise StateError(f"{why}; the task could not be rewound to its committed offsets ({exc2}), so "
                             "the worker stops without committing; a restart restores it") from exc2
        self.updater.add([task])


def _restore_tables_to(task: Any, committed: dict[Key, int | None]) -> None:
    """A source table's restore stops at the group's committed offset of its topic (None: none)."""
    for spec in task.store_specs:
        if spec.source_table:
            task.committed[spec.changelog] = committed.get((spec.changelog, task.partition))


def fmt(partitions: list[Any]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"
