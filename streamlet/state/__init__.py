"""State stores: layers over RocksDB and in-memory key-value stores, changelog restore.

A leaf package: bytes below the cache; the runtime decides what to store and
when to commit (:mod:`streamlet.runtime.checkpoint`). Layers, each with one
job, stacked by :class:`StoreBuilder` (see :mod:`streamlet.state.store`):

* :class:`KeyValueStore` — the byte store protocol with its changelog
  checkpoint written atomically with the data (bottoms: :class:`RocksDBStore`,
  :class:`InMemoryStore`);
* :class:`ChangeLoggingStore` — one changelog record per change, the changelog checkpoint;
* :class:`CachingStore` (also ``StoreCache``) — decoded values, the per-partition write and read
  cache, one change per key per commit, rolled back to the last commit on demand;
* :class:`MeteredStore` — counts per commit, none per record;
* :mod:`streamlet.state.row` — the stored row formats (timestamped, aggregation);
* :func:`restore_store` — a store brought up to the end of its changelog;
* :class:`StateDirectory` — ``<state_dir>/<application id>/<partition>/<store>``.
"""

from streamlet.state.builder import StoreBuilder
from streamlet.state.cache import StoreCache
from streamlet.state.caching import CachingStore
from streamlet.state.changelogging import ChangeLoggingStore
from streamlet.state.metered import MeteredStore
from streamlet.state.directory import StateDirectory
from streamlet.state.memory import InMemoryStore
from streamlet.state.restore import restore_consumer_config, restore_store
from streamlet.state.rocksdb import RocksDBStore, configure_memory
from streamlet.state.store import KeyValueStore

__all__ = [
    "CachingStore",
    "ChangeLoggingStore",
    "KeyValueStore",
    "MeteredStore",
    "StoreBuilder",
    "InMemoryStore",
    "RocksDBStore",
    "StateDirectory",
    "StoreCache",
    "configure_memory",
    "restore_consumer_config",
    "restore_store",
]
