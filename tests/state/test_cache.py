"""StoreCache: the write cache that is also the read cache."""

from __future__ import annotations

from typing import Any, Mapping

import pytest

from streamlet.errors import SerializationError
from streamlet.serde import json
from streamlet.state import InMemoryStore, StoreCache


class CountingStore(InMemoryStore):
    """An in-memory store that counts reads and writes."""

    def __init__(self) -> None:
        super().__init__("s")
        self.gets: list[bytes] = []
        self.writes: list[tuple[dict, Any]] = []

    def get(self, key: bytes) -> bytes | None:
        self.gets.append(key)
        return super().get(key)

    def write(self, changes: Mapping[bytes, bytes | None], offsets: Mapping[str, int] | None = None) -> None:
        self.writes.append((dict(changes), dict(offsets) if offsets else None))
        super().write(changes, offsets)


def test_one_change_per_key_per_flush() -> None:
    store = CountingStore()
    cache = StoreCache(store, json())
    for i in range(100):
        cache.put(b"k", {"v": i})
    cache.put(b"j", 1)
    assert store.writes == [] and InMemoryStore.get(store, b"k") is None  # nothing written before the flush
    changes = cache.flush({"cl": 3})
    assert changes == [(b"k", b'{"v":99}'), (b"j", b"1")]  # first-change order, serialized once
    # one atomic write, with the checkpoint
    assert store.writes == [({b"k": b'{"v":99}', b"j": b"1"}, {"cl": 3})]
    assert store.offsets() == {"cl": 3}
    assert cache.get(b"k") == {"v": 99} and store.gets == []  # still cached: no read
    assert cache.flush() == [] and len(store.writes) == 1  # nothing changed, nothing written
    assert cache.flush({"cl": 4}) == [] and store.writes[-1] == ({}, {"cl": 4})  # a checkpoint alone


def test_reads_through_once_and_caches_decoded_values_and_misses() -> None:
    store = CountingStore()
    store.write({b"old": b'{"v":0}'})
    cache = StoreCache(store, json())
    first = cache.get(b"old")
    assert first == {"v": 0} and cache.get(b"old") is first
    assert cache.get(b"missing") is None and cache.get(b"missing") is None
    assert store.gets == [b"old", b"missing"]
    assert cache.flush() == []  # reads dirty nothing


def test_delete() -> None:
    store = CountingStore()
    store.write({b"old": b"1"})
    cache = StoreCache(store, json())
    assert cache.get(b"old") == 1
    cache.put(b"old", None)
    assert cache.get(b"old") is None
    cache.put(b"new", 2)
    cache.put(b"new", None)  # created and deleted within one flush: still one change
    assert cache.flush() == [(b"old", None), (b"new", None)]
    assert store.get(b"old") is None and list(store.items()) == []


def test_take_changes_then_write_is_a_flush_in_two_halves() -> None:
    store = CountingStore()
    cache = StoreCache(store, json())
    cache.put(b"k", 1)
    changes = cache.take_changes()
    assert changes == [(b"k", b"1")] and cache.take_changes() == [] and store.writes == []
    assert cache.get(b"k") == 1  # readable before the write
    cache.write(changes, {"cl": 1})
    assert store.writes == [({b"k": b"1"}, {"cl": 1})]


def test_eviction_keeps_the_cache_bounded_and_never_drops_unwritten_values() -> None:
    store = CountingStore()
    cache = StoreCache(store, json(), max_entries=10)
    for i in range(50):
        cache.put(b"k%02d" % i, i)
    assert len(cache._values) == 50  # over the bound until the flush: dirty values are never dropped
    cache.flush()
    assert len(cache._values) <= 10
    assert cache.get(b"k07") == 7  # evicted, read back from the store
    for i in range(50):
        assert cache.get(b"k%02d" % i) == i
    cache.put(b"hot", "h")
    cache.flush()
    assert b"hot" in cache._values  # just written: kept, the oldest clean entries go first
    assert len(cache._values) <= 10


def test_reads_alone_cannot_grow_the_cache_without_bound() -> None:
    store = CountingStore()
    cache = StoreCache(store, json(), max_entries=100)
    cache.put(b"changed", 1)  # dirty: never evicted
    for i in range(1000):
        assert cache.get(b"absent-%d" % i) is None
        assert len(cache._values) <= 110
    assert b"changed" in cache._values
    taken = cache.take_changes()
    for i in range(1000):  # taken, not written yet: kept as well
        cache.get(b"absent-again-%d" % i)
    assert cache.get(b"changed") == 1 and store.gets.count(b"changed") == 0
    cache.write(taken)
    assert store.get(b"changed") == b"1"


def test_items_overlay_the_store_with_cached_changes() -> None:
    store = CountingStore()
    store.write({b"a": b"1", b"b": b"2", b"c": b"3", b"e": b"5"})
    cache = StoreCache(store, json())
    cache.put(b"b", None)  # deleted, not flushed
    cache.put(b"d", 4)  # new, not flushed
    cache.put(b"e", 50)  # changed, not flushed
    cache.put(b"f", 6)
    assert list(cache.items()) == [(b"a", 1), (b"c", 3), (b"d", 4), (b"e", 50), (b"f", 6)]
    assert list(cache.items(b"b", b"e")) == [(b"c", 3), (b"d", 4)]
    assert len(cache) == 5
    store.gets.clear()
    assert cache.peek(b"a") == 1 and cache.peek(b"b") is None and cache.peek(b"zz") is None
    assert b"a" not in cache._values and b"zz" not in cache._values  # peek and items never fill the cache


def test_an_unserializable_value_names_the_store_and_key_and_loses_nothing() -> None:
    store = CountingStore()
    cache = StoreCache(store, json())
    cache.put(b"good", 1)
    cache.put(b"bad", {1, 2})  # a set: not JSON
    with pytest.raises(SerializationError, match=r"store 's'.*key b'bad'"):
        cache.flush()
    assert store.writes == []
    cache.put(b"bad", [1, 2])  # fixed: both changes are still pending
    assert cache.flush() == [(b"good", b"1"), (b"bad", b"[1,2]")]


def test_clear_forgets_cached_values() -> None:
    store = CountingStore()
    cache = StoreCache(store, json())
    assert cache.get(b"k") is None
    store.write({b"k": b"7"})  # e.g. a restore wrote underneath
    cache.clear()
    assert cache.get(b"k") == 7


def test_scan_overlays_unwritten_changes_on_the_store_range() -> None:
    """``scan(start, end)``: the live entries of a key range, changes not yet written included (a
    foreign-key join's prefix scan on the record path)."""
    store = CountingStore()
    store.write({b"a1": b"1", b"a2": b"2", b"a3": b"3", b"b1": b"9"})
    cache = StoreCache(store, json())
    cache.put(b"a2", None)  # deleted, not written yet
    cache.put(b"a0", 0)  # new, not written yet
    cache.put(b"c", 5)  # outside the range
    assert cache.scan(b"a", b"b") == [(b"a0", 0), (b"a1", 1), (b"a3", 3)]
    changes = cache.take_changes()  # taken, not yet written: still overlaid
    assert cache.scan(b"a", b"b") == [(b"a0", 0), (b"a1", 1), (b"a3", 3)]
    cache.write(changes)
    assert InMemoryStore.get(store, b"a2") is None and InMemoryStore.get(store, b"a0") == b"0"
    assert cache.scan(b"a", b"b") == [(b"a0", 0), (b"a1", 1), (b"a3", 3)]
    assert cache.scan(b"b", None) == [(b"b1", 9), (b"c", 5)]
