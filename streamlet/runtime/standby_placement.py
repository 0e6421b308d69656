"""Where standby tasks go: a deterministic function of what the workers published about themselves.

confluent-kafka has no custom partition assignor in Python, so the group's assignment cannot carry
standby tasks as Kafka Streams' ``StreamsPartitionAssignor`` does. Instead every worker publishes a
small record about itself (:mod:`streamlet.runtime.standby`: its active tasks and how far its copies
of task stores are checkpointed) and every worker runs :func:`place_standbys` over the same records:
the same inputs give the same placement on every worker, with no coordinator and no extra round of
the group protocol. Workers whose views differ for a moment (a record not read yet) may keep one
standby too many or too few for that moment; a standby is only a warm cache, so this costs restore
time, never correctness.

For each task, the candidates are the live workers that do not run it; they are ranked by

1. *lag bucket*: a worker whose copy of the task's stores is within ``acceptable_lag`` records of
   the most advanced copy any worker published (the active's, usually) comes first — standbys go to
   the caught-up workers and stay there (Kafka Streams' ``acceptable.recovery.lag``);
2. *rendezvous hash* of (worker, task): a stable, evenly spread order; a worker joining or leaving
   moves only the tasks it wins or held, not the others.

The first ``min(replicas, workers - 1)`` candidates keep a standby of the task.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Iterable, Mapping

#: a copy within this many changelog records of the most advanced one counts as caught up (Kafka
#: Streams' ``acceptable.recovery.lag`` default)
ACCEPTABLE_LAG = 10_000


@dataclass
class WorkerInfo:
    """What one worker published: the tasks it runs (active or restoring) and, per task whose stores
    it holds open (active or standby), the sum of their changelog checkpoints."""

    active: frozenset[str] = frozenset()
    offsets: Mapping[str, int] = field(default_factory=dict)
    #: its HTTP side (``application_server``), where interactive queries for its tasks' keys go
    server: str | None = None


def rendezvous(worker: str, task: str) -> int:
    """The highest-random-weight score of ``worker`` for ``task``: the same in every process."""
    return int.from_bytes(hashlib.blake2b(f"{worker}\x00{task}".encode(), digest_size=8).digest(), "big")


def place_standbys(tasks: Iterable[str], workers: Mapping[str, WorkerInfo], replicas: int,
                   acceptable_lag: int = ACCEPTABLE_LAG) -> dict[str, set[str]]:
    """Worker id → the task ids it keeps a standby of (every worker of ``workers`` is a key).

    A task never gets a standby on a worker that runs it; at most ``replicas`` standbys per task,
    and never more than ``len(workers) - 1`` (one worker is left for the active).
    """
    if replicas < 0:
        raise ValueError("replicas must be >= 0")
    placement: dict[str, set[str]] = {w: set() for w in workers}
    cap = min(replicas, len(workers) - 1)
    if cap <= 0:
        return placement
    for task in tasks:
        candidates = [w for w, info in workers.items() if task not in info.active]
        if not candidates:
            continue
        best = max((info.offsets.get(task, -1) for info in workers.values()), default=-1)

        def rank(w: str) -> tuple[int, int]:
            have = workers[w].offsets.get(task)
            caught_up = have is not None and best - have <= acceptable_lag
            return (0 if caught_up else 1, -rendezvous(w, task))

        for w in sorted(candidates, key=rank)[:cap]:
            placement[w].add(task)
    return placement
