"""The commit of this process, owned by one object: caches → changelog → producer flush → store
checkpoint → input offsets.

Every commit — on the interval, for revoked partitions, at shutdown — goes
through :meth:`Checkpoint.commit`. :class:`AtLeastOnceCheckpoint` does, in
this order:

1. **flush caches**: once the outputs sent so far are acknowledged, each store
   of each active task stages its changed keys (``prepare_commit``); the
   change-logging layer sends one changelog record per key
   (:mod:`streamlet.state.store` describes the layers). Outputs first: a
   changelog record may mark an input record as applied (an aggregation's
   replay mark, an emitted window), and a replay after a crash skips what is
   marked — so the output it produced must be in its topic before the mark is;
2. **producer flush**: changelog records are acknowledged; a
   record the broker rejected goes to the error policy, any other delivery
   failure raises :class:`~streamlet.errors.DeliveryError` — then nothing is
   written or committed, and every later commit raises it too;
3. **store checkpoint**: each store writes its staged changes and its
   changelog checkpoint in one atomic write (a source table's checkpoint is
   the input offset about to be committed). A corrupted store is noted in
   :attr:`Checkpoint.corrupted` for the record loop to reset that task — its
   changes are in the changelog already, so the commit goes on;
4. **input offsets** are committed; refused during a rebalance → ``False``,
   the offsets stay pending (records after the last commit may be processed
   again: at-least-once, which the aggregations' replay marks absorb).

Local state is thus never ahead of its changelog, and never behind the
committed offsets.

Exactly-once fits as another subclass with the same entry points: a
transactional producer (``begin_transaction`` after each commit), then at
commit: flush caches (changelog records join the transaction) →
``send_offsets_to_transaction(offsets, consumer.consumer_group_metadata())``
→ ``commit_transaction()`` → store checkpoint; on ``abort_transaction()``,
:meth:`Checkpoint.rollback` takes every cache back to the last checkpoint and
the consumer is rewound to the committed offsets.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from typing import Any, Callable, Iterable

from streamlet.errors import StoreCorruptedError, StreamletError
from streamlet.runtime.committer import Committer

log = logging.getLogger("streamlet.commit")

Key = tuple[str, int]
#: the stores to commit: (task, store spec, top store layer)
Stores = list[tuple[Any, Any, Any]]


class CommitLatency:
    """Count, total and longest duration of commits, in seconds."""

    def __init__(self) -> None:
        self.count, self.total, self.longest = 0, 0.0, 0.0

    def add(self, seconds: float) -> None:
        self.count += 1
        self.total += seconds
        if seconds > self.longest:
            self.longest = seconds


class Checkpoint(ABC):
    """One owner of the commit. ``tasks()`` gives the active tasks (their stores are committed);
    ``after_commit(offsets)`` runs after input offsets were committed (repartition purges).

    The record loop's bookkeeping (``track``, ``track_positions``, ``pending``,
    ``forget``) is the :class:`Committer`'s, reached through this object.
    """

    def __init__(self, committer: Committer, tasks: Callable[[], Iterable[Any]] = tuple,
                 after_commit: Callable[[dict[Key, int]], None] | None = None) -> None:
        self.committer = committer
        self.tasks = tasks
        self.after_commit = after_commit
        committer.on_committed = after_commit  # what an asynchronous commit committed
        #: tasks whose store write failed with corruption at a commit: the record loop resets them
        self.corrupted: list[tuple[Any, StoreCorruptedError]] = []
        # called once per batch: the committer's own methods, no call in between
        self.track_positions = committer.track_positions
        self.track = committer.track
        #: how long the commits on the interval took (the worker's /metrics)
        self.latency = CommitLatency()

    # -- the record loop's bookkeeping ---------------------------------------------------
    @property
    def pending(self) -> dict[Key, int]:
        """Input offsets processed and not committed yet (``(topic, partition)`` → next offset)."""
        return self.committer.pending

    @property
    def abandoned(self) -> bool:
        return self.committer.abandoned

    @property
    def failure(self) -> StreamletError | None:
        return self.committer.failure

    def on_delivery(self, err: Any, msg: Any) -> None:
        self.committer.on_delivery(err, msg)

    def fail(self, error: StreamletError) -> None:
        self.committer.fail(error)

    def forget(self, keys: Iterable[Key]) -> None:
        self.committer.forget(keys)

    def abandon(self) -> None:
        """The worker stops after a failure: commit nothing more, whoever asks (at-least-once: what
        was processed since the last commit is processed again after a restart)."""
        self.committer.abandon()

    def on_commit(self, err: Any, partitions: list[Any]) -> None:
        """The consumer's ``on_commit`` callback: the broker's answer to an asynchronous commit."""
        self.committer.on_commit(err, partitions)

    def maybe_commit(self) -> None:
        if time.monotonic() >= self.committer.next_commit:
            started = time.monotonic()
            self.commit_on_interval()
            self.latency.add(time.monotonic() - started)

    def commit_on_interval(self) -> None:
        """The commit on the commit interval (by default :meth:`commit`)."""
        self.commit()

    # -- the commit ----------------------------------------------------------------------
    @abstractmethod
    def commit(self, only: Iterable[Key] | None = None) -> bool:
        """Commit every store of the active tasks and the processed input offsets (all, or those of
        ``only``: a revocation). False when the offsets were not committed and stay pending."""

    def rollback(self) -> None:
        """Every store of the active tasks back to its last checkpoint: uncommitted changes dropped
        (after an aborted transaction). The tasks' input must be rewound to the committed offsets."""
        for _, _, store in self._stores():
            store.rollback()

    # -- steps shared by the implementations ---------------------------------------------
    def _stores(self) -> Stores:
        out = []
        for task in self.tasks():
            stores = task.ctx.stores
            for spec in task.store_specs:
                store = stores.get(spec.name)
                if store is not None:
                    out.append((task, spec, store))
        return out

    @staticmethod
    def _prepare_stores(stores: Stores) -> list[tuple[Any, Any, Any, int]]:
        """Step 1: each store stages its changes (the logging layer sends them); how many each."""
        return [(task, spec, store, store.prepare_commit()) for task, spec, store in stores]

    def _commit_stores(self, prepared: list[tuple[Any, Any, Any, int]], pending: dict[Key, int]) -> None:
        """Step 3: each store writes what it staged with its checkpoint, atomically."""
        for task, spec, store, count in prepared:
            offsets = None
            if spec.source_table:
                if not count:
                    continue  # nothing new: the checkpoint stays where it is
                offset = pending.get((spec.changelog, task.partition))
                offsets = {spec.changelog: offset} if offset is not None else None
            try:
                store.commit(offsets)
            except StoreCorruptedError as exc:
                if all(t is not task for t, _ in self.corrupted):
                    self.corrupted.append((task, exc))


