"""streamlet's assignor (``task_assignor="streamlet"``): what members send with a join, what the
leader computes, what each member gets back. Pure functions over bytes; the group protocol around
them is :mod:`streamlet.runtime.group_member`.

A member sends its worker id, the tasks it runs (active or restoring), the generation it got them in,
and the changelog checkpoint of every task whose stores it holds. The leader runs
:func:`~streamlet.runtime.task_assignor.assign_tasks` and then makes the hand-over *cooperative*
(Kafka's KIP-429, done here in the assignor): a task another live member still runs is not given to
its new worker in the same round — its old worker gets an assignment without it, commits and closes
it, and asks for the next round, in which the task is free. Tasks that stay where they are keep
running through every round.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from streamlet.runtime.task_assignor import MemberState, assign_tasks


@dataclass(frozen=True)
class JoinInfo:
    """What one member sent with its join."""

    worker: str
    active: frozenset[str] = frozenset()
    generation: int = -1
    offsets: dict[str, int] = field(default_factory=dict)

    def encode(self) -> bytes:
        return orjson.dumps({"v": 1, "worker": self.worker, "active": sorted(self.active),
                             "generation": self.generation, "offsets": self.offsets})

    @staticmethod
    def decode(data: bytes) -> "JoinInfo":
        d = orjson.loads(data)
        return JoinInfo(str(d["worker"]), frozenset(d.get("active", ())), int(d.get("generation", -1)),
                        {str(k): int(v) for k, v in (d.get("offsets") or {}).items()})


@dataclass(frozen=True)
class Assignment:
    """What one member gets: the tasks to run, to keep as standbys and to warm up; ``probe``: ask for
    another round later (warm-ups to check); ``again``: tasks were held back for a hand-over."""

    active: frozenset[str] = frozenset()
    standby: frozenset[str] = frozenset()
    warmup: frozenset[str] = frozenset()
    probe: bool = False
    again: bool = False

    def encode(self) -> bytes:
        return orjson.dumps({"v": 1, "active": sorted(self.active), "standby": sorted(self.standby),
                             "warmup": sorted(self.warmup), "probe": self.probe, "again": self.again})

    @staticmethod
    def decode(data: bytes) -> "Assignment":
        if not data:
            return Assignment()
        d = orjson.loads(data)
        return Assignment(frozenset(d.get("active", ())), frozenset(d.get("standby", ())),
                          frozenset(d.get("warmup", ())), bool(d.get("probe")), bool(d.get("again")))


def plan(members: dict[str, bytes], tasks: list[str], replicas: int, acceptable_lag: int,
         max_warmups: int) -> dict[str, bytes]:
    """The leader's step: member id → join bytes in, member id → assignment bytes out."""
    joins = {m: JoinInfo.decode(data) for m, data in members.items()}
    by_worker: dict[str, str] = {}
    for m in sorted(joins):  # two members with one worker id (never expected): the same one on every leader
        by_worker[joins[m].worker] = m
    # who runs each task now: the claim from the latest generation wins (a member that was dropped
    # from the group and came back may still claim tasks given away meanwhile)
    owner: dict[str, str] = {}
    for worker in sorted(by_worker):
        info = joins[by_worker[worker]]
        for task in info.active:
            if task not in owner or info.generation > joins[by_worker[owner[task]]].generation:
                owner[task] = worker
    states = {w: MemberState(frozenset(t for t, o in owner.items() if o == w), joins[m].offsets)
              for w, m in by_worker.items()}
    result = assign_tasks(tasks, states, replicas, acceptable_lag, max_warmups)
    held_back = {t for w in states for t in result.active[w] if owner.get(t) not in (None, w)}
    out: dict[str, bytes] = {}
    for worker, m in by_worker.items():
        out[m] = Assignment(frozenset(result.active[worker] - held_back), frozenset(result.standby[worker]),
                            frozenset(result.warmup[worker]), result.probe, bool(held_back)).encode()
    for m in joins:
        out.setdefault(m, Assignment().encode())  # the other member of a doubled worker id: nothing
    return out
