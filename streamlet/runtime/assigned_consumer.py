"""The worker's consumer under ``task_assignor="streamlet"``: confluent-kafka reads the records of the
partitions streamlet's assignor gave this worker (``incremental_assign``), and
:class:`~streamlet.runtime.group_member.GroupMember` holds the group membership.

To the runner it looks like the consumer it subscribes with ``task_assignor="group"``:
``subscribe(topics, on_assign, on_revoke, on_lost)`` starts the membership, and the callbacks run
inside :meth:`consume`, in the record loop's thread, as librdkafka serves them — incremental
(cooperative) lists, revocations first. Offsets are committed through the membership (its
generation); ``consumer_group_metadata()`` is the membership's, for the transactional producer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any, Callable

from confluent_kafka import TopicPartition

from streamlet.runtime.group_member import GroupMember
from streamlet.runtime.streamlet_assignor import Assignment, JoinInfo, plan

log = logging.getLogger("streamlet.runtime")

Callback = Callable[[Any, list[TopicPartition]], None]


class AssignedConsumer:
    """A confluent-kafka consumer fed by streamlet's assignor (see the module)."""

    def __init__(self, consumer: Any, *, config: Any, bootstrap: str, membership_topic: str,
                 tasks: dict[str, list[tuple[str, int]]], worker_id: str,
                 offsets: Callable[[], dict[str, int]] | None = None,
                 on_standbys: Callable[[frozenset[str]], None] | None = None,
                 leader_delay_s: float = 0.0, on_commit: Callback | None = None) -> None:
        self._consumer = consumer
        #: librdkafka's ``on_commit`` contract: the answers to asynchronous commits, served by consume()
        self._on_commit = on_commit
        self._answers: deque[tuple[Any, list[TopicPartition]]] = deque()
        self._config = config
        #: task id → the input partitions its active task reads
        self._tasks_of = tasks
        self._worker = worker_id
        self._offsets = offsets or (lambda: {})
        self._on_standbys = on_standbys
        self._running: frozenset[str] = frozenset()
        self._generation = -1
        self._next: tuple[int, Assignment] | None = None
        self._lost = False
        self._lock = threading.Lock()
        self._probe_at: float | None = None
        self._callbacks: tuple[Callback, Callback, Callback] | None = None
        self.member = GroupMember(
            group=config.application_id, bootstrap=bootstrap, topic=membership_topic,
            instance_id=config.instance_id, client_config=config.client_config, metadata=self._join_info,
            assign=self._plan, on_assignment=self._received, on_lost=self._member_lost,
            leader_delay_s=leader_delay_s)

    # -- the group's side (the membership thread) -------------------------------------------
    def _join_info(self) -> bytes:
        with self._lock:
            running, generation = self._running, self._generation
        try:
            offsets = self._offsets()
        except Exception as exc:  # offsets only steer placement: join without them
            log.debug("task offsets not read for the join: %s", exc)
            offsets = {}
        return JoinInfo(self._worker, running, generation, offsets).encode()

    def _plan(self, members: dict[str, bytes]) -> dict[str, bytes]:
        cfg = self._config
        out = plan(members, sorted(self._tasks_of), cfg.num_standby_replicas, cfg.acceptable_recovery_lag,
                   cfg.max_warmup_replicas)
        log.info("task assignment computed for %d members (this worker leads the group)", len(members))
        return out

    def _received(self, generation: int, member_id: str, data: bytes) -> None:
        with self._lock:
            self._next = (generation, Assignment.decode(data))

    def _member_lost(self) -> None:
        with self._lock:
            self._lost = True

    # -- the record loop's side -------------------------------------------------------------
    def subscribe(self, topics: list[str], on_assign: Callback, on_revoke: Callback, on_lost: Callback) -> None:
        self._callbacks = (on_assign, on_revoke, on_lost)
        self.member.start()

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:
        self.member.polled()
        while self._answers:
            err, offsets = self._answers.popleft()
            if self._on_commit is not None:
                self._on_commit(err, offsets)
        if self._next is not None or self._lost:
            self._apply()
        if self._probe_at is not None and time.monotonic() >= self._probe_at:
            self._probe_at = None
            log.info("probing rebalance: asking the group to place warmed-up tasks")
            self.member.rejoin()
        return self._consumer.consume(num_messages, timeout)

    def poll(self, timeout: float = -1) -> Any:
        msgs = self.consume(1, timeout)
        return msgs[0] if msgs else None

    def _partitions(self, tasks: frozenset[str] | set[str]) -> list[TopicPartition]:
        return [TopicPartition(t, p) for task in sorted(tasks) for t, p in self._tasks_of.get(task, ())]

    def _apply(self) -> None:
        assert self._callbacks is not None
        on_assign, on_revoke, on_lost = self._callbacks
        with self._lock:
            lost, self._lost = self._lost, False
            received, self._next = self._next, None
        if lost and self._running:
            # dropped from the group: its tasks may run elsewhere already; nothing more is committed
            tps = self._partitions(self._running)
            on_lost(self, tps)
            self._consumer.incremental_unassign(tps)
            with self._lock:
                self._running = frozenset()
        if received is None:
            return
        generation, assignment = received
        wanted = assignment.active
        removed, added = self._running - wanted, wanted - self._running
        if removed:
            tps = self._partitions(removed)
            on_revoke(self, tps)  # commits their offsets (this generation) and closes the tasks
            self._consumer.incremental_unassign(tps)
        with self._lock:
            self._running, self._generation = wanted, generation
        if added:
            tps = self._partitions(added)
            on_assign(self, tps)
            self._consumer.incremental_assign(tps)
        if self._on_standbys is not None:
            self._on_standbys(assignment.standby | assignment.warmup)
        log.info("generation %d: %d tasks (%d new, %d handed over), %d standby, %d warm-up", generation,
                 len(wanted), len(added), len(removed), len(assignment.standby), len(assignment.warmup))
        if removed:
            self.member.rejoin()  # the next round gives them to their new worker
        if assignment.probe and self._probe_at is None:
            self._probe_at = time.monotonic() + self._config.probing_rebalance_interval_ms / 1000
        elif not assignment.probe:
            self._probe_at = None

    def commit(self, message: Any = None, offsets: list[TopicPartition] | None = None,
               asynchronous: bool = True) -> None:
        if offsets is None:
            raise ValueError("task_assignor='streamlet' commits explicit offsets only")
        if asynchronous:
            self.member.commit_async(offsets, lambda err: self._answers.append((err, offsets)))
        else:
            self.member.commit(offsets)

    def consumer_group_metadata(self) -> bytes:
        return self.member.group_metadata()

    def attach_standbys(self, standbys: Any) -> None:
        """The worker's standby tasks: their checkpoints go with each join, and they follow the
        standby and warm-up tasks of each assignment."""
        self._offsets = standbys.task_offsets
        self._on_standbys = standbys.assign

    @property
    def worker_id(self) -> str:
        return self._worker

    def memberid(self) -> str:
        return self.member.member_id

    def close(self) -> None:
        try:
            self.member.close()
        finally:
            self._consumer.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)


