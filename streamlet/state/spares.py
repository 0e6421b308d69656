"""Spare stores: empty RocksDB databases opened ahead, for stores that do not exist yet.

rocksdict holds the GIL for the whole of a RocksDB open (~7-10 ms here, a
dozen fsyncs), so opening a task's stores on any thread stalls the record
loop. A worker that starts without local state opens spares while it waits
for the broker, the group and the first fetch; a store created after that
adopts one (:meth:`RocksDBStore.adopt`) instead of opening a database.

A spare lives at ``<state_dir>/<application id>/.spare/<pid>-<k>-<n>``. Adopting
moves its directory to the store's path and leaves a symlink behind, because
RocksDB keeps naming its files by the path it was opened with; the link is
removed when the store closes, so the next open finds a plain directory.
Spares left by a process that is gone are removed at the next start.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from pathlib import Path
from typing import Any

from streamlet.state.rocksdb import _lock_held, _remove, open_database

log = logging.getLogger("streamlet.state")

#: the directory of spares, under the application's state directory (not a partition's)
SPARES = ".spare"
_instances = itertools.count()
#: spares opened at most (a worker of a group gets only a share of the partitions)
MAX_SPARES = 64


class SpareStores:
    """Up to ``count`` empty databases opened on a background thread; :meth:`take` one."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._ready: list[tuple[Any, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._prefix = f"{os.getpid()}-{next(_instances)}"  # two apps of one process share no name
        self._next = 0  # spares opened (or being opened) so far
        self._target = 0
        sweep(self.root)

    def fill(self, count: int) -> None:
        """Have ``count`` spares opened in all (fewer if called again with less); returns at once."""
        with self._lock:
            self._target = count
            start = self._thread is None and count > self._next
            if start:
                self._thread = threading.Thread(target=self._fill, name="streamlet-spare-stores", daemon=True)
        if start:
            self._thread.start()  # type: ignore[union-attr]

    def _fill(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            while True:
                with self._lock:
                    if self._stop.is_set() or self._next >= self._target:
                        self._thread = None
                        return
                    path = str(self.root / f"{self._prefix}-{self._next}")
                    self._next += 1
                _remove(path)
                db = open_database(path)
                with self._lock:
                    if self._stop.is_set():
                        _discard(db, path)
                        return
                    self._ready.append((db, path))
        except Exception as exc:  # spares only save time: the stores open as usual
            log.warning("could not open spare state stores in %s (%s); stores open on demand", self.root, exc)

    def take(self) -> tuple[Any, str] | None:
        """An open empty database and its path, or None if none is ready (never waits)."""
        with self._lock:
            return self._ready.pop() if self._ready else None

    @property
    def ready(self) -> int:
        with self._lock:
            return len(self._ready)

    def close(self) -> None:
        """Stop filling; close and delete the spares nobody adopted."""
        self._stop.set()
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(30)
        with self._lock:
            spares, self._ready = self._ready, []
        for db, path in spares:
            _discard(db, path)
        _remove_if_empty(self.root)


def _discard(db: Any, path: str) -> None:
    db.close()
    _remove(path)


def sweep(root: Path) -> None:
    """Remove spares, and adopted spares' links, that no process holds open: left by a process
    that is gone. A link's ``LOCK`` is its store's: held while that store is open."""
    try:
        entries = list(root.iterdir())
    except OSError:
        return
    for entry in entries:
        if not _lock_held(entry / "LOCK"):
            _remove(str(entry))
    _remove_if_empty(root)


def _remove_if_empty(root: Path) -> None:
    try:
        root.rmdir()
    except OSError:
        pass  # another process's spares, or an adopted store's link, are left
