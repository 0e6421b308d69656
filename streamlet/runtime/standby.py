"""Standby tasks (``num_standby_replicas``): warm copies of other workers' task stores, kept by
following their changelogs, so that a failover restores only the changelog's tail.

A standby task never processes input and never produces: one thread of this worker reads the
changelog partitions of its standby tasks (``read_committed`` under exactly-once, so aborted
records never land) with its own assign-only consumer and writes each batch into the task's local
stores — the same RocksDB stores, at the same paths, as an active task of that partition would
open — together with the changelog checkpoint, in one atomic write (as a restore does). Source-table
stores (whose "changelog" is the input topic, restored up to the group's committed offset) are not
followed: they are restored in full, as without standbys.

Placement is agreed without the group protocol (:mod:`streamlet.runtime.standby_members`,
:mod:`streamlet.runtime.standby_placement`): the same thread publishes this worker's tasks and
checkpoints and recomputes the placement about once a second.

Hand-over: when the group assigns this worker a partition it keeps a standby of, the rebalance
callback calls :meth:`StandbyTasks.release` before the task is queued for restoring: the standby's
stores are closed (checkpointed with every batch), and the active task's normal restore opens them
and reads only the changelog after their checkpoint. A standby that placement moves elsewhere is
closed and its state directory kept (it may serve again, like Kafka Streams keeps it until cleanup).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from streamlet.config import Config
from streamlet.runtime.standby_members import (
    PUBLISH_INTERVAL_S,
    MemberView,
    encode,
    new_worker_id,
    standby_topic,
)
from streamlet.runtime.standby_placement import WorkerInfo, place_standbys
from streamlet.state import StateDirectory
from streamlet.state.builder import bottom_of
from streamlet.state.restore import restore_consumer_config
from streamlet.topology.graph import StoreSpec, Topology

log = logging.getLogger("streamlet.standby")

#: a caught-up standby store logs its offset at most this often (when it moved)
CAUGHT_UP_LOG_INTERVAL_S = 5.0
_OUT_OF_RANGE = {KafkaError.OFFSET_OUT_OF_RANGE, KafkaError._AUTO_OFFSET_RESET}


def standby_specs(topology: Topology, partitions: dict[str, int]) -> dict[str, tuple[int, list[StoreSpec]]]:
    """Task id → (partition, the stores a standby of it follows): every task with a changelogged store."""
    topics_of_sub = topology.topics_of_subtopology()
    out: dict[str, tuple[int, list[StoreSpec]]] = {}
    for sub, group in enumerate(topology.subtopologies()):
        specs = [s for s in topology.stores_of(group) if not s.source_table]
        if specs and sub in topics_of_sub:
            for p in range(partitions.get(topics_of_sub[sub][0], 0)):
                out[f"{sub}_{p}"] = (p, specs)
    return out


def prepare_standby_topic(admin: Any, config: Config) -> None:
    """Create ``<application id>-standby-offsets`` (one partition, compacted) if it is missing."""
    topic = standby_topic(config.application_id)
    if topic not in admin.partitions():
        admin.create({topic: 1}, {"cleanup.policy": "compact"})


class _Standby:
    """One standby task: its open bottom stores and where each changelog partition is."""

    def __init__(self, task_id: str, partition: int, stores: list[tuple[StoreSpec, Any]]) -> None:
        self.task_id, self.partition, self.stores = task_id, partition, stores
        #: changelog topic → (store, next offset to read)
        self.position: dict[str, int] = {spec.changelog: store.offsets().get(spec.changelog, 0)
                                          for spec, store in stores}
        self.by_topic = {spec.changelog: store for spec, store in stores}
        self.logged: dict[str, tuple[int, float]] = {}

    def offsets_sum(self) -> int:
        return sum(self.position.values())

    def close(self) -> None:
        for _, store in self.stores:
            store.close()


class StandbyTasks:
    """The standby tasks of this worker and the thread that keeps them (see the module)."""

    def __init__(self, config: Config, bootstrap: str, topology: Topology, partitions: dict[str, int],
                 metrics: Any = None, worker_id: str | None = None) -> None:
        self.replicas = config.num_standby_replicas
        #: this worker's HTTP side, published for interactive queries of the keys it holds
        self.server = config.application_server
        self.topic = standby_topic(config.application_id)
        self.me = worker_id or new_worker_id()
        self.metrics = metrics
        self.specs = standby_specs(topology, partitions)
        self.directory = StateDirectory(config.state_dir, config.application_id, lock_timeout_s=1.0)
        self.view = MemberView(self.me)
        settings = {k: v for k, v in config.client_config.items()
                    if k.startswith(("security.", "sasl.", "ssl.", "client.", "socket."))}
        isolation = "read_committed" if config.guarantee == "exactly_once" else "read_uncommitted"
        self.consumer = Consumer(restore_consumer_config(
            bootstrap, **settings, **{"group.id": f"{config.application_id}-standby",
                                      "isolation.level": isolation, "enable.partition.eof": False}))
        self.producer = Producer({"bootstrap.servers": bootstrap, **settings, "linger.ms": 5})
        self.consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
        self.standbys: dict[str, _Standby] = {}
        #: (changelog, partition) → the standby following it
        self._following: dict[tuple[str, int], _Standby] = {}
        #: checkpoints of standbys closed here (their state directories are kept): still published
        self._kept: dict[str, int] = {}
        #: the tasks this worker runs (active or restoring) and their active stores' checkpoints
        self._local: frozenset[str] = frozenset()
        self._local_offsets: dict[str, int] = {}
        #: task_assignor="streamlet": the standby and warm-up tasks the group's assignment gave this
        #: worker (None: placed here by place_standbys)
        self.assigned: frozenset[str] | None = None
        self._lock = threading.RLock()
        self._closed = threading.Event()
        self._next_update = 0.0
        self._thread = threading.Thread(target=self._run, name="streamlet-standby", daemon=True)
        self._thread.start()
        log.info("standby replicas: %d; this worker publishes itself as %s on %s", self.replicas, self.me,
                 self.topic)

    # -- the record loop's side ----------------------------------------------------------
    def maybe_update(self, tasks: Any) -> None:
        """About once a second: tell the standby thread which tasks run here and their checkpoints."""
        now = time.monotonic()
        if now < self._next_update:
            return
        self._next_update = now + PUBLISH_INTERVAL_S
        local, offsets = set(), {}
        for task in list(tasks.tasks.values()):
            local.add(task.task_id)
            if task.active and task.task_id in self.specs:
                total = 0
                for spec in self.specs[task.task_id][1]:
                    cache = task.ctx.stores.get(spec.name)
                    if cache is not None:
                        total += bottom_of(cache).offsets().get(spec.changelog, 0)
                offsets[task.task_id] = total
        with self._lock:
            for task_id, offset in self._local_offsets.items():
                if task_id not in offsets:  # no longer active here: its state directory stays
                    self._kept[task_id] = offset
            self._local = frozenset(local)
            self._local_offsets = offsets

    def release(self, task_ids: list[str]) -> None:
        """These tasks become active here: close their standbys (stores checkpointed) before the
        active tasks' restore opens the same stores and reads the changelog after the checkpoint."""
        with self._lock:
            self._local = self._local | set(task_ids)
            for task_id in task_ids:
                standby = self.standbys.get(task_id)
                if standby is not None:
                    self._drop(standby, "its partition is assigned to this worker: handed over to the active task")

    def assign(self, task_ids: frozenset[str]) -> None:
        """task_assignor="streamlet": keep standbys of exactly these tasks (standbys and warm-ups of
        the group's assignment), from the next placement round."""
        with self._lock:
            self.assigned = frozenset(t for t in task_ids if t in self.specs)

    def task_offsets(self) -> dict[str, int]:
        """Per task whose stores this worker holds (active, standby or kept on disk): the sum of their
        changelog checkpoints, as sent with a join for streamlet's assignor."""
        with self._lock:
            return dict(self._mine().offsets)

    def server_of(self, task_id: str) -> str | None:
        """The HTTP side of the other worker that runs ``task_id`` (``None``: none known)."""
        with self._lock:
            for worker, info in self.view.live(self._mine()).items():
                if worker != self.me and task_id in info.active and info.server:
                    return info.server
        return None

    def close(self) -> None:
        """Stop the thread, close every standby (state kept) and say this worker is gone."""
        self._closed.set()
        self._thread.join(30)
        with self._lock:
            for standby in list(self.standbys.values()):
                self._drop(standby, "the worker stops")
        try:
            self.producer.produce(self.topic, key=self.me.encode(), value=None)
            self.producer.flush(5)
        except Exception as exc:  # the others drop this worker after the TTL anyway
            log.debug("standby tombstone not written: %s", exc)
        self.consumer.close()

    # -- the thread ----------------------------------------------------------------------
    def _run(self) -> None:
        next_round = 0.0
        changed = False
        while not self._closed.is_set():
            try:
                now = time.monotonic()
                if changed or now >= next_round:
                    if now >= next_round:
                        self._publish()
                        next_round = now + PUBLISH_INTERVAL_S
                    self._place()
                    changed = False
                msgs = self.consumer.consume(10_000, 0.1)
                if msgs:
                    with self._lock:
                        changed = self._apply(msgs)
                self._log_caught_up()
            except Exception:  # a standby is an optimisation: log, and try again shortly
                log.exception("standby tasks: unexpected error (retrying in 1 s)")
                self._closed.wait(1.0)

    def _mine(self) -> WorkerInfo:
        offsets = dict(self._kept)
        offsets.update({t: s.offsets_sum() for t, s in self.standbys.items()})
        offsets.update(self._local_offsets)
        return WorkerInfo(self._local, offsets, self.server)

    def _publish(self) -> None:
        with self._lock:
            mine = self._mine()
        self.producer.produce(self.topic, key=self.me.encode(), value=encode(set(mine.active), dict(mine.offsets), mine.server))
        self.producer.poll(0)

    def _place(self) -> None:
        with self._lock:
            workers = self.view.live(self._mine())
            if self.assigned is not None:
                wanted = self.assigned - self._local
            else:
                wanted = place_standbys(sorted(self.specs), workers, self.replicas)[self.me] - self._local
            for task_id in sorted(set(self.standbys) - wanted):
                self._drop(self.standbys[task_id], "placed on another worker")
            for task_id in sorted(wanted - set(self.standbys)):
                self._open(task_id)

    def _open(self, task_id: str) -> None:
        partition, specs = self.specs[task_id]
        stores: list[tuple[StoreSpec, Any]] = []
        try:
            for spec in specs:
                row_format = "timestamped" if spec.timestamped else ""
                stores.append((spec, self.directory.open_store(partition, spec.name, row_format=row_format)))
        except Exception as exc:  # still held by a closing active task: tried again at the next round
            for _, store in stores:
                store.close()
            log.info("standby task %s not opened yet (%s); trying again shortly", task_id, exc)
            return
        standby = _Standby(task_id, partition, stores)
        self.standbys[task_id] = standby
        self._kept.pop(task_id, None)
        tps = []
        for topic, offset in standby.position.items():
            self._following[(topic, partition)] = standby
            tps.append(TopicPartition(topic, partition, offset if offset > 0 else OFFSET_BEGINNING))
        self.consumer.incremental_assign(tps)
        log.info("standby task %s opened: following %s from offsets %s", task_id,
                 ", ".join(f"{t}[{partition}]" for t in standby.position), standby.position)

    def _drop(self, standby: _Standby, why: str) -> None:
        del self.standbys[standby.task_id]
        tps = [TopicPartition(t, standby.partition) for t in standby.position]
        for topic in standby.position:
            self._following.pop((topic, standby.partition), None)
        try:
            self.consumer.incremental_unassign(tps)
        except Exception as exc:
            log.debug("standby task %s: unassign failed: %s", standby.task_id, exc)
        standby.close()
        self._kept[standby.task_id] = standby.offsets_sum()
        log.info("standby task %s closed (%s) at changelog offsets %s; its state directory is kept",
                 standby.task_id, why, standby.position)

    def _apply(self, msgs: list[Any]) -> bool:
        """Write a batch into the standby stores; True when the member view changed."""
        changed = False
        batches: dict[tuple[str, int], tuple[dict[bytes, Any], int]] = {}
        for m in msgs:
            err = m.error()
            topic = m.topic()
            if err is not None:
                if err.code() in _OUT_OF_RANGE and (topic, m.partition()) in self._following:
                    self._reset(self._following[(topic, m.partition())], topic, err.str())
                elif err.code() != KafkaError._PARTITION_EOF:
                    log.debug("standby consumer: %s", err.str())
                continue
            if topic == self.topic:
                changed |= self.view.apply(m.key(), m.value())
                continue
            key = (topic, m.partition())
            if key not in self._following:
                continue  # dropped meanwhile
            changes, _ = batches.get(key, ({}, 0))
            changes[m.key()] = m.value()
            batches[key] = (changes, m.offset() + 1)
        for (topic, partition), (changes, next_offset) in batches.items():
            standby = self._following.get((topic, partition))
            if standby is None:
                continue  # dropped by a failed write of its other store just before
            next_offset = max(next_offset, self._position_of(topic, partition))
            try:
                standby.by_topic[topic].write(changes, {topic: next_offset})
            except Exception as exc:
                # never a gap: closed (a corrupted store is wiped as it closes) and opened again at
                # its checkpoint by the next placement round
                log.warning("standby task %s: writing %s [%d] failed (%s)", standby.task_id, topic, partition, exc)
                self._drop(standby, "a store write failed")
                continue
            standby.position[topic] = next_offset
            if self.metrics is not None:
                self.metrics.inc("standby_records", len(changes), task=standby.task_id, topic=topic)
        return changed

    def _position_of(self, topic: str, partition: int) -> int:
        """The consumer's position (past transaction markers), or 0 when unknown."""
        at = self.consumer.position([TopicPartition(topic, partition)])[0].offset
        return at if at >= 0 else 0

    def _reset(self, standby: _Standby, topic: str, why: str) -> None:
        """The standby's checkpoint is outside its changelog (deleted, re-created or truncated): wipe
        the store and follow from the start; the active restore applies the truncation policy."""
        log.warning("standby task %s: changelog %s [%d] does not hold its checkpoint %d (%s): wiping the "
                    "standby store and following from the start", standby.task_id, topic, standby.partition,
                    standby.position[topic], why)
        standby.by_topic[topic].clear()
        standby.position[topic] = 0
        self.consumer.seek(TopicPartition(topic, standby.partition, OFFSET_BEGINNING))

    def _log_caught_up(self) -> None:
        """A standby store at its changelog's end logs its offset (at most every few seconds)."""
        now = time.monotonic()
        with self._lock:
            for (topic, partition), standby in self._following.items():
                position = standby.position[topic]
                last = standby.logged.get(topic)
                if last is not None and (last[0] == position or now - last[1] < CAUGHT_UP_LOG_INTERVAL_S):
                    continue
                high = self.consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)[1]
                if 0 <= high <= position or (high == 0 and position == 0):
                    standby.logged[topic] = (position, now)
                    log.info("standby task %s: %s [%d] caught up at offset %d", standby.task_id, topic,
                             partition, position)
