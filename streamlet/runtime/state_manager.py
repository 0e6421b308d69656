"""State of the tasks of this process: open the stores (stacked by
:class:`~streamlet.state.builder.StoreBuilder`) and restore them from their changelogs.

Their commit is :mod:`streamlet.runtime.checkpoint`'s.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future
from typing import Any, Callable

from confluent_kafka import Consumer

from streamlet.config import Config
from streamlet.errors import StoreCorruptedError
from streamlet.state import StateDirectory, restore_store
from streamlet.state.builder import StoreBuilder, bottom_of
from streamlet.metrics import Metrics
from streamlet.runtime.restore_progress import RestoreProgress
from streamlet.state.restore import RestoreCancelled, list_offsets, restore_consumer_config
from streamlet.topology.graph import StoreSpec

log = logging.getLogger("streamlet.state")


class StateManager:
    """Opens and restores the stores of this process's tasks.

    Opening and restoring run on the :class:`~streamlet.runtime.state_updater.StateUpdater`'s
    thread (with the restore consumer, which only it uses). ``produce`` sends
    changelog records (the change-logging layer's).
    """

    def __init__(self, config: Config, bootstrap: str, produce: Callable[..., None],
                 directory: StateDirectory | None = None, metrics: Metrics | None = None) -> None:
        self.config = config
        self.metrics = metrics or Metrics()
        self.directory = directory or StateDirectory(config.state_dir, config.application_id)
        self.bootstrap = bootstrap
        self.produce = produce
        self._restore_consumer: Consumer | None = None
        self.restored_records = 0
        self.progress = RestoreProgress()

    # -- opening / restoring (on the state updater's thread) -----------------------------
    def open(self, spec: StoreSpec, partition: int) -> Any:
        store = self.directory.open_store(partition, spec.name,
                                          row_format="timestamped" if spec.timestamped else "")
        return StoreBuilder.for_spec(spec, partition, self.produce, self.metrics).build(store)

    def _consumer(self) -> Consumer:
        if self._restore_consumer is None:
            # the user's connection and security settings, restore tuning for the rest
            from streamlet.runtime.client_logs import with_client_logger

            settings = {k: v for k, v in self.config.client_config.items()
                        if k.startswith(("security.", "sasl.", "ssl.", "client.", "socket.", "isolation."))}
            self._restore_consumer = Consumer(with_client_logger(restore_consumer_config(
                self.bootstrap, **settings, **{"group.id": f"{self.config.application_id}-restore"})))
        return self._restore_consumer

    def open_ahead(self, spec: StoreSpec, partition: int) -> tuple[Any, tuple[int, int]]:
        """Open a store and ask for its changelog's watermarks, ahead of its restore (on any thread)."""
        cache = self.open(spec, partition)
        try:
            return cache, list_offsets(self._consumer(), spec.changelog, partition)
        except BaseException:
            cache.close()
            raise

    def open_and_restore(self, task: Any, cancel: Any = None,
                         opening: list[Future] | None = None) -> dict[str, Any]:
        """Open every store of ``task`` (or take them from ``opening``, futures of :meth:`open_ahead`
        in store order) and bring it up to its changelog's end (or, for a source table, to the
        committed offset); the caches by store name. On failure or ``cancel``
        (:class:`~streamlet.state.restore.RestoreCancelled`) the stores opened so far are closed."""
        caches: dict[str, Any] = {}
        try:
            for i, spec in enumerate(task.store_specs):
                if cancel is not None and cancel.is_set():
                    raise RestoreCancelled(f"task {task.task_id} revoked while its stores were opened")
                if opening:
                    cache, listed = opening[i].result()
                else:
                    cache, listed = self.open(spec, task.partition), None
                caches[spec.name] = cache
                try:
                    self._restore_one(task, spec, cache, cancel, listed)
                except StoreCorruptedError as exc:
                    # closing a corrupted store wipes it: open it empty and restore it whole, once
                    log.warning("%s; task %s: restoring it again from the start of %s", exc, task.task_id,
                                spec.changelog)
                    cache.close()
                    caches[spec.name] = cache = self.open(spec, task.partition)
                    self._restore_one(task, spec, cache, cancel)
        except BaseException:
            for cache in caches.values():
                cache.close()
            if opening:
                discard(opening[len(caches):])
            raise
        return caches

    def _restore_one(self, task: Any, spec: StoreSpec, cache: Any, cancel: Any,
                     listed: tuple[int, int] | None = None) -> None:
        """Restore one store; ``restore_store`` logs progress and the rate, this the summary."""
        started = time.monotonic()
        store = bottom_of(cache)  # written directly: a restore is not logged again
        before = store.offsets().get(spec.changelog)
        # a source table's changelog is its input: restore up to where processing resumes, so the
        # records after it are processed (and forwarded) as they were the first time
        stop_at = task.committed.get(spec.changelog) if spec.source_table else None
        if spec.source_table and stop_at is None and self.config.client_config.get(
                "auto.offset.reset", "earliest") in ("earliest", "smallest", "beginning"):
            stop_at = 0  # nothing committed: processing starts at the beginning
        # a source table's changelog is an input topic: its deleted records follow the input's setting
        policy = self.config.on_input_truncated if spec.source_table else self.config.on_changelog_truncated
        lost: list[int] = []
        count = restore_store(store, self._consumer(), spec.changelog, task.partition, stop_at=stop_at,
                              progress=self.progress.callback(spec.name, task.partition), cancel=cancel,
                              listed=listed, on_truncated=policy, lost=lost,
                              stamp_rows=spec.timestamped and spec.source_table)
        if lost:
            self.metrics.inc("changelog_truncated_records", sum(lost), store=spec.name, topic=spec.changelog,
                             partition=task.partition)
        cache.clear()
        end = store.offsets().get(spec.changelog, 0)
        self.restored_records += count
        log.info("store %s partition %d ready: %d changelog records restored (from offset %s to %d) in "
                 "%.2f s", spec.name, task.partition, count, before if before is not None else "start", end,
                 time.monotonic() - started)

    def prepare(self, stores: dict[str, StoreSpec], partitions: dict[str, int]) -> None:
        """Before the first assignment, while the group join is awaited: spare databases for
        the stores not on disk yet (:mod:`streamlet.state.spares`)."""
        wanted = [(p, spec.name) for spec in stores.values() for p in range(partitions.get(spec.changelog, 0))]
        self.directory.open_spares(self.directory.missing(wanted))

    def close(self) -> None:
        self.directory.close_spares()
        if self._restore_consumer is not None:
            self._restore_consumer.close()
            self._restore_consumer = None


def discard(futures: list[Future]) -> None:
    """Stores opened ahead for a task that will not use them: not opened, or closed once open."""
    for future in futures:
        if not future.cancel():
            future.add_done_callback(_close_opened)


def _close_opened(future: Future) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result()[0].close()
