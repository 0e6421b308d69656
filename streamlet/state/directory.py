"""Where stores live: ``<state_dir>/<application id>/<partition>/<store>`` (global tables:
``<state_dir>/<application id>/global/<store>``)."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from streamlet.errors import StateError
from streamlet.state.memory import InMemoryStore
from streamlet.state.rocksdb import RocksDBStore
from streamlet.state.spares import MAX_SPARES, SPARES, SpareStores, sweep
from streamlet.state.store import KeyValueStore

log = logging.getLogger("streamlet.state")

#: the directory of global tables' stores, beside the partitions' (Kafka Streams' ``global``)
GLOBAL = "global"


def _check_name(kind: str, name: str) -> None:
    if not name or name in (".", "..") or "/" in name or os.sep in name or "\0" in name:
        raise StateError(f"{kind} {name!r} cannot name a state directory: use a name without "
                         "path separators")


class StateDirectory:
    """The state directory of one application."""

    def __init__(self, root: str | os.PathLike[str], application_id: str, *,
                 lock_timeout_s: float = 10.0) -> None:
        _check_name("application id", application_id)
        self.root = Path(root)
        self.application_id = application_id
        self.lock_timeout_s = lock_timeout_s
        self.spares: SpareStores | None = None

    def missing(self, stores: list[tuple[int, str]]) -> int:
        """How many of these ``(partition, store)`` are not on disk yet."""
        return sum(1 for p, name in stores if not os.path.lexists(self.store_path(p, name)))

    def open_spares(self, count: int) -> None:
        """Have ``count`` spare databases opened in the background, at most :data:`MAX_SPARES`
        (:mod:`streamlet.state.spares`); none sweeps what a killed process left."""
        if not os.path.exists("/proc/locks"):
            return  # spares left by a crash are told from live ones by their locks, known on Linux only
        count = min(MAX_SPARES, count)
        if self.spares is None:
            root = self.root / self.application_id / SPARES
            if not count:
                sweep(root)
                return
            self.spares = SpareStores(root)
        self.spares.fill(count)

    def is_new(self) -> bool:
        """No store of this application on disk yet (a first start, or a new pod)."""
        try:
            return not any(e.name != SPARES for e in (self.root / self.application_id).iterdir())
        except OSError:
            return True

    def close_spares(self) -> None:
        """Close and delete the spares no store adopted."""
        if self.spares is not None:
            self.spares.close()
            self.spares = None

    def store_path(self, partition: int, store: str) -> Path:
        _check_name("store name", store)
        return self.root / self.application_id / str(int(partition)) / store

    def owner(self, partition: int, store: str, row_format: str = "") -> str:
        """The owner marker of a store: a directory copied or moved from elsewhere is foreign, and so
        is one whose rows have another format (``row_format``, e.g. ``"timestamped"``): both are
        wiped and restored from the changelog rather than misread."""
        owner = f"{self.application_id}/{int(partition)}/{store}"
        return f"{owner}@{row_format}" if row_format else owner

    def open_store(self, partition: int, store: str, in_memory: bool = False,
                   row_format: str = "") -> KeyValueStore:
        """Open (creating, or repairing as :class:`RocksDBStore` describes) one store of one partition;
        ``row_format`` names the format of its rows when not the plain one (see :meth:`owner`)."""
        if in_memory:
            return InMemoryStore(store)
        path = self.store_path(partition, store)
        spare = None
        if self.spares is not None and not os.path.lexists(path):
            spare = self.spares.take()
        if spare is not None:
            try:
                return RocksDBStore.adopt(spare, path, store, self.owner(partition, store, row_format),
                                          lock_timeout_s=self.lock_timeout_s)
            except OSError as exc:
                log.debug("state store %s at %s: spare not adopted (%s), opening it", store, path, exc)
        return RocksDBStore(path, store, self.owner(partition, store, row_format), lock_timeout_s=self.lock_timeout_s)

    def global_store_path(self, store: str) -> Path:
        """Where a global table's store lives: ``<state_dir>/<application id>/global/<store>``."""
        _check_name("store name", store)
        return self.root / self.application_id / GLOBAL / store

    def open_global_store(self, store: str) -> KeyValueStore:
        """Open (creating, or repairing) the store of a global table: one for every partition of its topic."""
        return RocksDBStore(self.global_store_path(store), store, f"{self.application_id}/{GLOBAL}/{store}",
                            lock_timeout_s=self.lock_timeout_s)

    def wipe(self, partition: int, store: str) -> None:
        """Delete a (closed) store's directory, and any copy of it moved aside while locked."""
        path = self.store_path(partition, store)
        for victim in [path, *path.parent.glob(store + ".locked-*")]:
            if victim.is_dir() and not victim.is_symlink():
                shutil.rmtree(victim, ignore_errors=True)
            elif victim.exists() or victim.is_symlink():
                victim.unlink()
