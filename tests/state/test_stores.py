"""The KeyValueStore protocol, on both implementations."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamlet.state import InMemoryStore, KeyValueStore, RocksDBStore


@pytest.fixture(params=["memory", "rocksdb"])
def store(request, tmp_path: Path):
    s = InMemoryStore("s") if request.param == "memory" else RocksDBStore(tmp_path / "db", "s", "app/0/s")
    yield s
    s.close()


def test_both_implement_the_protocol(store) -> None:
    assert isinstance(store, KeyValueStore)
    assert store.name == "s"
    assert store.path is None if isinstance(store, InMemoryStore) else store.path.endswith("db")


def test_write_get_delete(store) -> None:
    assert store.get(b"a") is None
    store.write({b"b": b"2", b"a": b"1", b"c": b"3"})
    assert (store.get(b"a"), store.get(b"b"), store.get(b"zz")) == (b"1", b"2", None)
    store.write({b"b": None, b"never-there": None, b"a": b"1'"})
    assert store.get(b"b") is None and store.get(b"a") == b"1'"
    store.write({})  # nothing to do
    assert list(store.items()) == [(b"a", b"1'"), (b"c", b"3")]


def test_items_are_in_key_byte_order_with_half_open_ranges(store) -> None:
    keys = [b"", b"\x00", b"a", b"a\x00", b"ab", b"b", b"\xff", b"\xff\xff"]
    store.write({k: b"v" + k for k in reversed(keys)})
    assert [k for k, _ in store.items()] == keys
    assert [k for k, _ in store.items(b"a", b"b")] == [b"a", b"a\x00", b"ab"]  # start in, end out
    assert [k for k, _ in store.items(b"a\x01")] == [b"ab", b"b", b"\xff", b"\xff\xff"]
    assert [k for k, _ in store.items(end=b"a")] == [b"", b"\x00"]
    assert list(store.items(b"b", b"b")) == []
    assert dict(store.items())[b"ab"] == b"vab"


def test_items_span_many_keys(store) -> None:
    store.write({b"k%05d" % i: b"%d" % i for i in range(5000)})
    assert [k for k, _ in store.items()] == [b"k%05d" % i for i in range(5000)]
    ranged = list(store.items(b"k01000", b"k03500"))
    assert len(ranged) == 2500 and ranged[0] == (b"k01000", b"1000") and ranged[-1][0] == b"k03499"


def test_checkpoint_is_written_with_the_data(store) -> None:
    assert store.offsets() == {}
    store.write({b"k": b"v"}, {"app-s-changelog": 42})
    assert store.offsets() == {"app-s-changelog": 42} and store.get(b"k") == b"v"
    store.write({}, {"app-s-changelog": 43, "other": 7})
    assert store.offsets() == {"app-s-changelog": 43, "other": 7}
    assert [k for k, _ in store.items()] == [b"k"]  # the checkpoint is not data


def test_approximate_count(store) -> None:
    assert store.approximate_count() == 0
    store.write({b"k%d" % i: b"v" for i in range(100)})
    assert 50 <= store.approximate_count() <= 200


def test_clear_removes_data_and_checkpoint(store) -> None:
    store.write({b"k": b"v"}, {"cl": 5})
    store.clear()
    assert store.get(b"k") is None and store.offsets() == {} and list(store.items()) == []
    store.write({b"k2": b"v2"}, {"cl": 1})  # usable afterwards
    assert list(store.items()) == [(b"k2", b"v2")] and store.offsets() == {"cl": 1}


def test_close_twice_is_harmless(store) -> None:
    store.close()
    store.close()
