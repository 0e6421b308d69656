"""Where stores live: ``<state_dir>/<application id>/<partition>/<store>``."""

from __future__ import annotations

import shutil
from pathlib import Path

from streamlet.state.memory import InMemoryStore
from streamlet.state.rocksdb import RocksDBStore
from streamlet.state.store import KeyValueStore


class StateDirectory:
    """The state directory of one application."""

    def __init__(self, root: str | Path, application_id: str) -> None:
        self.root = Path(root)
        self.application_id = application_id

    def store_path(self, partition: int, store: str) -> Path:
        return self.root / self.application_id / str(partition) / store

    def open_store(self, partition: int, store: str, in_memory: bool = False) -> KeyValueStore:
        if in_memory:
            return InMemoryStore(store)
        return RocksDBStore(str(self.store_path(partition, store)), store, f"{self.application_id}/{store}")

    def wipe(self, partition: int, store: str) -> None:
        shutil.rmtree(self.store_path(partition, store), ignore_errors=True)
