"""The store layers one by one and stacked: staging bottoms, change-logging, the cache's rollback,
metrics counted per commit, the builder."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, Mapping

import pytest

from streamlet.metrics import Metrics
from streamlet.serde import json, string
from streamlet.state import (
    CachingStore,
    ChangeLoggingStore,
    InMemoryStore,
    MeteredStore,
    RocksDBStore,
    StoreBuilder,
    StoreCache,
)
from streamlet.state.builder import bottom_of, layer_of, layers
from streamlet.state.caching import MISSING
from streamlet.state.row import ValueAndTimestamp


class RecordingStore(InMemoryStore):
    def __init__(self) -> None:
        super().__init__("s")
        self.writes: list[tuple[dict, Any]] = []

    def write(self, changes: Mapping[bytes, bytes | None], offsets: Mapping[str, int] | None = None,
              ranges: Any = ()) -> None:
        self.writes.append((dict(changes), dict(offsets) if offsets else None))
        super().write(changes, offsets, ranges)


class Sent(list):
    def __call__(self, topic: str, value: bytes | None, key: bytes, partition: int) -> None:
        self.append((topic, key, value, partition))


@pytest.fixture(params=["memory", "rocksdb"])
def bottom(request: Any, tmp_path: Path) -> Any:
    store = InMemoryStore("s") if request.param == "memory" else RocksDBStore(tmp_path / "s", "s", "app/0/s")
    yield store
    store.close()


def test_a_bottom_stages_changes_until_commit_then_writes_them_with_the_checkpoint(bottom: Any) -> None:
    bottom.write({b"a": b"1", b"b": b"2"}, {"cl": 2})
    bottom.put_all({b"a": b"10", b"b": None})
    bottom.put_all({b"c": b"3"})
    assert bottom.staged == 3
    assert bottom.get(b"a") == b"1" and bottom.get(b"c") is None and bottom.offsets() == {"cl": 2}
    bottom.commit({"cl": 5})
    assert dict(bottom.items()) == {b"a": b"10", b"c": b"3"} and bottom.offsets() == {"cl": 5}
    bottom.put_all({b"a": b"99"})
    bottom.rollback()
    bottom.commit()  # nothing staged, no checkpoint: nothing written
    assert bottom.get(b"a") == b"10" and bottom.staged == 0 and bottom.offsets() == {"cl": 5}


def test_change_logging_sends_each_staged_change_and_checkpoints_what_was_sent() -> None:
    bottom, sent = RecordingStore(), Sent()
    bottom.write({}, {"app-s-changelog": 40})  # as a restore leaves it
    logged = ChangeLoggingStore(bottom, "app-s-changelog", 3, sent)
    logged.put_all({b"k": b"1", b"gone": None})
    assert sent == [("app-s-changelog", b"k", b"1", 3), ("app-s-changelog", b"gone", None, 3)]
    assert len(bottom.writes) == 1 and logged.get(b"k") is None  # sent, not written
    logged.commit()
    assert bottom.writes[-1] == ({b"k": b"1", b"gone": None}, {"app-s-changelog": 42})
    logged.commit()  # no change: the checkpoint is written again, unchanged
    assert bottom.writes[-1] == ({}, {"app-s-changelog": 42})
    logged.put_all({b"k": b"2"})
    logged.rollback()  # an aborted transaction: its records do not count
    logged.put_all({b"j": b"3"})
    logged.commit({"input": 7})
    assert bottom.writes[-1] == ({b"j": b"3"}, {"input": 7, "app-s-changelog": 43})
    assert logged.get(b"k") == b"1" and logged.end() == 43


def test_the_cache_rolls_back_to_the_last_commit() -> None:
    bottom = RecordingStore()
    cache = CachingStore(ChangeLoggingStore(bottom, "cl", 0, Sent()), json())
    values, dirty = cache.hot_path()
    cache.put(b"a", 1)
    cache.put(b"b", 2)
    assert cache.prepare_commit() == 2
    cache.commit()
    cache.put(b"a", 10)  # dirty
    cache.put(b"c", 3)
    cache.prepare_commit()  # staged, sent, not acknowledged
    cache.put(b"b", 20)  # dirty after the prepare
    cache.rollback()
    assert cache.hot_path() == (values, dirty) and values is cache.hot_path()[0]  # same dicts
    assert dirty == {} and b"a" not in values and b"b" not in values and b"c" not in values
    assert cache.get(b"a") == 1 and cache.get(b"b") == 2 and cache.get(b"c") is None  # read from the store
    cache.prepare_commit()
    cache.commit()
    assert bottom.writes[-1] == ({}, {"cl": 2})  # only the first commit's records count
    assert bottom.offsets() == {"cl": 2}


def test_a_committed_cache_keeps_its_values_and_evicts_only_after_the_write() -> None:
    bottom = RecordingStore()
    cache = CachingStore(bottom, json(), max_entries=10)
    for i in range(30):
        cache.put(b"k%02d" % i, i)
    cache.prepare_commit()
    assert len(cache._values) == 30 and bottom.writes == []  # staged: never evicted before the write
    cache.commit({"cl": 30})
    assert len(cache._values) <= 10 and bottom.writes == [({b"k%02d" % i: b"%d" % i for i in range(30)},
                                                           {"cl": 30})]
    assert cache.get(b"k00") == 0


def test_metrics_are_counted_per_commit_and_the_record_path_calls_the_cache_itself() -> None:
    metrics = Metrics()
    store = (StoreBuilder("counts", json()).with_logging("cl", 2, Sent()).with_caching()
             .with_metrics(metrics, 2).build(InMemoryStore("counts")))
    cache = layer_of(store, CachingStore)
    assert store.get == cache.get and store.get.__self__ is cache  # bound methods, no wrapper call
    assert store.put.__self__ is cache and store.hot_path() == cache.hot_path()
    store.get(b"x")
    store.get(b"y")
    store.get(b"x")  # cached
    values, dirty = store.hot_path()  # as generated code writes
    values[b"x"] = 1
    dirty[b"x"] = None
    store.put(b"y", 2)
    assert store.prepare_commit() == 2
    store.commit()
    assert store.prepare_commit() == 0
    store.rollback()
    assert metrics.get("store_changes", store="counts", partition=2) == 2
    assert metrics.get("store_flushes", store="counts") == 1
    assert metrics.get("store_cache_misses", store="counts") == 2
    assert metrics.get("store_rollbacks", store="counts") == 1
    assert store.name == "counts" and store.store is cache.store and store.peek(b"x") == 1
    assert len(store) == 2 and dict(store.items()) == {b"x": 1, b"y": 2}


def test_the_builder_stacks_the_runtime_layers_from_a_spec() -> None:
    spec = SimpleNamespace(name="counts", value_serde=json(), changelog="app-counts-changelog",
                           source_table=False, timestamped=False)
    table = SimpleNamespace(name="users", value_serde=json(), changelog="users", source_table=True,
                            timestamped=False)
    sent = Sent()
    store = StoreBuilder.for_spec(spec, 1, sent, Metrics()).build(InMemoryStore("counts"))
    kinds = [type(layer) for layer in layers(store)]
    assert kinds == [MeteredStore, CachingStore, ChangeLoggingStore, InMemoryStore]
    assert layer_of(store, ChangeLoggingStore).topic == "app-counts-changelog"
    store.put(b"k", {"n": 1})
    store.prepare_commit()
    assert sent == [("app-counts-changelog", b"k", b'{"n":1}', 1)]
    # a source table's changelog is its input: nothing is sent; the driver's stores log nothing either
    for built in (StoreBuilder.for_spec(table, 1, sent).build(InMemoryStore("users")),
                  StoreBuilder.for_spec(spec, 1).build(InMemoryStore("counts"))):
        assert [type(layer) for layer in layers(built)] == [CachingStore, InMemoryStore]
        assert isinstance(built, StoreCache)
    assert isinstance(bottom_of(store), InMemoryStore) and bottom_of(store) is layers(store)[-1]
    with pytest.raises(NotImplementedError, match="with_caching"):
        StoreBuilder("s", json()).with_metrics(Metrics(), 0).build(InMemoryStore("s"))


def test_a_timestamped_store_keeps_values_with_their_timestamps() -> None:
    bottom = InMemoryStore("t")
    store = StoreBuilder("t", string(), timestamped=True).with_caching().build(bottom)
    store.put(b"k", ValueAndTimestamp("v", 1234))
    store.flush()
    assert bottom.get(b"k") == (1234).to_bytes(8, "big") + b"v"
    fresh = StoreBuilder("t", string(), timestamped=True).with_caching().build(bottom)
    assert fresh.get(b"k") == ("v", 1234) and fresh.hot_path()[0].get(b"zz", MISSING) is MISSING


def test_a_bottom_deletes_a_range_at_commit_before_the_changes_staged_after_it(bottom: Any) -> None:
    bottom.write({b"a1": b"1", b"a2": b"2", b"b1": b"3", b"c1": b"4"}, {"cl": 1})
    bottom.put_all({b"a3": b"new"})      # staged before the deletion: deleted with its range
    bottom.delete_range(b"a", b"b2")
    bottom.put_all({b"a9": b"after"})    # staged after it: kept
    assert bottom.get(b"a1") == b"1"     # nothing is written before the commit
    bottom.commit({"cl": 2})
    assert dict(bottom.items()) == {b"a9": b"after", b"c1": b"4"} and bottom.offsets() == {"cl": 2}
    bottom.delete_range(b"c", b"d")
    bottom.rollback()                    # a rolled-back deletion deletes nothing
    bottom.commit()
    assert dict(bottom.items()) == {b"a9": b"after", b"c1": b"4"}


def test_a_range_deleted_through_the_layers_reads_as_absent_at_once_and_is_not_logged(bottom: Any) -> None:
    sent = Sent()
    store = StoreBuilder("s", json()).with_logging("cl", 0, sent).with_caching().build(bottom)
    for key, value in [(b"w1-a", 1), (b"w1-b", 2), (b"w2-a", 3)]:
        store.put(key, value)
    store.prepare_commit()
    store.commit({})
    store.get(b"w1-a")                     # cached
    store.put(b"w1-c", 9)                  # dirty, never written
    store.delete_range(b"w1", b"w2")
    assert store.get(b"w1-a") is None and store.get(b"w1-b") is None and store.get(b"w1-c") is None
    assert dict(store.items()) == {b"w2-a": 3}
    sent.clear()
    store.prepare_commit()
    store.commit({})
    assert sent == []                      # expiry sends nothing to the changelog
    assert dict(bottom.items()) == {b"w2-a": b"3"}
    store.put(b"w1-a", 5)                  # a key of the range may come back afterwards
    store.prepare_commit()
    store.commit({})
    assert bottom.get(b"w1-a") == b"5"
