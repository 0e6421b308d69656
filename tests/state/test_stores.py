"""Key-value stores: the protocol on both implementations, RocksDB durability and bad directories."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from streamlet.state import InMemoryStore, RocksDBStore, StateDirectory, StoreCache
from streamlet.serde import json


@pytest.fixture(params=["memory", "rocksdb"])
def store(request, tmp_path: Path):
    s = InMemoryStore("s") if request.param == "memory" else RocksDBStore(str(tmp_path / "db"), "s", "app/s")
    yield s
    s.close()


def test_write_get_delete_and_ordered_ranges(store) -> None:
    store.write({b"b": b"2", b"a": b"1", b"c": b"3"})
    assert store.get(b"a") == b"1" and store.get(b"zz") is None
    store.write({b"b": None})
    assert store.get(b"b") is None
    assert list(store.items()) == [(b"a", b"1"), (b"c", b"3")]
    store.write({b"d": b"4", b"e": b"5"})
    assert [k for k, _ in store.items(b"c", b"e")] == [b"c", b"d"]
    assert store.approximate_count() >= 1


def test_checkpoint_is_written_with_the_data(store) -> None:
    assert store.offsets() == {}
    store.write({b"k": b"v"}, {"app-s-changelog": 42})
    assert store.offsets() == {"app-s-changelog": 42}
    store.write({}, {"app-s-changelog": 43, "other": 7})
    assert store.offsets() == {"app-s-changelog": 43, "other": 7}


def test_rocksdb_keeps_data_and_checkpoint_across_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "db")
    s = RocksDBStore(path, "s", "app/s")
    s.write({b"k": b"v"}, {"cl": 10})
    s.close()
    s = RocksDBStore(path, "s", "app/s")
    assert s.get(b"k") == b"v" and s.offsets() == {"cl": 10}
    s.close()


def test_state_directory_layout(tmp_path: Path) -> None:
    d = StateDirectory(tmp_path, "my-app")
    assert d.store_path(3, "counts") == tmp_path / "my-app" / "3" / "counts"
    s = d.open_store(3, "counts")
    s.write({b"a": b"1"})
    s.close()
    assert (tmp_path / "my-app" / "3" / "counts").is_dir()
    d.wipe(3, "counts")
    assert not (tmp_path / "my-app" / "3" / "counts").exists()


def test_corrupt_directory_is_wiped_with_a_warning(tmp_path: Path, caplog) -> None:
    path = tmp_path / "db"
    s = RocksDBStore(str(path), "s", "app/s")
    s.write({b"k": b"v"}, {"cl": 5})
    s.close()
    for f in path.iterdir():
        if f.name.startswith(("MANIFEST", "CURRENT")):
            f.write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING, logger="streamlet.state"):
        s = RocksDBStore(str(path), "s", "app/s")
    assert "wiping" in caplog.text
    assert s.get(b"k") is None and s.offsets() == {}  # empty: restored from the changelog
    s.close()


def test_foreign_directory_is_wiped_with_a_warning(tmp_path: Path, caplog) -> None:
    path = str(tmp_path / "db")
    s = RocksDBStore(path, "s", "other-app/s")
    s.write({b"k": b"v"}, {"cl": 5})
    s.close()
    with caplog.at_level(logging.WARNING, logger="streamlet.state"):
        s = RocksDBStore(path, "s", "app/s")
    assert "belongs to 'other-app/s'" in caplog.text
    assert s.get(b"k") is None and s.offsets() == {}
    s.close()


def test_locked_directory_is_moved_aside_after_a_bounded_wait(tmp_path: Path, caplog) -> None:
    path = tmp_path / "db"
    RocksDBStore(str(path), "s", "app/s").close()
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from streamlet.state import RocksDBStore
        s = RocksDBStore({str(path)!r}, "s", "app/s")
        print("open", flush=True)
        time.sleep(30)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with caplog.at_level(logging.WARNING, logger="streamlet.state"):
            s = RocksDBStore(str(path), "s", "app/s", lock_timeout_s=1.0)
        assert "locked by another process" in caplog.text
        s.write({b"k": b"v"})
        assert s.get(b"k") == b"v"
        s.close()
        assert any(p.name.startswith("db.locked-") for p in tmp_path.iterdir())
    finally:
        holder.kill()
        holder.wait()


def test_cache_deduplicates_writes_and_reads_through(tmp_path: Path) -> None:
    backing = InMemoryStore("s")
    backing.write({b"old": b'{"v":0}'})
    cache = StoreCache(backing, json())
    assert cache.get(b"old") == {"v": 0}
    for i in range(100):
        cache.put(b"k", {"v": i})
    assert backing.get(b"k") is None  # nothing written before the commit
    changes = cache.flush({"cl": 3})
    assert changes == [(b"k", b'{"v":99}')]
    assert backing.get(b"k") == b'{"v":99}' and backing.offsets() == {"cl": 3}
    cache.put(b"old", None)
    assert cache.get(b"old") is None
    assert cache.take_changes() == [(b"old", None)]
    assert cache.take_changes() == []


def test_cache_items_overlay_and_eviction() -> None:
    backing = InMemoryStore("s")
    cache = StoreCache(backing, json(), max_entries=10)
    for i in range(50):
        cache.put(f"k{i:02d}".encode(), i)
    cache.flush()
    assert len(cache._values) <= 10  # clean entries evicted after the write
    assert cache.get(b"k07") == 7  # still readable through the store
    cache.put(b"k00", None)
    keys = [k for k, _ in cache.items()]
    assert b"k00" not in keys and len(keys) == 49
