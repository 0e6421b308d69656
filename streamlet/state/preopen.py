"""Stores of a restarted worker opened while it joins the group.

A worker that restarts with its disk kept usually gets its partitions back,
and the group join takes seconds on Kafka (``group.initial.rebalance.delay.ms``,
the session timeout of the member it replaces). Each RocksDB open holds the
interpreter ~7-10 ms (see :mod:`streamlet.state.spares`), so a worker's
existing stores are opened during that wait. At the assignment those of its
partitions are kept for their tasks and the rest closed at once, so another
worker sharing the state directory is not kept waiting on their locks.
A store that is locked, foreign or broken is not touched here: the usual
open handles it.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Iterable

from streamlet.state.rocksdb import RocksDBStore

log = logging.getLogger("streamlet.state")

Key = tuple[int, str]  # (partition, store name)


class PreOpened:
    """Existing stores opened ahead on a background thread; :meth:`take` one, :meth:`settle` the rest."""

    def __init__(self, open_existing: Callable[[int, str], RocksDBStore | None]) -> None:
        self._open_existing = open_existing
        self._stores: dict[Key, RocksDBStore] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, stores: list[Key]) -> None:
        """Open these stores (those that exist) in the background; returns at once."""
        if stores and self._thread is None:
            self._thread = threading.Thread(target=self._run, args=(stores,), name="streamlet-store-preopen",
                                            daemon=True)
            self._thread.start()

    def _run(self, stores: list[Key]) -> None:
        for key in stores:
            if self._stop.is_set():
                return
            try:
                store = self._open_existing(*key)
            except Exception as exc:  # only saves time: the usual open reports problems
                log.debug("store %s of partition %d not opened ahead: %s", key[1], key[0], exc)
                continue
            if store is not None:
                with self._lock:
                    self._stores[key] = store

    def take(self, partition: int, name: str) -> RocksDBStore | None:
        with self._lock:
            return self._stores.pop((partition, name), None)

    def settle(self, keep: Iterable[Key]) -> None:
        """Stop opening; close the stores opened ahead that are not in ``keep``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        wanted = set(keep)
        with self._lock:
            drop = [k for k in self._stores if k not in wanted]
            closing = [self._stores.pop(k) for k in drop]
        for store in closing:
            store.close()
        if closing or self._stores:
            log.info("%d stores opened while joining the group, %d of them closed (not assigned here)",
                     len(self._stores) + len(closing), len(closing))

    def close(self) -> None:
        self.settle(())
