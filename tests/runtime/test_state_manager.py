"""StateManager opens each store as the runtime's stack of layers, changelog produce and metrics wired."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streamlet.config import Config
from streamlet.metrics import Metrics
from streamlet.runtime.state_manager import StateManager
from streamlet.serde import json, string
from streamlet.state import CachingStore, ChangeLoggingStore, MeteredStore, RocksDBStore
from streamlet.state.builder import bottom_of, layers
from streamlet.topology.graph import StoreSpec


def test_stores_open_as_metered_caching_logging_rocksdb(tmp_path: Path) -> None:
    sent: list[tuple[Any, ...]] = []
    metrics = Metrics()
    config = Config(application_id="app", brokers="localhost:9092", state_dir=str(tmp_path))
    state = StateManager(config, "localhost:9092", lambda *a: sent.append(a), metrics=metrics)
    counts = StoreSpec("counts", "aggregate", string(), json(), "app-counts-changelog")
    users = StoreSpec("users", "table", string(), json(), "users", source_table=True)
    store, table = state.open(counts, 3), state.open(users, 3)
    try:
        assert [type(x) for x in layers(store)] == [MeteredStore, CachingStore, ChangeLoggingStore, RocksDBStore]
        assert [type(x) for x in layers(table)] == [MeteredStore, CachingStore, RocksDBStore]
        assert bottom_of(store).path == str(tmp_path / "app" / "3" / "counts")
        store.put(b"k", 1)
        store.prepare_commit()
        assert sent == [("app-counts-changelog", b"1", b"k", 3)]
        store.commit()
        assert bottom_of(store).get(b"k") == b"1" and bottom_of(store).offsets() == {"app-counts-changelog": 1}
        assert metrics.get("store_changes", store="counts", partition=3) == 1
    finally:
        store.close()
        table.close()
        state.close()
