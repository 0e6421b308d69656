"""State stores: RocksDB and in-memory key-value stores, the write cache, changelog restore.

A leaf package: bytes in, bytes out; the runtime decides what to store and
writes the changelog.
"""

from streamlet.state.cache import StoreCache
from streamlet.state.directory import StateDirectory
from streamlet.state.memory import InMemoryStore
from streamlet.state.restore import restore_store
from streamlet.state.rocksdb import RocksDBStore
from streamlet.state.store import KeyValueStore

__all__ = ["KeyValueStore", "InMemoryStore", "RocksDBStore", "StateDirectory", "StoreCache", "restore_store"]
