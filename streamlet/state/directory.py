"""Where stores live: ``<state_dir>/<application id>/<partition>/<store>``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from streamlet.errors import StateError
from streamlet.state.memory import InMemoryStore
from streamlet.state.rocksdb import RocksDBStore
from streamlet.state.store import KeyValueStore


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

    def store_path(self, partition: int, store: str) -> Path:
        _check_name("store name", store)
        return self.root / self.application_id / str(int(partition)) / store

    def owner(self, partition: int, store: str) -> str:
        """The owner marker of a store: a directory copied or moved from elsewhere is foreign."""
        return f"{self.application_id}/{int(partition)}/{store}"

    def open_store(self, partition: int, store: str, in_memory: bool = False) -> KeyValueStore:
        """Open (creating, or repairing as :class:`RocksDBStore` describes) one store of one partition."""
        if in_memory:
            return InMemoryStore(store)
        return RocksDBStore(self.store_path(partition, store), store, self.owner(partition, store),
                            lock_timeout_s=self.lock_timeout_s)

    def wipe(self, partition: int, store: str) -> None:
        """Delete a (closed) store's directory, and any copy of it moved aside while locked."""
        path = self.store_path(partition, store)
        for victim in [path, *path.parent.glob(store + ".locked-*")]:
            if victim.is_dir() and not victim.is_symlink():
                shutil.rmtree(victim, ignore_errors=True)
            elif victim.exists() or victim.is_symlink():
                victim.unlink()
