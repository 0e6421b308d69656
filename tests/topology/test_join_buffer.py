"""The buffers of a stream–stream join: an index rebuilt from the store after a restore, expiry by
whole segments, replayed records kept once."""

from __future__ import annotations

from streamlet.serde import bytes_
from streamlet.state import InMemoryStore, StoreBuilder
from streamlet.topology.join_buffer import LEFT, RIGHT, OuterBuffer, WindowBuffer, segment_interval


def _cache(bottom: InMemoryStore):
    return StoreBuilder(bottom.name, bytes_()).with_caching().build(bottom)


def _commit(cache) -> None:
    """The runtime's commit: stage (changes, range deletions), then write them with the checkpoint."""
    cache.prepare_commit()
    cache.commit()


def _mark(n: int) -> bytes:
    return n.to_bytes(16, "big")


def _decode(b: bytes) -> str:
    return b.decode()


def test_segment_interval_is_kafka_streams() -> None:
    assert segment_interval(1000) == 60_000
    assert segment_interval(600_000) == 300_000


def test_the_index_is_rebuilt_from_the_store() -> None:
    bottom = InMemoryStore("buf")
    cache = _cache(bottom)
    buf = WindowBuffer(cache, retention=1000, decode=_decode)
    buf.add(b"k", 500, _mark(1), "a", b"a")
    buf.add(b"k", 100, _mark(2), "b", b"b")
    buf.add(b"j", 300, _mark(3), "c", b"c")
    _commit(cache)
    again = WindowBuffer(_cache(bottom), retention=1000, decode=_decode)  # a task compiled again
    assert again.observed == 500
    assert again.fetch(b"k", 0, 1000) == [(100, _mark(2), "b"), (500, _mark(1), "a")]
    assert again.fetch(b"k", 101, 499) == []
    assert again.fetch(b"j", 300, 300) == [(300, _mark(3), "c")]


def test_a_replayed_record_is_buffered_once() -> None:
    cache = _cache(InMemoryStore("buf"))
    buf = WindowBuffer(cache, retention=1000, decode=_decode)
    buf.add(b"k", 500, _mark(1), "a", b"a")
    buf.add(b"k", 500, _mark(1), "a", b"a")
    buf.add(b"k", 500, _mark(2), "a", b"a")  # a duplicate, another record
    assert len(buf) == 2 and len(list(cache.items())) == 2


def test_old_segments_are_dropped_with_one_range_deletion() -> None:
    bottom = InMemoryStore("buf")
    cache = _cache(bottom)
    buf = WindowBuffer(cache, retention=1000, decode=_decode)  # segments of 60 s
    for minute in range(5):
        buf.add(b"k", minute * 60_000, _mark(minute), str(minute), b"%d" % minute)
    _commit(cache)
    # the latest is 240 000; records at or before 239 000 are expired, whole segments before 239 000 go
    assert buf.fetch(b"k", 0, 10**9) == [(240_000, _mark(4), "4")]
    assert [buf_key[:8] for buf_key, _ in bottom.items()] == [(3).to_bytes(8, "big"), (4).to_bytes(8, "big")]
    again = WindowBuffer(_cache(bottom), retention=1000, decode=_decode)
    assert again.fetch(b"k", 0, 10**9) == [(240_000, _mark(4), "4")]


def test_expired_records_restored_from_a_changelog_are_dropped_on_load() -> None:
    bottom = InMemoryStore("buf")
    old = WindowBuffer(_cache(bottom), retention=1000, decode=_decode)
    cache = old.cache
    old.add(b"k", 0, _mark(1), "old", b"old")
    _commit(cache)
    # a restore replays the changelog, which keeps expired records (range deletions are not logged)
    cache.put((10).to_bytes(8, "big") + b"k" + (600_000).to_bytes(8, "big") + _mark(2), b"new")
    _commit(cache)
    buf = WindowBuffer(_cache(bottom), retention=1000, decode=_decode)
    assert buf.fetch(b"k", 0, 10**9) == [(600_000, _mark(2), "new")]
    _commit(buf.cache)
    assert len(list(bottom.items())) == 1


def test_outer_buffer_order_removal_and_reload() -> None:
    bottom = InMemoryStore("outer")
    cache = _cache(bottom)
    outer = OuterBuffer(cache, _decode, {LEFT: _decode, RIGHT: _decode})
    outer.add(LEFT, 100, b"b", _mark(1), "b", "L1", b"L1")
    outer.add(RIGHT, 100, b"a", _mark(2), "a", "R1", b"R1")
    outer.add(LEFT, 50, b"z", _mark(3), "z", "L0", b"L0")
    outer.add(LEFT, 300, b"c", _mark(4), "c", "L3", b"L3")
    outer.remove(LEFT, 300, b"c", _mark(4))
    outer.remove(LEFT, 300, b"c", _mark(4))  # gone already: nothing
    _commit(cache)
    again = OuterBuffer(_cache(bottom), _decode, {LEFT: _decode, RIGHT: _decode})
    assert len(again) == 3 and again.min_time() == 50
    closed, _ = again.take_closed(left_before=101, right_before=101)
    # time order; at equal times the right side first (Kafka Streams' store order)
    assert [(side, e[0], e[4]) for side, e in closed] == [(LEFT, 50, "L0"), (RIGHT, 100, "R1"), (LEFT, 100, "L1")]
    _commit(again.cache)
    assert list(bottom.items()) == []
