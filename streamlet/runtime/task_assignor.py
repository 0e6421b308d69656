"""Which worker runs each task, and which keep standby and warm-up copies: Kafka Streams' KIP-441
placement as a pure function (``HighAvailabilityTaskAssignor`` in spirit).

The group leader will run :func:`assign_tasks` over what every member sent with its join (the tasks it
ran and how far its copy of each task's stores is checkpointed); the result is deterministic, so the
same inputs give the same placement whoever leads. It is not wired into the runner yet: see
docs/architecture.md, "Design: streamlet's own assignor".

The rules, in order:

1. **Actives go to caught-up copies.** A copy within ``acceptable_lag`` changelog records of the most
   advanced copy any worker reported is *caught up*. A task whose previous owner is caught up stays
   there; otherwise it goes to the least-loaded caught-up worker. A task nobody holds caught up goes
   to its previous owner if it is still here, else to the least-loaded worker (it restores there).
2. **Balance without downtime.** A worker with two tasks more than another gives it tasks only where
   the receiver is caught up on that task. Where it is not, the task stays
   and the receiver gets a *warm-up* copy (at most ``max_warmups`` in all); once the warm-up has caught
   up, the next assignment (a *probing rebalance*) moves the task by rule 1.
3. **Standbys** go to the workers with the least lag on the task (caught up first), then the fewest
   standbys, never to the task's active worker; ``min(replicas, workers - 1)`` per task. A warm-up
   counts as one of them.

Ties are broken by a rendezvous hash of (worker, task), so a worker joining or leaving moves only what
it wins or held.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from streamlet.runtime.standby_placement import ACCEPTABLE_LAG, rendezvous

#: warm-up copies placed at once (Kafka Streams' ``max.warmup.replicas`` default)
MAX_WARMUPS = 2


@dataclass(frozen=True)
class MemberState:
    """What one worker reported: the tasks it ran as active, and per task whose stores it holds (as
    active, standby or left on disk) the sum of their changelog checkpoints."""

    previous_active: frozenset[str] = frozenset()
    offsets: Mapping[str, int] = field(default_factory=dict)


@dataclass
class TaskAssignment:
    """Worker id → task ids, for each role; ``probe`` asks for another assignment once warm-ups have
    caught up (Kafka Streams' probing rebalance)."""

    active: dict[str, set[str]]
    standby: dict[str, set[str]]
    warmup: dict[str, set[str]]

    @property
    def probe(self) -> bool:
        return any(self.warmup.values())


def assign_tasks(tasks: Iterable[str], members: Mapping[str, MemberState], replicas: int = 0,
                 acceptable_lag: int = ACCEPTABLE_LAG, max_warmups: int = MAX_WARMUPS) -> TaskAssignment:
    """Place every task of ``tasks`` on one of ``members`` (see the module's rules)."""
    if not members:
        raise ValueError("no members to assign tasks to")
    if replicas < 0 or max_warmups < 0 or acceptable_lag < 0:
        raise ValueError("replicas, max_warmups and acceptable_lag must be >= 0")
    workers = sorted(members)
    task_list = sorted(set(tasks))
    best = {t: max((m.offsets.get(t, -1) for m in members.values()), default=-1) for t in task_list}

    def lag(worker: str, task: str) -> float:
        have = members[worker].offsets.get(task)
        return math.inf if have is None else best[task] - have

    def caught_up(worker: str, task: str) -> bool:
        # a task no worker holds state of (stateless, or new) has nothing to catch up on
        return best[task] < 0 or lag(worker, task) <= acceptable_lag

    active: dict[str, set[str]] = {w: set() for w in workers}
    owner: dict[str, str] = {}

    def give(task: str, worker: str) -> None:
        if task in owner:
            active[owner[task]].discard(task)
        owner[task] = worker
        active[worker].add(task)

    previous = {t: w for w in workers for t in members[w].previous_active}
    # 1. actives to caught-up copies (tasks with a caught-up previous owner first: they never move)
    for task in task_list:
        prev = previous.get(task)
        if prev is not None and caught_up(prev, task):
            give(task, prev)
    for task in task_list:
        if task in owner:
            continue
        ready = [w for w in workers if caught_up(w, task)]
        if ready:
            give(task, min(ready, key=lambda w: (len(active[w]), -rendezvous(w, task))))
        elif task in previous:
            give(task, previous[task])
        else:
            give(task, min(workers, key=lambda w: (len(active[w]), -rendezvous(w, task))))

    # 2. balance (loads within one of each other): move only to caught-up receivers, else warm up
    warmup: dict[str, set[str]] = {w: set() for w in workers}
    warmups = 0
    for giver in sorted(workers, key=lambda w: (-len(active[w]), w)):
        for task in sorted(active[giver], key=lambda t: -rendezvous(giver, t)):
            load = len(active[giver])
            ready = [w for w in workers if len(active[w]) + 1 < load and caught_up(w, task)]
            if ready:
                give(task, min(ready, key=lambda w: (len(active[w]), -rendezvous(w, task))))
                continue
            cold = [w for w in workers if len(active[w]) + len(warmup[w]) + 1 < load]
            if cold and warmups < max_warmups:
                target = min(cold, key=lambda w: (len(active[w]) + len(warmup[w]), lag(w, task),
                                                  -rendezvous(w, task)))
                warmup[target].add(task)
                warmups += 1

    # 3. standbys: least lag, then fewest standbys; warm-ups count as standbys of their task
    standby: dict[str, set[str]] = {w: set() for w in workers}
    cap = min(replicas, len(workers) - 1)
    for task in task_list:
        have = [w for w in workers if task in warmup[w]]
        want = cap - len(have)
        if want <= 0:
            continue
        candidates = [w for w in workers if w != owner[task] and task not in warmup[w]]
        candidates.sort(key=lambda w: (0 if caught_up(w, task) else 1, len(standby[w]), -rendezvous(w, task)))
        for w in candidates[:want]:
            standby[w].add(task)
    return TaskAssignment(active, standby, warmup)
