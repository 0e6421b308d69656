"""The real-Kafka test broker (streamlet.testing.kafka): what its settings promise holds.

Runs with ``--broker=kafka`` or ``--broker=all`` (deselected otherwise: it needs Java). The tests
share the session's broker (each starts on an emptied one), except the one that checks a
broker's own start and stop.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from streamlet.errors import KafkaBrokerError
from streamlet.testing.kafka import KafkaBroker
from tests.integration.kafka_procs import KafkaTestBroker
from tests.integration.procs import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.kafka_only, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def kafka(tmp_path: Path) -> KafkaTestBroker:
    return KafkaTestBroker(tmp_path, {})


def consume_all(bootstrap: str, topic: str, want: int, **config: str) -> list[tuple[bytes, bytes | None]]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", **config})
    c.assign([TopicPartition(topic, 0, 0)])
    out: list[tuple[bytes, bytes | None]] = []
    deadline = time.monotonic() + 15
    try:
        while len(out) < want and time.monotonic() < deadline:
            out.extend((m.key(), m.value()) for m in c.consume(100, 0.2) if m.error() is None)
        # nothing more comes
        out.extend((m.key(), m.value()) for m in c.consume(100, 0.5) if m.error() is None)
    finally:
        c.close()
    return out


def test_transactions_hide_aborted_records_and_store_their_offsets(kafka: KafkaTestBroker) -> None:
    kafka.create_topic("tx-in", 1)
    kafka.create_topic("tx-out", 1)
    p = Producer({"bootstrap.servers": kafka.bootstrap, "transactional.id": "tx-test"})
    p.init_transactions(30)
    p.begin_transaction()
    p.produce("tx-out", b"kept", b"k1")
    p.send_offsets_to_transaction([TopicPartition("tx-in", 0, 42)],
                                  Consumer({"bootstrap.servers": kafka.bootstrap,
                                            "group.id": "tx-group"}).consumer_group_metadata(), 30)
    p.commit_transaction(30)
    p.begin_transaction()
    p.produce("tx-out", b"aborted", b"k2")
    p.flush(10)  # written to the log, then aborted (unflushed records would just be purged)
    p.abort_transaction(30)
    committed_only = consume_all(kafka.bootstrap, "tx-out", 1, **{"isolation.level": "read_committed"})
    assert committed_only == [(b"k1", b"kept")]
    uncommitted = consume_all(kafka.bootstrap, "tx-out", 2, **{"isolation.level": "read_uncommitted"})
    assert (b"k2", b"aborted") in uncommitted
    c = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": "tx-group"})
    try:
        assert [tp.offset for tp in c.committed([TopicPartition("tx-in", 0)], timeout=10)] == [42]
    finally:
        c.close()
    # a second producer with the same transactional id fences the first
    p2 = Producer({"bootstrap.servers": kafka.bootstrap, "transactional.id": "tx-test"})
    p2.init_transactions(30)
    p.begin_transaction()
    p.produce("tx-out", b"zombie", b"k3")
    with pytest.raises(KafkaException) as fenced:
        p.flush(10)
        p.commit_transaction(30)
    assert fenced.value.args[0].code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                                           KafkaError.INVALID_PRODUCER_EPOCH)


def test_kip848_consumer_groups_split_the_partitions(kafka: KafkaTestBroker) -> None:
    kafka.create_topic("kip848", 4)
    p = Producer({"bootstrap.servers": kafka.bootstrap})
    for i in range(400):
        p.produce("kip848", str(i).encode(), f"k{i}".encode())
    assert p.flush(10) == 0
    members = [Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": "kip848-group",
                         "group.protocol": "consumer", "auto.offset.reset": "earliest"}) for _ in range(2)]
    seen: list[set[int]] = [set(), set()]
    values: set[bytes] = set()
    try:
        for c in members:
            c.subscribe(["kip848"])

        def split() -> bool:
            for i, c in enumerate(members):
                for m in c.consume(100, 0.1):
                    if m.error() is None:
                        values.add(m.value())
                seen[i] = {tp.partition for tp in c.assignment()}
            return len(values) == 400 and all(seen) and not seen[0] & seen[1] and len(seen[0] | seen[1]) == 4

        wait_until(split, 60, "both KIP-848 members to own partitions and every record read",
                   detail=lambda: f"assignments {seen}, {len(values)} records")
    finally:
        for c in members:
            c.close()


def test_compaction_keeps_the_latest_value_per_key(kafka: KafkaTestBroker) -> None:
    """The log-cleaner settings DESIGN §9 gives: a topic compacts within seconds once a segment rolls."""
    kafka.session.broker.create_topic("compacted", 1, {"cleanup.policy": "compact", "segment.ms": "100",
                                                       "min.cleanable.dirty.ratio": "0.01",
                                                       "delete.retention.ms": "100"})
    p = Producer({"bootstrap.servers": kafka.bootstrap, "linger.ms": 0})
    for i in range(5):
        for key in (b"a", b"b"):
            p.produce("compacted", b"%s%d" % (key, i), key)
            p.flush(10)
    p.produce("compacted", None, b"b")  # a tombstone: b goes (after delete.retention.ms)
    p.flush(10)

    def compacted() -> bool:
        p.produce("compacted", b"roll", b"roller")  # rolls the segment so the cleaner may take the rest
        p.flush(10)
        records = consume_all(kafka.bootstrap, "compacted", 1)
        return [r for r in records if r[0] != b"roller"] == [(b"a", b"a4")]

    wait_until(compacted, 60, "the cleaner to compact the topic", interval=0.5)


def test_timestamps_far_from_the_broker_clock_are_kept(kafka: KafkaTestBroker) -> None:
    kafka.create_topic("stamps", 1)
    p = Producer({"bootstrap.servers": kafka.bootstrap})
    errors: list[KafkaError] = []
    future = int(time.time() * 1000) + 7 * 24 * 3600 * 1000
    for ts in (1000, future):
        p.produce("stamps", b"v", b"k", timestamp=ts, on_delivery=lambda err, _: errors.append(err))
    assert p.flush(10) == 0
    assert errors == [None, None]


def test_topics_are_never_created_by_accident(kafka: KafkaTestBroker) -> None:
    """auto.create.topics.enable=false: producing to an unknown topic fails, nothing is created."""
    p = Producer({"bootstrap.servers": kafka.bootstrap, "message.timeout.ms": 3000})
    errors: list[KafkaError] = []
    p.produce("no-such-topic", b"v", on_delivery=lambda err, _: errors.append(err))
    p.flush(10)
    assert errors and errors[0] is not None
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    assert "no-such-topic" not in admin.list_topics(timeout=10).topics


def test_reset_leaves_an_empty_broker(kafka: KafkaTestBroker, tmp_path: Path) -> None:
    kafka.create_topic("left-over", 2)
    p = Producer({"bootstrap.servers": kafka.bootstrap})
    p.produce("left-over", b"old", b"k")
    assert p.flush(10) == 0
    c = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": "left-group",
                  "auto.offset.reset": "earliest"})
    c.subscribe(["left-over"])
    wait_until(lambda: any(m.error() is None for m in c.consume(10, 0.2)), 30, "the group to read")
    c.commit(asynchronous=False)
    c.close()

    fresh = KafkaTestBroker(tmp_path, {"left-over": 1})  # what the next test gets
    admin = AdminClient({"bootstrap.servers": fresh.bootstrap})
    assert {t: len(md.partitions) for t, md in admin.list_topics(timeout=10).topics.items()
            if not t.startswith("__")} == {"left-over": 1}
    assert [g.group_id for g in admin.list_consumer_groups().result(10).valid] == []
    assert consume_all(fresh.bootstrap, "left-over", 0) == []


def test_a_broker_of_its_own_starts_and_stops_cleanly(kafka: KafkaTestBroker) -> None:
    with KafkaBroker() as own:
        assert own.start_seconds > 0 and set(own.timings) >= {"jars", "format", "jvm", "total"}
        data, proc = own.dir, own.proc
        assert data is not None and data.is_dir() and proc is not None and proc.poll() is None
        own.create_topic("mine", 3)
        md = AdminClient({"bootstrap.servers": own.bootstrap_servers}).list_topics(timeout=10)
        assert len(md.topics["mine"].partitions) == 3
        assert own.bootstrap_servers != kafka.bootstrap
    assert proc.returncode == 143 or proc.returncode == 0  # SIGTERM: a clean shutdown
    assert not data.exists()


def test_a_broker_that_cannot_start_says_why(kafka: KafkaTestBroker) -> None:
    broken = KafkaBroker(config={"log.segment.bytes": "lots"}, start_timeout=60)
    with pytest.raises(KafkaBrokerError, match=r"Invalid value lots for configuration log\.segment\.bytes"):
        broken.start()
    assert broken.dir is None  # its temporary directory is gone
    assert broken.proc is None or broken.proc.poll() is not None


def test_the_testing_page_example_passes(kafka: KafkaTestBroker, tmp_path: Path) -> None:
    """docs/testing.md's conftest.py and test_orders.py, run by pytest as a user would."""
    page = (ROOT / "docs" / "testing.md").read_text()
    written = []
    for match in re.finditer(r"^```python\n(# (\w+\.py)\n.*?)^```", page, re.M | re.S):
        (tmp_path / match.group(2)).write_text(match.group(1))
        written.append(match.group(2))
    assert written == ["conftest.py", "test_orders.py"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                            capture_output=True, text=True, timeout=100, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "1 passed" in result.stdout
