"""State stores: RocksDB and in-memory key-value stores, the write cache, changelog restore.

A leaf package: bytes in, bytes out; the runtime decides what to store and
writes the changelog. Layers, each with one job:

* :class:`KeyValueStore` — the byte store protocol with its changelog
  checkpoint written atomically with the data (:class:`RocksDBStore`,
  :class:`InMemoryStore`);
* :class:`StoreCache` — decoded values, the per-partition write and read cache,
  one change per key per flush;
* :func:`restore_store` — a store brought up to the end of its changelog;
* :class:`StateDirectory` — ``<state_dir>/<application id>/<partition>/<store>``.
"""

from streamlet.state.cache import StoreCache
from streamlet.state.directory import StateDirectory
from streamlet.state.memory import InMemoryStore
from streamlet.state.restore import restore_consumer_config, restore_store
from streamlet.state.rocksdb import RocksDBStore, configure_memory
from streamlet.state.store import KeyValueStore

__all__ = [
    "KeyValueStore",
    "InMemoryStore",
    "RocksDBStore",
    "StateDirectory",
    "StoreCache",
    "configure_memory",
    "restore_consumer_config",
    "restore_store",
]
