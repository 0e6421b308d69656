"""The consumer's rebalance callbacks of a worker (Kafka Streams' ``StreamsRebalanceListener``):
bookkeeping only — tasks created, restored, committed and closed as partitions come and go.

A mixin of :class:`~streamlet.runtime.runner.Runner`, whose attributes (``tasks``, ``committer``,
``restoring``, ``log_start``, ``ready``, ``assigned``) they use.
"""

from __future__ import annotations

import logging
from typing import Any

from streamlet.errors import StreamletError
from streamlet.runtime import stream_time
from streamlet.runtime.restoring import fmt

log = logging.getLogger("streamlet.runtime")


class RebalanceCallbacks:
    """``on_assign`` / ``on_revoke`` / ``on_lost`` for ``consumer.subscribe``, and the task manager's
    readiness callback."""

    tasks: Any
    committer: Any
    restoring: Any
    log_start: Any
    ready: Any
    assigned: Any
    closing: bool
    #: the worker's StandbyTasks (num_standby_replicas > 0), else None
    standbys: Any = None

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        tasks = self.tasks
        assert tasks is not None
        if self.closing:
            # a rebalance completed while the consumer closes: no task is started (the handle is being
            # destroyed, so not even the committed offsets can be read); the group reassigns them
            log.info("assignment while closing ignored: %s", fmt(partitions))
            return
        keys = [(tp.topic, tp.partition) for tp in partitions]
        committed = self.log_start.committed(keys)  # before the first fetch: deleted records reported
        created = tasks.assign(keys)
        stream_time.resume(created, self.log_start.metadata)  # as committed with their offsets
        restoring = [t for t in created if not t.active]
        if restoring and self.standbys is not None:
            self.standbys.release([t.task_id for t in restoring])  # their stores, closed, to the restore
        if restoring:
            self.restoring.add(restoring, committed)  # type: ignore[union-attr]
        log.info("assigned %s", fmt(partitions))
        self.metrics.inc("rebalances", event="assigned")
        self.assigned.set()

    def _on_readiness(self, ready: bool) -> None:
        if ready:
            self.ready.set()
        else:
            self.ready.clear()

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        assert self.tasks is not None and self.committer is not None
        keys = [(tp.topic, tp.partition) for tp in partitions]
        try:
            handed_over = self.committer.commit(only=keys)
        except StreamletError as exc:
            log.error("could not commit revoked partitions: %s", exc)
            handed_over = False
        if not handed_over and not self.committer.abandoned:
            log.warning("the offsets of revoked %s were not committed at the handover: their new owner "
                        "processes the records after the last commit again (at-least-once)", fmt(partitions))
        self.committer.forget(keys)
        if self.restoring is not None:
            self.restoring.drop(keys)
        self.tasks.revoke(keys)
        log.info("revoked %s", fmt(partitions))
        self.metrics.inc("rebalances", event="revoked")

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        assert self.tasks is not None and self.committer is not None
        keys = [(tp.topic, tp.partition) for tp in partitions]
        self.committer.forget(keys)
        if self.restoring is not None:
            self.restoring.drop(keys)
        self.tasks.revoke(keys)
        log.warning("lost %s (another member owns them now)", fmt(partitions))
        self.metrics.inc("rebalances", event="lost")
