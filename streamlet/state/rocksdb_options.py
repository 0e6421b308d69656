"""RocksDB options of streamlet's stores: memory capped per process, tuned for write-heavy use.

The workload is write-heavy (one WriteBatch per commit or per restore batch,
reads mostly served by the StoreCache above), with many small stores in one
process (stores × partitions). Memory is therefore capped per process, not
per store: one block cache and one memtable budget shared by every store.
"""

from __future__ import annotations

import os

from rocksdict import BlockBasedOptions, Cache, DBCompressionType, Options, Rdict, WriteBufferManager

#: the column family of the checkpoint and the owner marker
_META = "streamlet"

BLOCK_CACHE_BYTES = 64 << 20
MEMTABLE_BUDGET_BYTES = 256 << 20
WRITE_BUFFER_BYTES = 16 << 20

_shared: tuple[Cache, WriteBufferManager] | None = None


def configure_memory(block_cache_bytes: int = BLOCK_CACHE_BYTES,
                     memtable_budget_bytes: int = MEMTABLE_BUDGET_BYTES) -> None:
    """Size the process-wide block cache and memtable budget; call before opening stores."""
    global _shared
    _shared = (Cache(block_cache_bytes), WriteBufferManager(memtable_budget_bytes, False))


def _options() -> Options:
    if _shared is None:
        configure_memory()
    assert _shared is not None
    cache, memtables = _shared
    opts = Options(raw_mode=True)
    opts.create_if_missing(True)
    opts.create_missing_column_families(True)
    # Background flush + compaction threads (a process-wide pool): writes stall
    # when flushes fall behind, so give them the cores.
    opts.increase_parallelism(max(2, min(os.cpu_count() or 2, 8)))
    # 16 MiB memtables, up to 3 (one filling while others flush): absorbs a
    # commit burst without write stalls; the shared manager flushes early when
    # all stores together exceed the budget.
    opts.set_write_buffer_size(WRITE_BUFFER_BYTES)
    opts.set_max_write_buffer_number(3)
    opts.set_write_buffer_manager(memtables)
    # LZ4: the cheapest compression; rewritten data is mostly small JSON rows.
    opts.set_compression_type(DBCompressionType.lz4())
    opts.set_level_compaction_dynamic_level_bytes(True)
    # Smooth background writeback instead of bursts at file close.
    opts.set_bytes_per_sync(1 << 20)
    # The checkpoint column family gets tiny writes: without a WAL cap its
    # memtable would pin every WAL file until it fills.
    opts.set_max_total_wal_size(64 << 20)
    # The WAL stays on (not synced): a killed process (SIGKILL, OOM) keeps
    # every acknowledged batch and its checkpoint, so a restart restores only
    # the tail. It costs ~10% of a write here. Recovery is point-in-time: a
    # torn tail after a machine crash is dropped whole, data and checkpoint
    # together.
    opts.set_keep_log_file_num(2)  # RocksDB's own info LOG files
    opts.set_max_log_file_size(1 << 20)
    opts.set_skip_stats_update_on_db_open(True)  # faster open of a kept store
    table = BlockBasedOptions()
    table.set_block_cache(cache)
    # Bloom filters: the first record of a new key reads a key that is not
    # there; the filter answers without touching SST blocks.
    table.set_bloom_filter(10, False)
    opts.set_block_based_table_factory(table)
    return opts


def _meta_options() -> Options:
    opts = Options(raw_mode=True)
    opts.set_write_buffer_size(256 << 10)  # a few keys: owner + one offset per changelog
    return opts


def open_database(path: str) -> Rdict:
    """Open (creating) the database of a store at ``path``: data and the meta column family."""
    return Rdict(path, _options(), column_families={_META: _meta_options()})