def task_partitions(topology: Any, partitions: dict[str, int]) -> dict[str, list[tuple[str, int]]]:
    """Task id (``<sub-topology>_<partition>``) → the input partitions its active task reads."""
    out: dict[str, list[tuple[str, int]]] = {}
    for sub, topics in sorted(topology.topics_of_subtopology().items()):
        count = max((partitions.get(t, 0) for t in topics), default=0)
        for p in range(count):
            out[f"{sub}_{p}"] = [(t, p) for t in sorted(topics) if p < partitions.get(t, 0)]
    return out


def assigned_consumer(consumer: Any, config: Any, bootstrap: str, topology: Any, partitions: dict[str, int],
                      mock_broker: bool, on_commit: Callback | None = None) -> AssignedConsumer:
    """The worker's consumer for ``task_assignor="streamlet"`` (see the module)."""
    from streamlet.runtime.standby_members import new_worker_id, standby_topic

    return AssignedConsumer(consumer, config=config, bootstrap=bootstrap,
                            membership_topic=standby_topic(config.application_id),
                            tasks=task_partitions(topology, partitions),
                            # per process, even for a static member: a restarted worker and the member it
                            # replaces may both be in one join (brokers without KIP-345)
                            worker_id=new_worker_id(),
                            # librdkafka's mock refuses a follower's SyncGroup that comes after the leader's
                            leader_delay_s=0.3 if mock_broker else 0.0, on_commit=on_commit)
