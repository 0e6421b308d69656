"""Changelog restore from a real (embedded) broker: full, tail-only, tombstones, progress."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, Producer

from streamlet.broker.mock import MockCluster
from streamlet.state import InMemoryStore, restore_store


@pytest.fixture
def cluster():
    c = MockCluster(1)
    c.create_topic("app-s-changelog", 2)
    yield c
    c.close()


def _produce(cluster: MockCluster, records: list[tuple[bytes, bytes | None]], partition: int = 0) -> None:
    p = Producer({"bootstrap.servers": cluster.bootstrap_servers})
    for k, v in records:
        p.produce("app-s-changelog", v, k, partition)
    assert p.flush(10) == 0


def _consumer(cluster: MockCluster) -> Consumer:
    return Consumer({"bootstrap.servers": cluster.bootstrap_servers, "group.id": "restore",
                     "enable.auto.commit": False, "fetch.queue.backoff.ms": 10})


def test_full_then_tail_only_restore_with_tombstones(cluster) -> None:
    _produce(cluster, [(f"k{i}".encode(), f"v{i}".encode()) for i in range(1000)])
    store, consumer = InMemoryStore("s"), _consumer(cluster)
    seen = []
    assert restore_store(store, consumer, "app-s-changelog", 0, progress=lambda d, t: seen.append((d, t))) == 1000
    assert store.get(b"k999") == b"v999" and store.offsets() == {"app-s-changelog": 1000}
    assert seen and seen[-1][0] == 1000
    _produce(cluster, [(b"k1", None), (b"k2", b"new")])
    assert restore_store(store, consumer, "app-s-changelog", 0) == 2  # only the tail
    assert store.get(b"k1") is None and store.get(b"k2") == b"new"
    assert store.offsets() == {"app-s-changelog": 1002}
    assert restore_store(store, consumer, "app-s-changelog", 0) == 0
    consumer.close()


def test_empty_partition_and_checkpoint_beyond_the_end(cluster, caplog) -> None:
    store, consumer = InMemoryStore("s"), _consumer(cluster)
    assert restore_store(store, consumer, "app-s-changelog", 1) == 0
    assert store.offsets() == {"app-s-changelog": 0}
    # a checkpoint beyond the end: the changelog was re-created; stale rows must go
    store.write({b"stale": b"x"}, {"app-s-changelog": 500})
    _produce(cluster, [(b"fresh", b"y")], partition=1)
    assert restore_store(store, consumer, "app-s-changelog", 1) == 1
    assert store.get(b"stale") is None and store.get(b"fresh") == b"y"
    assert "beyond its end" in caplog.text
    consumer.close()