class AtLeastOnceCheckpoint(Checkpoint):
    """Caches → changelog → producer flush → store checkpoint → input offsets (see the module)."""

    def commit(self, only: Iterable[Key] | None = None) -> bool:
        if not self._commit_stores_first():
            return False
        committed = self.committer.commit_offsets(only)
        if committed is None:
            return False
        if committed and self.after_commit is not None:
            self.after_commit(committed)
        return True

    def commit_on_interval(self) -> None:
        """Steps 1-3 as in :meth:`commit`, then the input offsets are sent without waiting for the
        broker (:meth:`Committer.commit_offsets_async`): a commit that the group coordinator holds
        during a rebalance does not stop the record loop. Revocations and the final commit wait."""
        if self._commit_stores_first():
            self.committer.commit_offsets_async()

    def _commit_stores_first(self) -> bool:
        """Steps 1-3: caches flushed, outputs and changelog records acknowledged, stores checkpointed;
        False when this process commits nothing more."""
        committer = self.committer
        if not committer.begin():
            return False
        committer.flush_outputs()  # outputs before the changelog records that mark them done
        prepared = self._prepare_stores(self._stores())
        if any(count for _, _, _, count in prepared):
            committer.flush_outputs()
        self._commit_stores(prepared, dict(committer.pending))
        return True
